#include "app/console/rollout/carried_report.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "app/common/spec_diff.h"
#include "app/console/store/console_database.h"
#include "engine/base/sha256.h"

namespace sextant::console {
namespace {

namespace fs = std::filesystem;

constexpr char kSpec[] = R"yaml(
apiVersion: sextant/v1
kind: Deployment
name: chat
model:
  uri: file://m.gguf
  sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
validation:
  prompts: [Hello, The little dog]
)yaml";

class CarriedReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::path(::testing::TempDir()) / ("sextant_carried_report_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto db = ConsoleDatabase::Open(dir_);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(db).value();
    key_ = std::make_unique<report::SigningKey>(*report::SigningKey::Generate());
    auto parsed = spec::ParseDeploymentSpec(kSpec);
    ASSERT_TRUE(parsed.ok());
    spec_ = parsed.spec;
  }
  void TearDown() override {
    db_.reset();
    fs::remove_all(dir_);
  }

  report::ValidationReport Measured(const spec::DeploymentSpec& s, const std::string& backend,
                                    int n, bool passed = true) {
    report::ValidationReport r;
    r.spec_name = s.name;
    r.spec_digest = spec::SpecDigest(s);
    r.model_uri = s.model.uri;
    r.model_sha256 = s.model.sha256;
    r.engine_build_id = "0.1.0+test";
    r.backend = backend;
    r.device = backend + " device";
    r.threads = 2;
    r.created_at = "2026-01-01T00:00:0" + std::to_string(n) + "Z";
    r.max_tokens = 32;
    for (int i = 0; i < 2; ++i) {
      report::PromptResult p;
      const int32_t ids[] = {n, i};
      p.index = i;
      p.output_digest = ToHex(TokenIdsDigest(ids));
      p.generated_tokens = 3;
      p.ttft_ms = passed ? 1 : 1000;
      p.tokens_per_second = 50;
      r.prompts.push_back(p);
    }
    r.output_digest = *report::CombineOutputDigests(r.prompts);
    r.max_ttft_ms_threshold = 10;
    report::EvaluateThresholds(r);
    return r;
  }
  int64_t Add(const report::ValidationReport& r) {
    return *db_->reports().Add(r, *report::SignReport(r, *key_));
  }

  fs::path dir_;
  std::unique_ptr<ConsoleDatabase> db_;
  std::unique_ptr<report::SigningKey> key_;
  spec::DeploymentSpec spec_;
};

TEST_F(CarriedReportTest, AScalingChangeCarriesThePassingReportSignedAndVerifiable) {
  const report::ValidationReport measured = Measured(spec_, "cpu", 1);
  const int64_t from_id = Add(measured);
  auto scaled = spec::WithReplicaBounds(spec_, 2, 5);
  ASSERT_TRUE(scaled.ok());
  ReportRepository& store = db_->reports();
  auto carried = CarryPassingReports(store, *key_, spec_, *scaled);
  ASSERT_TRUE(carried.ok()) << carried.status().ToString();
  ASSERT_EQ(carried->size(), 1u);
  const CarriedReport& c = (*carried)[0];
  EXPECT_EQ(c.from_id, from_id);

  // Stored like any report: the newest passing report of the new digest, verifying with the
  // console key, with the new digest and the old results.
  auto latest = store.LatestPassing(spec::SpecDigest(*scaled));
  ASSERT_TRUE(latest.ok() && latest->has_value());
  EXPECT_EQ((*latest)->id, c.id);
  auto verified = VerifyStoredReport(**latest, key_->public_key());
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ(verified->spec_digest, spec::SpecDigest(*scaled));
  EXPECT_EQ(verified->output_digest, measured.output_digest);
  ASSERT_EQ(verified->prompts.size(), 2u);
  EXPECT_EQ(verified->prompts[1].output_digest, measured.prompts[1].output_digest);
  EXPECT_EQ(verified->backend, "cpu");
  EXPECT_TRUE(verified->passed);
  ASSERT_TRUE(verified->carried_from.has_value());
  EXPECT_EQ(verified->carried_from->spec_digest, spec::SpecDigest(spec_));
  EXPECT_EQ(verified->carried_from->report_id, from_id);
  EXPECT_EQ(verified->carried_from->report_sha256,
            Sha256Hex(store.Get(from_id)->signed_report.report_json));
  EXPECT_EQ(verified->carried_from->reason, "spec differs only in scaling");
  // The signed JSON names it, and reads back to the same canonical bytes.
  auto j = nlohmann::json::parse((*latest)->signed_report.report_json);
  EXPECT_EQ(j["carriedFrom"]["reportId"], from_id);
  EXPECT_EQ(report::CanonicalJson(*report::FromJson(j)), (*latest)->signed_report.report_json);
}

TEST_F(CarriedReportTest, ATamperedCarriedReportOrAnotherKeyDoesNotVerify) {
  Add(Measured(spec_, "cpu", 1));
  auto scaled = spec::WithReplicaBounds(spec_, 0, 3);
  ASSERT_TRUE(scaled.ok());
  ReportRepository& store = db_->reports();
  auto carried = CarryPassingReports(store, *key_, spec_, *scaled);
  ASSERT_TRUE(carried.ok()) << carried.status().ToString();
  report::SignedReport s = (*carried)[0].signed_report;
  ASSERT_TRUE(report::VerifySignedReport(s, key_->public_key()).ok());

  // The reason, the carried-from digest, or the digest it is for: any changed byte fails.
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"only in scaling", "only in sampling"},
           {"\"reportId\":1", "\"reportId\":2"},
           {spec::SpecDigest(*scaled), spec::SpecDigest(spec_)}}) {
    report::SignedReport t = s;
    const size_t at = t.report_json.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    t.report_json.replace(at, from.size(), to);
    auto v = report::VerifySignedReport(t, key_->public_key());
    EXPECT_EQ(v.status().code(), StatusCode::kUnauthenticated) << from;
  }
  // Dropping carriedFrom altogether also breaks the signature.
  auto j = nlohmann::json::parse(s.report_json);
  j.erase("carriedFrom");
  report::SignedReport dropped = s;
  dropped.report_json = j.dump();
  EXPECT_EQ(report::VerifySignedReport(dropped, key_->public_key()).status().code(),
            StatusCode::kUnauthenticated);
  auto other = report::SigningKey::Generate();
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(report::VerifySignedReport(s, other->public_key()).status().code(),
            StatusCode::kUnauthenticated);
}

TEST_F(CarriedReportTest, OnlyAScalingDifferenceIsCarried) {
  Add(Measured(spec_, "cpu", 1));
  ReportRepository& store = db_->reports();
  spec::DeploymentSpec prompt = *spec::WithReplicaBounds(spec_, 2, 3);
  prompt.validation.prompts[0] = "Goodbye";
  auto refused = CarryPassingReports(store, *key_, spec_, prompt);
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("validation.prompts[0]"), std::string::npos)
      << refused.status().message();
  EXPECT_NE(refused.status().message().find("sextant validate"), std::string::npos);

  spec::DeploymentSpec sampling = spec_;
  sampling.engine.sampling.top_k = 1;
  refused = CarryPassingReports(store, *key_, spec_, sampling);
  EXPECT_NE(refused.status().message().find("engine.sampling.topK"), std::string::npos);

  spec::DeploymentSpec model = spec_;
  model.model.sha256 = std::string(64, 'a');
  refused = CarryPassingReports(store, *key_, spec_, model);
  EXPECT_NE(refused.status().message().find("model.sha256"), std::string::npos);

  // Nothing was stored for any of them.
  EXPECT_EQ(store.List()->size(), 1u);
}

TEST_F(CarriedReportTest, EachBackendsNewestPassingReportIsCarriedAndNothingElse) {
  Add(Measured(spec_, "cpu", 1));
  const int64_t cuda = Add(Measured(spec_, "cuda", 2));
  const int64_t cpu_newer = Add(Measured(spec_, "cpu", 3));
  Add(Measured(spec_, "cpu", 4, /*passed=*/false));
  // A report signed by another key is not carried.
  auto other = report::SigningKey::Generate();
  const report::ValidationReport foreign = Measured(spec_, "hip", 5);
  ReportRepository& store = db_->reports();
  ASSERT_TRUE(store.Add(foreign, *report::SignReport(foreign, *other)).ok());

  auto scaled = spec::WithReplicaBounds(spec_, 1, 4);
  auto carried = CarryPassingReports(store, *key_, spec_, *scaled);
  ASSERT_TRUE(carried.ok()) << carried.status().ToString();
  ASSERT_EQ(carried->size(), 2u);
  // Oldest first: the carry of the newest report (cpu, 3) is the newest of the new digest.
  EXPECT_EQ((*carried)[0].from_id, cuda);
  EXPECT_EQ((*carried)[1].from_id, cpu_newer);
  auto latest = store.LatestPassing(spec::SpecDigest(*scaled));
  ASSERT_TRUE(latest.ok() && latest->has_value());
  EXPECT_EQ((*latest)->id, (*carried)[1].id);
}

TEST_F(CarriedReportTest, NoPassingReportNothingToCarry) {
  Add(Measured(spec_, "cpu", 1, /*passed=*/false));
  ReportRepository& store = db_->reports();
  auto carried = CarryPassingReports(store, *key_, spec_, *spec::WithReplicaBounds(spec_, 2, 2));
  EXPECT_EQ(carried.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(carried.status().message().find("no passing report"), std::string::npos);
}

TEST_F(CarriedReportTest, AMeasuredReportHasNoCarriedFromAndAMalformedOneIsRefused) {
  const report::ValidationReport measured = Measured(spec_, "cpu", 1);
  EXPECT_FALSE(ToJson(measured).contains("carriedFrom"));
  auto j = ToJson(measured);
  j["carriedFrom"] = {{"specDigest", spec::SpecDigest(spec_)},
                      {"reportId", 1},
                      {"reportSha256", "nothex"},
                      {"reason", "x"}};
  auto bad = report::FromJson(j);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("report.carriedFrom.reportSha256"), std::string::npos)
      << bad.status().message();
  j["carriedFrom"]["reportSha256"] = spec::SpecDigest(spec_);
  j["carriedFrom"]["extra"] = 1;
  EXPECT_NE(report::FromJson(j).status().message().find("report.carriedFrom.extra"),
            std::string::npos);
  // CarryReport checks its input report.
  auto scaled = *spec::WithReplicaBounds(spec_, 2, 2);
  EXPECT_EQ(CarryReport(measured, 1, "{}", scaled, spec_, "t").status().code(),
            StatusCode::kFailedPrecondition);  // report is not for `scaled`
  EXPECT_EQ(CarryReport(measured, 1, "{}", spec_, spec_, "t").status().code(),
            StatusCode::kFailedPrecondition);  // same spec
  const report::ValidationReport failed = Measured(spec_, "cpu", 1, false);
  EXPECT_EQ(CarryReport(failed, 1, "{}", spec_, scaled, "t").status().code(),
            StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace sextant::console
