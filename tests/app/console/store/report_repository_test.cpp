
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>

#include "app/console/store/console_database.h"
#include "engine/base/sha256.h"

namespace sextant::console {
namespace {

namespace fs = std::filesystem;

class ReportRepositoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Per process: CTest runs the cases of this suite in parallel processes.
    dir_ = fs::path(::testing::TempDir()) /
           ("sextant_report_repository_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    Reopen();
    ASSERT_EQ(sqlite3_open((dir_ / "console.db").c_str(), &raw_), SQLITE_OK);
    sqlite3_busy_timeout(raw_, 5000);
    auto key = report::SigningKey::Generate();
    ASSERT_TRUE(key.ok());
    key_ = std::make_unique<report::SigningKey>(*key);
  }
  void TearDown() override {
    sqlite3_close(raw_);
    db_.reset();
    fs::remove_all(dir_);
  }
  void Reopen() {
    db_.reset();
    auto db = ConsoleDatabase::Open(dir_);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(db).value();
  }

  report::ValidationReport Report(const std::string& spec, bool passed, int n) {
    report::ValidationReport r;
    r.spec_name = spec;
    r.spec_digest = Sha256Hex(spec);
    r.model_uri = "file://m.gguf";
    r.model_sha256 = Sha256Hex("model");
    r.engine_build_id = "0.1.0+test";
    r.backend = "cpu";
    r.device = "cpu";
    r.created_at = "2026-01-01T00:00:0" + std::to_string(n) + "Z";
    report::PromptResult p;
    const int32_t ids[] = {n};
    p.output_digest = ToHex(TokenIdsDigest(ids));
    p.generated_tokens = 1;
    p.ttft_ms = passed ? 1 : 1000;
    r.prompts.push_back(p);
    r.output_digest = *report::CombineOutputDigests(r.prompts);
    r.max_ttft_ms_threshold = 10;
    report::EvaluateThresholds(r);
    EXPECT_EQ(r.passed, passed);
    return r;
  }

  int64_t Add(const report::ValidationReport& r) {
    auto id = db_->reports().Add(r, *report::SignReport(r, *key_));
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.ok() ? *id : -1;
  }

  void Exec(const std::string& sql) {
    ASSERT_EQ(sqlite3_exec(raw_, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(raw_);
  }

  fs::path dir_;
  std::unique_ptr<ConsoleDatabase> db_;
  sqlite3* raw_ = nullptr;  // the test's own connection, to tamper with rows
  std::unique_ptr<report::SigningKey> key_;
};

TEST_F(ReportRepositoryTest, AddGetListAndLatestPassing) {
  const int64_t a = Add(Report("alpha", true, 1));
  const int64_t b = Add(Report("alpha", false, 2));
  const int64_t c = Add(Report("beta", true, 3));
  ReportRepository& store = db_->reports();

  auto got = store.Get(b);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->spec_name, "alpha");
  EXPECT_FALSE(got->passed);
  EXPECT_EQ(got->signed_report.key_id, key_->key_id());
  EXPECT_TRUE(VerifyStoredReport(*got, key_->public_key()).ok());
  EXPECT_EQ(store.Get(999).status().code(), StatusCode::kNotFound);

  auto all = store.List();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].id, c);  // newest first
  auto alpha = store.List(Sha256Hex("alpha"));
  ASSERT_TRUE(alpha.ok());
  EXPECT_EQ(alpha->size(), 2u);
  EXPECT_EQ(store.List({}, 1)->size(), 1u);

  auto latest = store.LatestPassing(Sha256Hex("alpha"));
  ASSERT_TRUE(latest.ok());
  ASSERT_TRUE(latest->has_value());
  EXPECT_EQ((*latest)->id, a);  // b is newer but failed
  EXPECT_FALSE(store.LatestPassing(Sha256Hex("gamma"))->has_value());
}

TEST_F(ReportRepositoryTest, SurvivesReopenOfTheFile) {
  const int64_t id = Add(Report("alpha", true, 1));
  Reopen();
  ReportRepository& store = db_->reports();
  auto got = store.Get(id);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(VerifyStoredReport(*got, key_->public_key()).ok());
}

TEST_F(ReportRepositoryTest, TamperedRowsAreDetected) {
  const int64_t failing = Add(Report("alpha", false, 1));
  const int64_t other = Add(Report("beta", true, 2));
  ReportRepository& store = db_->reports();

  // Flipping the listing column alone: the signed bytes still say "failed".
  Exec("UPDATE validation_reports SET passed = 1 WHERE id = " + std::to_string(failing));
  auto r = VerifyStoredReport(*store.Get(failing), key_->public_key());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("passed"), std::string::npos);

  // Editing the signed JSON itself.
  Exec(
      "UPDATE validation_reports SET report_json = replace(report_json, '\"passed\":true', "
      "'\"passed\":false') WHERE id = " +
      std::to_string(other));
  Exec("UPDATE validation_reports SET passed = 0 WHERE id = " + std::to_string(other));
  EXPECT_EQ(VerifyStoredReport(*store.Get(other), key_->public_key()).status().code(),
            StatusCode::kUnauthenticated);
}

}  // namespace
}  // namespace sextant::console
