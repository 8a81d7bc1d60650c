// Batched audit appends: a group is one transaction that chains like single appends, callers
// hear OK only for durable records, a failed group fails every caller in it, the queue is
// bounded, and two writers on one file (the agent and `sextant-agent apikeys`) keep one chain.
#include "app/agent/audit/audit_batcher.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <thread>

namespace sextant::agent {
namespace {

namespace fs = std::filesystem;

AuditEntry Entry(const std::string& target) {
  return {"apikey:app", "customer-app", "POST /v1/completions", target, "allowed"};
}

class AuditBatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sextant-auditbatch-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto log = AuditLog::Open(dir_);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    log_ = std::move(*log);
  }
  void TearDown() override {
    log_.reset();
    fs::remove_all(dir_);
  }

  // Runs SQL on the file through a connection of its own (another process, in effect).
  void Sql(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / "audit.db").c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
  }

  fs::path dir_;
  std::unique_ptr<AuditLog> log_;
};

TEST_F(AuditBatcherTest, AppendBatchChainsLikeSingleAppends) {
  ASSERT_TRUE(log_->Append(Entry("a")).ok());
  auto batch = log_->AppendBatch({Entry("b"), Entry("c"), Entry("d")});
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  ASSERT_EQ(batch->size(), 3u);
  EXPECT_EQ((*batch)[0].seq, 2);
  EXPECT_EQ((*batch)[2].seq, 4);
  EXPECT_EQ((*batch)[1].prev_hash, (*batch)[0].hash);
  EXPECT_EQ((*batch)[1].entry.target, "c");
  ASSERT_TRUE(log_->Append(Entry("e")).ok());
  auto v = log_->Verify();
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->intact) << v->reason;
  EXPECT_EQ(v->records, 5);
  auto none = log_->AppendBatch({});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(AuditBatcherTest, ConcurrentCallersShareTransactionsAndEveryRecordIsDurable) {
  AuditBatcher batcher(*log_);
  constexpr int kThreads = 8, kPerThread = 100;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        if (batcher.Append(Entry("t" + std::to_string(t) + "-" + std::to_string(i))).ok()) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  const AuditBatcher::Stats s = batcher.stats();
  EXPECT_EQ(s.records, static_cast<uint64_t>(kThreads * kPerThread));
  // Eight callers waiting on fsyncs share transactions.
  EXPECT_LT(s.batches, s.records);
  EXPECT_GT(s.largest_batch, 1u);
  auto v = log_->Verify();
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->intact) << v->reason;
  EXPECT_EQ(v->records, kThreads * kPerThread);
}

TEST_F(AuditBatcherTest, AFailedGroupFailsEveryCallerAndRecordsNothing) {
  ASSERT_TRUE(log_->Append(Entry("before")).ok());
  // The table disappears underneath the writer: every insert fails.
  Sql("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete; "
      "ALTER TABLE audit_log RENAME TO audit_log_moved;");
  AuditBatcher batcher(*log_);
  std::vector<std::future<Status>> calls;
  for (int i = 0; i < 16; ++i) {
    calls.push_back(std::async(
        std::launch::async, [&, i] { return batcher.Append(Entry("call-" + std::to_string(i))); }));
  }
  for (auto& c : calls) {
    const Status s = c.get();
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find("audit log append"), std::string::npos) << s.ToString();
  }
  EXPECT_EQ(batcher.stats().failed, 16u);
  EXPECT_EQ(batcher.stats().records, 0u);
  Sql("ALTER TABLE audit_log_moved RENAME TO audit_log;");
  auto all = log_->Query({.limit = 100});
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].entry.target, "before");
}

TEST_F(AuditBatcherTest, AFullQueueRefusesAndTheQueuedRecordsAreWrittenLater) {
  AuditBatcher batcher(*log_, {.max_queue = 4, .max_batch = 1024});
  // Another connection holds the write lock: the writer waits in BEGIN IMMEDIATE (busy timeout).
  sqlite3* blocker = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "audit.db").c_str(), &blocker), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(blocker, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  std::atomic<int> done_ok{0};
  auto on_done = [&](const Status& s) {
    if (s.ok()) ++done_ok;
  };
  // The first entry is taken by the writer (which then blocks); up to four more wait.
  ASSERT_TRUE(batcher.Submit(Entry("first"), on_done).ok());
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  Status refused;
  int accepted = 1;
  while (refused.ok() && std::chrono::steady_clock::now() < until) {
    refused = batcher.Submit(Entry("more"), on_done);
    if (refused.ok()) ++accepted;
  }
  EXPECT_EQ(refused.code(), StatusCode::kResourceExhausted) << refused.ToString();
  EXPECT_LE(accepted, 5);
  ASSERT_EQ(sqlite3_exec(blocker, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(blocker);
  batcher.Stop();
  EXPECT_EQ(done_ok.load(), accepted);
  auto v = log_->Verify();
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->records, accepted);
  EXPECT_TRUE(v->intact);
  EXPECT_EQ(batcher.Submit(Entry("late"), on_done).code(), StatusCode::kUnavailable);
}

TEST_F(AuditBatcherTest, TwoWritersOnOneFileKeepOneChain) {
  auto other = AuditLog::Open(dir_);  // e.g. `sextant-agent apikeys add` while the agent runs
  ASSERT_TRUE(other.ok());
  AuditBatcher batcher(*log_);
  std::thread cli([&] {
    for (int i = 0; i < 50; ++i) ASSERT_TRUE((*other)->Append(Entry("cli")).ok());
  });
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(batcher.Append(Entry("agent")).ok());
  cli.join();
  auto v = log_->Verify();
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->intact) << v->reason;
  EXPECT_EQ(v->records, 100);
}

}  // namespace
}  // namespace sextant::agent
