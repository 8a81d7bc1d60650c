// What a customer's agent trusts before an apply becomes durable, over real mutual TLS: the
// customer's own approval of the spec, a validation report signed by a console key the customer
// configured (passed, for the same spec digest and model), and the model's sha256 in the
// agent's own store ("not available" to the caller whatever failed; the cause in the customer's
// audit detail). Every refusal leaves the desired state unchanged. The compliance facts say
// what is configured.
#include <gtest/gtest.h>

#include <fstream>

#include "app/agent/state/model_store.h"
#include "app/common/signing.h"
#include "app/common/validation_runner.h"
#include "tests/app/agent/state/tiny_deployment.h"
#include "tests/connectors/agent/agent_test_env.h"

namespace sextant::rpc {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::sextant::v1;
using testing_agent::TinyDeployment;

v1::ApplyDeploymentRequest ApplyOf(const TinyDeployment& d, const std::string& signed_json) {
  v1::ApplyDeploymentRequest req;
  auto* s = req.mutable_spec();
  s->set_name(d.record.name);
  s->set_spec_json(d.record.spec_json);
  s->set_spec_digest(d.record.spec_digest);
  s->set_model_uri(d.record.model_uri);
  s->set_model_sha256(d.record.model_sha256);
  req.set_signed_report_json(signed_json);
  return req;
}

class AgentTrustTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(env_.Init(::testing::UnitTest::GetInstance()->current_test_info()->name()), "");
    ASSERT_EQ(testing_agent::MakeDeployment(env_.dir / "models", "tiny.gguf", {}, &d1_), "");
    // A second spec of the same model (another maxTokens: another digest).
    d2_ = d1_;
    d2_.spec.validation.max_tokens = 12;
    d2_.record = testing_agent::RecordOf(d2_.spec);
    ASSERT_NE(d1_.record.spec_digest, d2_.record.spec_digest);

    auto key = report::SigningKey::Generate();
    ASSERT_TRUE(key.ok());
    console_key_ = std::make_unique<report::SigningKey>(*key);
    auto other = report::SigningKey::Generate();
    ASSERT_TRUE(other.ok());
    other_key_ = std::make_unique<report::SigningKey>(*other);

    report1_ = LocalReport(d1_);
    report2_ = LocalReport(d2_);
  }

  report::ValidationReport LocalReport(const TinyDeployment& d) {
    validate::ValidateOptions o;
    o.model_dir = d.store;
    auto run = validate::RunValidation(d.spec, o);
    EXPECT_TRUE(run.ok()) << run.status().ToString();
    EXPECT_TRUE(run->report.passed);
    return run->report;
  }

  std::string Signed(const report::ValidationReport& r, const report::SigningKey& key) {
    auto s = report::SignReport(r, key);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return report::SignedReportToJson(*s).dump();
  }

  void StartTrusting() {
    // As `sextant reports key` prints it: a comment line, then the PEM.
    env_.options.console_keys_pem = {"# report signing key " + console_key_->key_id() + "\n" +
                                     console_key_->public_key().Pem()};
    env_.options.model_store = d1_.store;
    ASSERT_TRUE(env_.Start().ok());
    // The customer admits both specs: what is tested here is what comes after admission.
    ASSERT_TRUE(env_.Approve(d1_.record.spec_digest).ok());
    ASSERT_TRUE(env_.Approve(d2_.record.spec_digest).ok());
    op_ = env_.Client("vendor/operator");
  }

  int64_t Generation(const std::string& name) {
    auto r = env_.state->Get(name);
    return r.ok() ? r->generation : 0;
  }

  testing_env::AgentEnv env_;
  TinyDeployment d1_, d2_;
  std::unique_ptr<report::SigningKey> console_key_, other_key_;
  report::ValidationReport report1_, report2_;
  std::unique_ptr<AgentClient> op_;
};

TEST_F(AgentTrustTest, ApplyNeedsAReportSignedByATrustedConsoleKey) {
  StartTrusting();
  // No report at all.
  auto none = op_->ApplyDeployment(ApplyOf(d1_, ""));
  EXPECT_EQ(none.status().code(), StatusCode::kPermissionDenied) << none.status().ToString();
  EXPECT_NE(none.status().message().find("report signature not from a trusted console key"),
            std::string::npos);
  EXPECT_EQ(Generation("tiny"), 0);

  // Signed by a key the customer does not trust.
  auto untrusted = op_->ApplyDeployment(ApplyOf(d1_, Signed(report1_, *other_key_)));
  EXPECT_EQ(untrusted.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(untrusted.status().message().find("report signature not from a trusted console key"),
            std::string::npos)
      << untrusted.status().message();
  EXPECT_EQ(Generation("tiny"), 0);

  // The trusted key id, but one signature digit altered.
  nlohmann::json j = nlohmann::json::parse(Signed(report1_, *console_key_));
  std::string sig = j["signature"];
  sig[10] = sig[10] == '0' ? '1' : '0';
  j["signature"] = sig;
  auto altered = op_->ApplyDeployment(ApplyOf(d1_, j.dump()));
  EXPECT_EQ(altered.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(altered.status().message().find("report signature not from a trusted console key"),
            std::string::npos);

  // The report's content altered under a valid signature (it claims another spec).
  j = nlohmann::json::parse(Signed(report1_, *console_key_));
  j["report"]["specDigest"] = d2_.record.spec_digest.substr(7);
  auto tampered = op_->ApplyDeployment(ApplyOf(d2_, j.dump()));
  EXPECT_EQ(tampered.status().code(), StatusCode::kPermissionDenied)
      << tampered.status().ToString();
  EXPECT_EQ(Generation("tiny"), 0);

  // Not JSON.
  EXPECT_EQ(op_->ApplyDeployment(ApplyOf(d1_, "{not json")).status().code(),
            StatusCode::kInvalidArgument);

  // The genuine report applies.
  auto ok = op_->ApplyDeployment(ApplyOf(d1_, Signed(report1_, *console_key_)));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->generation(), 1);

  // Refusals are in the audit log with their outcome.
  auto recs = env_.audit->Query({.after_seq = 0, .limit = 1000, .rpc = "ApplyDeployment"});
  ASSERT_TRUE(recs.ok());
  int denied = 0;
  for (const auto& r : *recs) denied += r.entry.outcome == "error: PERMISSION_DENIED";
  EXPECT_EQ(denied, 4);
}

TEST_F(AgentTrustTest, ReportMustBeForThisSpecAndModelAndHavePassed) {
  StartTrusting();
  ASSERT_TRUE(op_->ApplyDeployment(ApplyOf(d1_, Signed(report1_, *console_key_))).ok());

  // A genuine report, but of another spec digest.
  auto other = op_->ApplyDeployment(ApplyOf(d2_, Signed(report1_, *console_key_)));
  EXPECT_EQ(other.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(other.status().message(),
            "report is for spec " + d1_.record.spec_digest + ", not " + d2_.record.spec_digest);
  EXPECT_EQ(Generation("tiny"), 1);

  // A genuine report that did not pass.
  report::ValidationReport failed = report2_;
  failed.min_tokens_per_second_threshold = 1e12;
  report::EvaluateThresholds(failed);
  ASSERT_FALSE(failed.passed);
  auto not_passed = op_->ApplyDeployment(ApplyOf(d2_, Signed(failed, *console_key_)));
  EXPECT_EQ(not_passed.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(not_passed.status().message().rfind("report did not pass", 0), 0u)
      << not_passed.status().message();

  // The request names another model than its spec (which the customer approved by digest).
  auto wrong_model = ApplyOf(d2_, Signed(report2_, *console_key_));
  wrong_model.mutable_spec()->set_model_sha256(std::string(64, 'e'));
  auto wm = op_->ApplyDeployment(wrong_model);
  EXPECT_EQ(wm.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(wm.status().message().find("is not the spec's model.sha256"), std::string::npos)
      << wm.status().message();
  EXPECT_EQ(Generation("tiny"), 1);

  auto ok = op_->ApplyDeployment(ApplyOf(d2_, Signed(report2_, *console_key_)));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->generation(), 2);
}

TEST_F(AgentTrustTest, ModelAlteredByOneByteOrMissingIsRefusedAndNothingChanges) {
  StartTrusting();
  ASSERT_TRUE(op_->ApplyDeployment(ApplyOf(d1_, Signed(report1_, *console_key_))).ok());
  {
    std::fstream f(d1_.model, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096);
    char c = 0;
    f.seekg(4096);
    f.get(c);
    f.seekp(4096);
    f.put(static_cast<char>(c ^ 0x20));
  }
  const std::string sha = d1_.record.model_sha256;
  auto refused = op_->ApplyDeployment(ApplyOf(d2_, Signed(report2_, *console_key_)));
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  // The caller learns only that the model is not available: not which of name or digest
  // failed, and never the store's digest.
  EXPECT_EQ(refused.status().message(), agent::kModelNotAvailable);
  EXPECT_EQ(Generation("tiny"), 1);
  auto rec = env_.state->Get("tiny");
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->spec_digest, d1_.record.spec_digest);

  fs::remove(d1_.model);
  auto missing = op_->ApplyDeployment(ApplyOf(d2_, Signed(report2_, *console_key_)));
  EXPECT_EQ(missing.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(missing.status().message(), refused.status().message());
  EXPECT_EQ(Generation("tiny"), 1);

  // The customer's own records keep the cause: the store's digest, then the missing file.
  auto recs = env_.audit->Query({.after_seq = 0, .limit = 1000, .rpc = "ApplyDeployment"});
  ASSERT_TRUE(recs.ok());
  std::vector<std::string> details;
  for (const auto& r : *recs) {
    if (r.entry.outcome == "error: FAILED_PRECONDITION") details.push_back(r.entry.detail);
  }
  ASSERT_EQ(details.size(), 2u);
  EXPECT_NE(details[0].find("model sha256 mismatch: store has "), std::string::npos) << details[0];
  EXPECT_NE(details[0].find("spec wants " + sha), std::string::npos) << details[0];
  EXPECT_NE(details[1].find("not in this agent's store"), std::string::npos) << details[1];
}

TEST_F(AgentTrustTest, ComplianceFactsNameKeysCertificateStoreAndEgress) {
  env_.options.encryption_at_rest = true;
  StartTrusting();
  auto auditor = env_.Client("customer/auditor");
  auto facts = auditor->GetComplianceFacts();
  ASSERT_TRUE(facts.ok()) << facts.status().ToString();
  std::map<std::string, std::pair<std::string, std::string>> by_name;
  for (const auto& f : facts->facts()) by_name[f.name()] = {f.value(), f.evidence()};
  EXPECT_EQ(by_name["deploy.console_keys"].first, "1");
  EXPECT_NE(by_name["deploy.console_keys"].second.find(console_key_->key_id()), std::string::npos);
  EXPECT_EQ(by_name["deploy.report_required"].first, "true");
  EXPECT_EQ(by_name["deploy.admission"].first, "customer-rule");
  // Declared is not measured: the declaration is its own fact, the store's encryption is what
  // the agent can observe of a temporary directory (no dm-crypt, no fscrypt here).
  EXPECT_EQ(by_name["storage.encryption_declared"].first, "true");
  EXPECT_EQ(by_name["storage.model_store.encrypted"].first, "unknown");
  EXPECT_FALSE(by_name["storage.model_store.encrypted"].second.empty());
  EXPECT_EQ(by_name["egress.policy"].first, "digests-and-figures");
  // The test's server certificate is valid for 30 days from now.
  const int days = std::stoi(by_name["tls.cert_days_left"].first);
  EXPECT_GE(days, 29);
  EXPECT_LE(days, 30);
  const std::string& expires = by_name["tls.cert_expires_at"].first;
  EXPECT_EQ(expires.size(), 20u) << expires;  // 2026-12-29T03:40:00Z
  EXPECT_EQ(expires.back(), 'Z');
}

TEST(AgentTrustOptional, WithoutConsoleKeysTheReportIsOptionalAndSaidSo) {
  testing_env::AgentEnv env;
  ASSERT_EQ(env.Init("trust-optional"), "");
  TinyDeployment d;
  ASSERT_EQ(testing_agent::MakeDeployment(env.dir / "models", "tiny.gguf", {}, &d), "");
  env.options.model_store = d.store;
  ASSERT_TRUE(env.Start().ok());
  ASSERT_TRUE(env.Approve(d.record.spec_digest).ok());
  auto op = env.Client("vendor/operator");
  auto ok = op->ApplyDeployment(ApplyOf(d, ""));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  auto facts = op->GetComplianceFacts();
  ASSERT_TRUE(facts.ok());
  bool warned = false;
  for (const auto& f : facts->facts()) {
    if (f.name() == "deploy.report_required") {
      EXPECT_EQ(f.value(), "false");
      EXPECT_NE(f.evidence().find("warning"), std::string::npos);
      warned = true;
    }
    if (f.name() == "deploy.console_keys") {
      EXPECT_EQ(f.value(), "0");
    }
    if (f.name() == "storage.encryption_declared") {
      EXPECT_EQ(f.value(), "false");
      EXPECT_EQ(f.source(), "config: encryption_at_rest");
    }
  }
  EXPECT_TRUE(warned);
  // The store check holds without keys too: an approved spec of a model the store does not have.
  TinyDeployment other = d;
  other.spec.model.sha256 = std::string(64, 'a');
  other.record = testing_agent::RecordOf(other.spec);
  ASSERT_TRUE(env.Approve(other.record.spec_digest).ok());
  auto wrong = op->ApplyDeployment(ApplyOf(other, ""));
  EXPECT_EQ(wrong.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(wrong.status().message(), agent::kModelNotAvailable);
}

TEST(AgentTrustOptional, AConsoleKeyThatDoesNotParseStopsTheStart) {
  testing_env::AgentEnv env;
  ASSERT_EQ(env.Init("trust-badkey"), "");
  env.options.console_keys_pem = {"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"};
  Status s = env.Start();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("console key 1"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace sextant::rpc
