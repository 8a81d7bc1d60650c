#include "app/common/signing.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "app/common/validation_report.h"
#include "engine/base/sha256.h"

namespace sextant::report {
namespace {

namespace fs = std::filesystem;

ValidationReport SampleReport() {
  ValidationReport r;
  r.spec_name = "stories";
  r.spec_digest = Sha256Hex("spec");
  r.model_uri = "file://stories260K.gguf";
  r.model_sha256 = "047bf46455a544931cff6fef14d7910154c56afbc23ab1c5e56a72e69912c04b";
  r.engine_build_id = "0.1.0+abc123";
  r.backend = "cpu";
  r.device = "Test CPU";
  r.threads = 2;
  r.created_at = "2026-01-02T03:04:05Z";
  r.max_tokens = 16;
  for (int i = 0; i < 2; ++i) {
    PromptResult p;
    p.index = i;
    const int32_t ids[] = {i, 42, 7};
    p.output_digest = ToHex(TokenIdsDigest(ids));
    p.prompt_tokens = 5;
    p.generated_tokens = 3;
    p.ttft_ms = 1.25 + i;
    p.inter_token_ms = 0.333;
    p.tokens_per_second = 3003.003;
    r.prompts.push_back(p);
  }
  r.output_digest = *CombineOutputDigests(r.prompts);
  r.peak_memory_bytes = 123456789;
  r.max_ttft_ms_threshold = 100;
  EvaluateThresholds(r);
  return r;
}

fs::path TempDir(const std::string& name) {
  fs::path dir = fs::path(::testing::TempDir()) / ("sextant_signing_" + name);
  fs::remove_all(dir);
  return dir;
}

TEST(ValidationReport, JsonRoundTripIsCanonicalAndStrict) {
  ValidationReport r = SampleReport();
  EXPECT_TRUE(r.passed);
  const std::string text = CanonicalJson(r);
  auto back = FromJson(nlohmann::json::parse(text));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(CanonicalJson(*back), text);
  EXPECT_EQ(back->prompts[1].output_digest, r.prompts[1].output_digest);

  auto j = nlohmann::json::parse(text);
  j["extra"] = 1;
  EXPECT_EQ(FromJson(j).status().code(), StatusCode::kInvalidArgument);
  j = nlohmann::json::parse(text);
  j.erase("modelSha256");
  EXPECT_NE(FromJson(j).status().message().find("modelSha256"), std::string::npos);
  j = nlohmann::json::parse(text);
  j["prompts"][0]["generatedTokens"] = "3";
  EXPECT_NE(FromJson(j).status().message().find("prompts[0].generatedTokens"), std::string::npos);
}

TEST(ValidationReport, ThresholdsDecidePassFail) {
  ValidationReport r = SampleReport();
  r.max_ttft_ms_threshold = 2.0;  // the second prompt took 2.25 ms
  EvaluateThresholds(r);
  EXPECT_FALSE(r.passed);
  ASSERT_EQ(r.failures.size(), 1u);
  EXPECT_NE(r.failures[0].find("time to first token"), std::string::npos);
  r.max_ttft_ms_threshold = 0;
  r.min_tokens_per_second_threshold = 5000;
  EvaluateThresholds(r);
  EXPECT_FALSE(r.passed);
  EXPECT_NEAR(r.tokens_per_second, 3003.003, 1e-6);
  r.min_tokens_per_second_threshold = 3000;
  EvaluateThresholds(r);
  EXPECT_TRUE(r.passed);
}

TEST(ValidationReport, CombinedDigestDependsOnEveryPromptAndOrder) {
  ValidationReport r = SampleReport();
  const std::string combined = r.output_digest;
  std::swap(r.prompts[0], r.prompts[1]);
  EXPECT_NE(*CombineOutputDigests(r.prompts), combined);
  r.prompts[0].output_digest = "nothex";
  EXPECT_FALSE(CombineOutputDigests(r.prompts).ok());
}

TEST(ReportSigning, SignedReportVerifies) {
  auto key = SigningKey::Generate();
  ASSERT_TRUE(key.ok());
  auto signed_report = SignReport(SampleReport(), *key);
  ASSERT_TRUE(signed_report.ok());
  EXPECT_EQ(signed_report->signature.size(), 128u);
  EXPECT_EQ(signed_report->key_id, ToHex(Sha256Digest(key->public_key().raw())));
  auto verified = VerifySignedReport(*signed_report, key->public_key());
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ(verified->spec_digest, SampleReport().spec_digest);
}

TEST(ReportSigning, EveryAlteredByteOfTheReportIsDetected) {
  auto key = SigningKey::Generate();
  ASSERT_TRUE(key.ok());
  const SignedReport good = *SignReport(SampleReport(), *key);
  for (size_t i = 0; i < good.report_json.size(); ++i) {
    SignedReport bad = good;
    bad.report_json[i] = static_cast<char>(bad.report_json[i] ^ 0x01);
    auto r = VerifySignedReport(bad, key->public_key());
    ASSERT_FALSE(r.ok()) << "byte " << i << " altered and still verified";
    EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
  }
}

TEST(ReportSigning, AlteredSignatureIsDetected) {
  auto key = SigningKey::Generate();
  ASSERT_TRUE(key.ok());
  const SignedReport good = *SignReport(SampleReport(), *key);
  for (size_t i = 0; i < good.signature.size(); i += 7) {
    SignedReport bad = good;
    bad.signature[i] = bad.signature[i] == '0' ? '1' : '0';
    EXPECT_EQ(VerifySignedReport(bad, key->public_key()).status().code(),
              StatusCode::kUnauthenticated)
        << "signature digit " << i;
  }
  SignedReport truncated = good;
  truncated.signature.pop_back();
  EXPECT_EQ(VerifySignedReport(truncated, key->public_key()).status().code(),
            StatusCode::kUnauthenticated);
}

TEST(ReportSigning, WrongKeyIsRefused) {
  auto key = SigningKey::Generate();
  auto other = SigningKey::Generate();
  ASSERT_TRUE(key.ok() && other.ok());
  EXPECT_NE(key->key_id(), other->key_id());
  SignedReport s = *SignReport(SampleReport(), *key);
  // Refused by key id, and by the signature itself when the key id is forged.
  EXPECT_EQ(VerifySignedReport(s, other->public_key()).status().code(),
            StatusCode::kUnauthenticated);
  s.key_id = other->key_id();
  auto r = VerifySignedReport(s, other->public_key());
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
  EXPECT_NE(r.status().message().find("signature does not match"), std::string::npos);
}

TEST(ReportSigning, NonCanonicalSignedTextIsRefused) {
  auto key = SigningKey::Generate();
  ASSERT_TRUE(key.ok());
  SignedReport s;
  s.report_json = nlohmann::json::parse(CanonicalJson(SampleReport())).dump(2);
  s.signature = *key->Sign(s.report_json);
  s.key_id = key->key_id();
  EXPECT_EQ(VerifySignedReport(s, key->public_key()).status().code(), StatusCode::kDataLoss);
}

TEST(ReportSigning, JsonEnvelopeRoundTripsAndStaysVerifiable) {
  auto key = SigningKey::Generate();
  ASSERT_TRUE(key.ok());
  const SignedReport s = *SignReport(SampleReport(), *key);
  const std::string wire = SignedReportToJson(s).dump(2);  // pretty: whitespace does not matter
  auto back = SignedReportFromJson(nlohmann::json::parse(wire));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->report_json, s.report_json);
  EXPECT_TRUE(VerifySignedReport(*back, key->public_key()).ok());
  // A changed value inside the envelope is detected.
  auto j = nlohmann::json::parse(wire);
  j["report"]["passed"] = false;
  auto tampered = SignedReportFromJson(j);
  ASSERT_TRUE(tampered.ok());
  EXPECT_EQ(VerifySignedReport(*tampered, key->public_key()).status().code(),
            StatusCode::kUnauthenticated);
}

TEST(ReportSigning, PublicKeyPemRoundTrip) {
  auto key = SigningKey::Generate();
  ASSERT_TRUE(key.ok());
  const std::string pem = key->public_key().Pem();
  EXPECT_NE(pem.find("BEGIN PUBLIC KEY"), std::string::npos);
  auto pub = VerifyingKey::FromPem(pem);
  ASSERT_TRUE(pub.ok()) << pub.status().ToString();
  EXPECT_EQ(pub->key_id(), key->key_id());
  EXPECT_TRUE(VerifySignedReport(*SignReport(SampleReport(), *key), *pub).ok());
  EXPECT_FALSE(
      VerifyingKey::FromPem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").ok());
}

TEST(SigningKeyFile, CreatedOnFirstUseWithMode0600ThenReused) {
  const fs::path dir = TempDir("create");
  const fs::path file = dir / "conf" / "report-signing-key.pem";
  auto first = SigningKey::LoadOrCreate(file);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(file.parent_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  auto second = SigningKey::LoadOrCreate(file);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->key_id(), first->key_id());
  // A signature made with the reloaded key verifies under the first key's public half.
  EXPECT_TRUE(VerifySignedReport(*SignReport(SampleReport(), *second), first->public_key()).ok());
  EXPECT_EQ(first->Save(file).code(), StatusCode::kAlreadyExists);
}

TEST(SigningKeyFile, RefusesKeyReadableByOthersAndGarbage) {
  const fs::path dir = TempDir("perm");
  const fs::path file = dir / "key.pem";
  ASSERT_TRUE(SigningKey::LoadOrCreate(file).ok());
  fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  EXPECT_EQ(SigningKey::Load(file).status().code(), StatusCode::kPermissionDenied);

  const fs::path junk = dir / "junk.pem";
  {
    std::ofstream out(junk);
    out << "not a key\n";
  }
  fs::permissions(junk, fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(SigningKey::Load(junk).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SigningKey::Load(dir / "missing.pem").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace sextant::report
