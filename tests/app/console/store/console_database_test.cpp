#include "app/console/store/console_database.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

namespace sextant::console {
namespace {

class ConsoleDatabaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("console_database_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override {
    if (raw_ != nullptr) sqlite3_close(raw_);
    std::filesystem::remove_all(dir_);
  }
  // A connection of the test's own to the same file, to look at (or damage) what the database
  // wrote; the database itself hands out no handle.
  sqlite3* Raw() {
    if (raw_ == nullptr) {
      EXPECT_EQ(sqlite3_open((dir_ / "console.db").c_str(), &raw_), SQLITE_OK);
      sqlite3_busy_timeout(raw_, 5000);
    }
    return raw_;
  }
  sqlite3* raw_ = nullptr;
  std::unique_ptr<ConsoleDatabase> OpenStore(DatabaseOptions o = {}) {
    auto s = ConsoleDatabase::Open(dir_, o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }
  std::filesystem::path dir_;
};

std::string QueryText(sqlite3* db, const char* sql) {
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  std::string out;
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
    out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  }
  sqlite3_finalize(st);
  return out;
}

TEST_F(ConsoleDatabaseTest, MigratesAnEmptyFileAndReopensIdempotently) {
  {
    auto s = OpenStore();
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(*s->SchemaVersion(), ConsoleDatabase::kSchemaVersion);
    EXPECT_EQ(QueryText(Raw(), "PRAGMA journal_mode"), "wal");
    // The table other stores rely on exists with its contract columns.
    EXPECT_EQ(
        QueryText(Raw(), "SELECT group_concat(name) FROM pragma_table_info('validation_reports')"),
        "id,spec_digest,spec_name,model_sha256,passed,created_at,report_json,signature,"
        "key_id");
    ASSERT_TRUE(
        s->accounts().Add({"prod", "aws", "123456789012", {"eu-west-1"}, "arn:role", "x1"}).ok());
  }
  const std::string schema_before = [&] {
    auto s = OpenStore();
    return QueryText(Raw(), "SELECT group_concat(sql, ';') FROM sqlite_master");
  }();
  auto s = OpenStore();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(QueryText(Raw(), "SELECT group_concat(sql, ';') FROM sqlite_master"), schema_before);
  EXPECT_EQ(QueryText(Raw(), "SELECT count(*) FROM schema_version"), "1");
  auto accounts = s->accounts().List();
  ASSERT_TRUE(accounts.ok());
  ASSERT_EQ(accounts->size(), 1u);
  EXPECT_EQ((*accounts)[0].regions, std::vector<std::string>{"eu-west-1"});
}

TEST_F(ConsoleDatabaseTest, RefusesAFileFromANewerBuild) {
  {
    auto s = OpenStore();
    ASSERT_EQ(
        sqlite3_exec(Raw(), "UPDATE schema_version SET version = 99", nullptr, nullptr, nullptr),
        SQLITE_OK);
  }
  auto s = ConsoleDatabase::Open(dir_);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("newer"), std::string::npos) << s.status().ToString();
}

// A console.db written by a build of schema version 1 (deployments without inter-token latency
// or KV cache use) opens here: it is migrated in place, its rows kept, the new figures zero
// until the next sample, and from then on stored and listed.
TEST_F(ConsoleDatabaseTest, MigratesAVersionOneFileKeepingItsRows) {
  {
    auto s = OpenStore();
    ASSERT_NE(s, nullptr);
    // Take the file back to version 1: the columns version 2 added go, the version with them.
    const char* to_v1 =
        "ALTER TABLE deployments DROP COLUMN itl_p50;"
        "ALTER TABLE deployments DROP COLUMN itl_p99;"
        "ALTER TABLE deployments DROP COLUMN kv_cache_use;"
        "ALTER TABLE deployment_samples DROP COLUMN itl_p50;"
        "ALTER TABLE deployment_samples DROP COLUMN itl_p99;"
        "ALTER TABLE deployment_samples DROP COLUMN kv_cache_use;"
        "DROP TABLE rollout_targets; DROP TABLE rollouts; DROP TABLE audit_heads;"
        "UPDATE schema_version SET version = 1;"
        "INSERT INTO deployments(target, name, model_sha256, engine_build_id, spec_digest, "
        "gpus_requested, labels, sampled_at, ttft_p50, ttft_p99) "
        "VALUES('t', 'chat', 'ab', 'b1', 'd1', 2, '{}', 1000, 40, 90);"
        "INSERT INTO deployment_samples(target, deployment, ts, period, gpus_requested, "
        "gpus_used, replicas_ready, replicas_desired, ttft_p50, ttft_p99, tokens_per_s, "
        "queue_depth, prompt_delta, generated_delta) "
        "VALUES('t', 'chat', 1000, 1, 2, 1, 1, 1, 40, 90, 5, 0, 0, 0);";
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(Raw(), to_v1, nullptr, nullptr, &err), SQLITE_OK) << err;
    EXPECT_EQ(QueryText(Raw(),
                        "SELECT count(*) FROM pragma_table_info('deployments') WHERE name IN "
                        "('itl_p50', 'itl_p99', 'kv_cache_use')"),
              "0");
  }
  auto s = OpenStore();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(*s->SchemaVersion(), ConsoleDatabase::kSchemaVersion);
  // Version 3's rollout journal is there.
  auto journal = s->rollouts().List();
  ASSERT_TRUE(journal.ok()) << journal.status().ToString();
  EXPECT_TRUE(journal->empty());
  auto deps = s->telemetry().ListDeployments();
  ASSERT_TRUE(deps.ok()) << deps.status().ToString();
  ASSERT_EQ(deps->size(), 1u);
  EXPECT_EQ((*deps)[0].model_sha256, "ab");
  EXPECT_DOUBLE_EQ((*deps)[0].ttft_p99_ms, 90);
  EXPECT_DOUBLE_EQ((*deps)[0].itl_p50_ms, 0);
  EXPECT_DOUBLE_EQ((*deps)[0].kv_cache_use, 0);
  EXPECT_EQ(*s->telemetry().CountRows("deployment_samples"), 1);

  // Recent samples: older raw rows are rolled up and dropped by the retention ingest runs.
  const TimeMs now = NowMs();
  DeploymentSample d;
  d.target = "t";
  d.deployment = "chat";
  d.ts = now;
  d.ttft_p50_ms = 41;
  d.ttft_p99_ms = 95;
  d.itl_p50_ms = 12.5;
  d.itl_p99_ms = 48;
  d.kv_cache_use = 0.625;
  ASSERT_TRUE(s->telemetry().AppendSamples({}, {d}).ok());
  deps = s->telemetry().ListDeployments();
  ASSERT_EQ(deps->size(), 1u);
  EXPECT_DOUBLE_EQ((*deps)[0].itl_p50_ms, 12.5);
  EXPECT_DOUBLE_EQ((*deps)[0].itl_p99_ms, 48);
  EXPECT_DOUBLE_EQ((*deps)[0].kv_cache_use, 0.625);
  EXPECT_EQ((*deps)[0].spec_digest, "d1");  // the facts stay
  // The raw history holds them too.
  EXPECT_EQ(QueryText(Raw(), ("SELECT itl_p50 || ',' || itl_p99 || ',' || kv_cache_use FROM "
                              "deployment_samples WHERE ts = " +
                              std::to_string(now))
                                 .c_str()),
            "12.5,48.0,0.625");
  // An older sample arriving late does not overwrite the latest figures.
  d.ts = now - 500;
  d.itl_p50_ms = 99;
  ASSERT_TRUE(s->telemetry().AppendSamples({}, {d}).ok());
  EXPECT_DOUBLE_EQ(s->telemetry().ListDeployments()->at(0).itl_p50_ms, 12.5);
}

TEST_F(ConsoleDatabaseTest, AccountsAndTargetsAddListRemove) {
  auto s = OpenStore();
  Target t;
  t.name = "eu-prod";
  t.endpoint = "10.0.0.5:7443";
  t.account = "prod";
  t.ca_path = "/certs/ca.pem";
  t.labels = {{"team", "ml"}, {"env", "prod"}};
  ASSERT_TRUE(s->targets().Add(t).ok());
  EXPECT_EQ(s->targets().Add(t).code(), StatusCode::kAlreadyExists);
  auto got = s->targets().Get("eu-prod");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->labels.at("team"), "ml");
  EXPECT_EQ(got->ca_path, "/certs/ca.pem");
  ASSERT_TRUE(s->facts().Replace("eu-prod", "", {{"cloud.region", "eu-west-1"}}, 1000).ok());
  ASSERT_TRUE(s->targets().Remove("eu-prod").ok());
  EXPECT_EQ(s->targets().Remove("eu-prod").code(), StatusCode::kNotFound);
  EXPECT_TRUE(s->facts().List()->empty());
  EXPECT_EQ(s->accounts().Remove("nope").code(), StatusCode::kNotFound);
}

// The signed audit head a console verified survives reopening (it is what a later cut-back log
// is checked against), a newer one replaces it, and removing the target forgets it.
TEST_F(ConsoleDatabaseTest, AuditHeadsAreKeptPerTargetAndGoWithTheTarget) {
  {
    auto s = OpenStore();
    ASSERT_NE(s, nullptr);
    Target t;
    t.name = "eu-prod";
    t.endpoint = "10.0.0.5:7443";
    ASSERT_TRUE(s->targets().Add(t).ok());
    EXPECT_FALSE(s->audit_heads().Get("eu-prod")->has_value());
    AuditHead h;
    h.target = "eu-prod";
    h.seq = 41;
    h.hash = "aa";
    h.signed_at = "2026-12-07T10:00:00Z";
    h.key_id = "k1";
    h.public_key = "pk";
    h.signature = "sig";
    h.seen_at_ms = 1000;
    ASSERT_TRUE(s->audit_heads().Record(h).ok());
    h.seq = 42;
    h.hash = "bb";
    ASSERT_TRUE(s->audit_heads().Record(h).ok());
  }
  auto s = OpenStore();
  ASSERT_NE(s, nullptr);
  auto got = s->audit_heads().Get("eu-prod");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->seq, 42);
  EXPECT_EQ((*got)->hash, "bb");
  EXPECT_EQ((*got)->signature, "sig");
  EXPECT_EQ((*got)->seen_at_ms, 1000);
  ASSERT_TRUE(s->targets().Remove("eu-prod").ok());
  EXPECT_FALSE(s->audit_heads().Get("eu-prod")->has_value());
}

TEST_F(ConsoleDatabaseTest, FactsReplaceOnlyTheirPrefix) {
  auto s = OpenStore();
  ASSERT_TRUE(s->facts()
                  .Replace("a", "", {{"cloud.region", "eu-west-1"}, {"tls.min_version", "1.2"}}, 1)
                  .ok());
  ASSERT_TRUE(s->facts().Replace("a", "tls.", {{"tls.min_version", "1.3"}}, 2).ok());
  auto f = s->facts().List("a");
  ASSERT_EQ(f->size(), 2u);
  EXPECT_EQ((*f)[0].key, "cloud.region");
  EXPECT_EQ((*f)[0].observed_at, 1);
  EXPECT_EQ((*f)[1].value, "1.3");
  EXPECT_EQ((*f)[1].observed_at, 2);
  EXPECT_FALSE(s->facts().Replace("a", "tls.", {{"cloud.zone", "x"}}, 3).ok());
}

TEST_F(ConsoleDatabaseTest, TokenCountersBecomeDeltasAndRollUpPerHour) {
  auto s = OpenStore();
  const TimeMs h0 = (NowMs() / 3'600'000 - 2) * 3'600'000;
  std::vector<DeploymentSample> d;
  // Three 10-minute samples in the first hour; the counter resets before the third.
  d.push_back({"t", "chat", h0 + 600'000, 600, 1.0, 0.5, 1, 1, 10, 20, 5, 0, 100, 1000});
  d.push_back({"t", "chat", h0 + 1'200'000, 600, 1.0, 0.75, 1, 1, 10, 20, 5, 0, 150, 1600});
  d.push_back({"t", "chat", h0 + 1'800'000, 600, 2.0, 0.25, 1, 1, 10, 30, 5, 0, 10, 200});
  std::vector<GpuSample> g = {{"t", "n1", 0, h0 + 600'000, 600, 0.5, 1, 40, 300},
                              {"t", "n1", 1, h0 + 600'000, 600, 0.5, 1, 40, 300}};
  ASSERT_TRUE(s->telemetry().AppendSamples(g, d).ok());
  auto u = s->telemetry().HourlyUsage(h0);
  ASSERT_TRUE(u.ok());
  ASSERT_EQ(u->size(), 2u);
  EXPECT_EQ((*u)[0].deployment, "");
  EXPECT_DOUBLE_EQ((*u)[0].gpu_seconds_provisioned, 1200);
  EXPECT_EQ((*u)[1].deployment, "chat");
  // First sample: nothing (the counter's history is unknown); then +600; then a reset: 200.
  EXPECT_EQ((*u)[1].tokens_generated, 800);
  EXPECT_EQ((*u)[1].tokens_prompt, 50 + 10);
  EXPECT_DOUBLE_EQ((*u)[1].gpu_seconds_requested, 600 * 1.0 + 600 * 1.0 + 600 * 2.0);
  EXPECT_DOUBLE_EQ((*u)[1].gpu_seconds_used, 600 * (0.5 + 0.75 + 0.25));
  // Rolling up again adds nothing twice.
  auto again = s->telemetry().HourlyUsage(h0);
  EXPECT_EQ((*again)[1].tokens_generated, 800);
  // Latest values are kept on the deployment.
  auto deps = s->telemetry().ListDeployments();
  ASSERT_EQ(deps->size(), 1u);
  EXPECT_EQ((*deps)[0].generated_tokens_total, 200);
  EXPECT_DOUBLE_EQ((*deps)[0].ttft_p99_ms, 30);
}

TEST_F(ConsoleDatabaseTest, RetentionAppliesItselfOnIngest) {
  DatabaseOptions o;
  o.retention.raw_window = std::chrono::seconds(3600);
  o.retention.interval = std::chrono::seconds(0);  // every append
  auto s = OpenStore(o);
  const TimeMs now = NowMs();
  std::vector<GpuSample> old_and_new = {
      {"t", "n", 0, now - 2 * 3'600'000, 1, 0.5, 1, 1, 1},  // older than the raw window
      {"t", "n", 0, now - 1000, 1, 0.5, 1, 1, 1}};
  ASSERT_TRUE(s->telemetry().AppendSamples(old_and_new, {}).ok());
  // The old raw sample is gone, the recent one stays; both are in the rollups.
  EXPECT_EQ(*s->telemetry().CountRows("gpu_samples"), 1);
  EXPECT_EQ(*s->telemetry().CountRows("gpu_rollup_minute"), 2);
  auto u = s->telemetry().HourlyUsage(now - 3 * 3'600'000);
  double total = 0;
  for (const auto& r : *u) total += r.gpu_seconds_provisioned;
  EXPECT_DOUBLE_EQ(total, 2);
  // Minute rollups older than their window go too.
  ASSERT_TRUE(s->telemetry().ApplyRetention(now + 31LL * 24 * 3'600'000).ok());
  EXPECT_EQ(*s->telemetry().CountRows("gpu_rollup_minute"), 0);
  EXPECT_EQ(*s->telemetry().CountRows("gpu_rollup_hour"), 2);
  EXPECT_EQ(*s->telemetry().CountRows("gpu_samples"), 0);
}

// The ingest path's batch: many targets' samples in one transaction, and last_seen only ever
// raised (a late batch does not move it back), and only for targets that have a status.
TEST_F(ConsoleDatabaseTest, ABatchOfManyTargetsIsOneWrite) {
  auto s = OpenStore();
  ASSERT_TRUE(s->targets().SetStatus({"a", ConnState::kConnected, 5, 100, "", "", ""}).ok());
  ASSERT_TRUE(
      s->targets().SetStatus({"b", ConnState::kError, 5, 100, "unreachable: x", "", ""}).ok());
  const TimeMs now = NowMs();  // recent: retention keeps raw rows of the last hour
  IngestBatch b;
  for (const char* t : {"a", "b", "c"}) {
    for (int i = 0; i < 8; ++i) b.gpu.push_back({t, "n", i, now, 1, 0.5, 1, 40, 300});
    DeploymentSample d;
    d.target = t;
    d.deployment = "chat";
    d.ts = now;
    d.itl_p99_ms = 20;
    b.dep.push_back(d);
  }
  b.last_seen = {{"a", 900}, {"b", 200}, {"c", 300}};
  ASSERT_TRUE(s->telemetry().Append(b).ok());
  EXPECT_EQ(*s->telemetry().CountRows("gpu_samples"), 24);
  EXPECT_EQ(*s->telemetry().CountRows("deployment_samples"), 3);
  auto st = s->targets().ListStatus();
  ASSERT_EQ(st->size(), 2u);  // no row made up for "c"
  EXPECT_EQ((*st)[0].last_seen, 900);
  EXPECT_EQ((*st)[1].last_seen, 200);
  EXPECT_EQ((*st)[1].state, ConnState::kError);  // the state is not the batch's business
  IngestBatch late;
  late.last_seen = {{"a", 500}};
  ASSERT_TRUE(s->telemetry().Append(late).ok());
  EXPECT_EQ(s->targets().ListStatus()->at(0).last_seen, 900);
}

TEST_F(ConsoleDatabaseTest, StatusAndBudgets) {
  auto s = OpenStore();
  ASSERT_TRUE(
      s->targets().SetStatus({"a", ConnState::kError, 5, 4, "unreachable: refused", "", ""}).ok());
  ASSERT_TRUE(s->targets()
                  .SetStatus({"a", ConnState::kConnected, 6, 6, "", "spiffe://x/vendor/op",
                              "vendor-operator"})
                  .ok());
  auto st = s->targets().ListStatus();
  ASSERT_EQ(st->size(), 1u);
  EXPECT_EQ((*st)[0].state, ConnState::kConnected);
  EXPECT_EQ((*st)[0].role, "vendor-operator");
  EXPECT_FALSE(s->budgets().Set({"team", 10, 30, 0.8}).ok());
  EXPECT_FALSE(s->budgets().Set({"team=ml", -1, 30, 0.8}).ok());
  ASSERT_TRUE(s->budgets().Set({"team=ml", 100, 7, 0.5}).ok());
  EXPECT_EQ(s->budgets().List()->at(0).window_days, 7);
  ASSERT_TRUE(s->budgets().Remove("team=ml").ok());
  EXPECT_EQ(s->budgets().Remove("team=ml").code(), StatusCode::kNotFound);
}

Target TargetNamed(const std::string& name) {
  Target t;
  t.name = name;
  t.endpoint = "127.0.0.1:7443";
  return t;
}

// The threading model: while one thread holds a transaction, another thread's statement waits
// for it instead of joining it. Here the first thread's transaction is rolled back: had the
// second thread's insert joined it (as on a shared connection), it would be rolled back too.
TEST_F(ConsoleDatabaseTest, AnotherThreadsStatementWaitsForAnOpenTransaction) {
  auto db = OpenStore();
  ASSERT_NE(db, nullptr);
  std::atomic<bool> other_done{false};
  Status other_status;
  std::thread other;
  {
    auto tx = db->Begin();
    ASSERT_TRUE(tx.ok()) << tx.status().ToString();
    ASSERT_TRUE(db->targets().Add(TargetNamed("in-transaction")).ok());
    other = std::thread([&] {
      other_status = db->targets().Add(TargetNamed("other-thread"));
      other_done = true;
    });
    // The other thread is blocked on the open transaction, however long it lasts.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_FALSE(other_done.load());
    // Inside the transaction, its own write is visible; the other thread's is not there.
    auto inside = db->targets().List();
    ASSERT_TRUE(inside.ok());
    ASSERT_EQ(inside->size(), 1u);
    EXPECT_EQ((*inside)[0].name, "in-transaction");
  }  // rolled back
  other.join();
  ASSERT_TRUE(other_status.ok()) << other_status.ToString();
  auto after = db->targets().List();
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ((*after)[0].name, "other-thread");
}

// On the thread that holds a transaction, repository calls join it (their own transactions nest
// as savepoints): all of them commit together, or none.
TEST_F(ConsoleDatabaseTest, RepositoryCallsInATransactionCommitOrRollBackTogether) {
  auto db = OpenStore();
  ASSERT_NE(db, nullptr);
  {
    auto tx = db->Begin();
    ASSERT_TRUE(tx.ok());
    ASSERT_TRUE(db->targets().Add(TargetNamed("a")).ok());
    ASSERT_TRUE(db->facts().Replace("a", "", {{"cloud.region", "eu-west-1"}}, 1).ok());
    // A failing call inside rolls back only its own part.
    EXPECT_EQ(db->facts().Replace("a", "tls.", {{"cloud.zone", "x"}}, 1).code(),
              StatusCode::kInvalidArgument);
  }  // not committed
  EXPECT_TRUE(db->targets().List()->empty());
  EXPECT_TRUE(db->facts().List()->empty());
  {
    auto tx = db->Begin();
    ASSERT_TRUE(tx.ok());
    ASSERT_TRUE(db->targets().Add(TargetNamed("a")).ok());
    ASSERT_TRUE(db->facts().Replace("a", "", {{"cloud.region", "eu-west-1"}}, 1).ok());
    ASSERT_TRUE(tx->Commit().ok());
    EXPECT_EQ(tx->Commit().code(), StatusCode::kFailedPrecondition);
  }
  EXPECT_EQ(db->targets().List()->size(), 1u);
  ASSERT_EQ(db->facts().List()->size(), 1u);
  // Removing the target takes its facts with it, in one transaction.
  ASSERT_TRUE(db->targets().Remove("a").ok());
  EXPECT_TRUE(db->facts().List()->empty());
}

// Another process holding the write lock past the busy timeout: the write fails UNAVAILABLE (the
// one mapping, app/common/sqlite/sqlite_db.h), and nothing half-written remains.
TEST_F(ConsoleDatabaseTest, AFileLockedElsewhereIsUnavailable) {
  auto db = OpenStore({});
  ASSERT_NE(db, nullptr);
  sqlite3_busy_timeout(Raw(), 100);
  ASSERT_EQ(sqlite3_exec(Raw(), "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  const auto start = std::chrono::steady_clock::now();
  Status s = db->targets().Remove("nothing");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  ASSERT_EQ(sqlite3_exec(Raw(), "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  EXPECT_EQ(db->targets().Remove("nothing").code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace sextant::console
