// The hash-chained audit log: appends chain, the table refuses UPDATE/DELETE, and tampering
// with the file (one flipped byte, a deleted row, two rows swapped) is found and named.
#include "app/agent/audit/audit_log.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <unistd.h>

#include <filesystem>

#include "app/common/sha256.h"

namespace sextant::agent {
namespace {

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sextant-audit-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void Fill(int n) {
    auto log = AuditLog::Open(dir_);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    for (int i = 1; i <= n; ++i) {
      auto r = (*log)->Append({"spiffe://example.org/vendor/op", "vendor-operator",
                               "ApplyDeployment", "dep-" + std::to_string(i), "allowed"});
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      ASSERT_EQ(r->seq, i);
    }
  }

  // Tampering from outside the agent: drop the triggers and run SQL on the file.
  void Tamper(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / "audit.db").c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    const std::string all =
        "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete; " + sql;
    EXPECT_EQ(sqlite3_exec(db, all.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
  }

  std::filesystem::path dir_;
};

TEST_F(AuditLogTest, RecordsChainAndVerify) {
  Fill(5);
  auto log = AuditLog::Open(dir_);
  ASSERT_TRUE(log.ok());
  auto all = (*log)->Query({});
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 5u);
  EXPECT_EQ((*all)[0].prev_hash, kGenesisHash);
  for (size_t i = 0; i < all->size(); ++i) {
    const auto& r = (*all)[i];
    EXPECT_EQ(r.hash, Sha256Hex(r.prev_hash + r.Canonical()));
    if (i > 0) {
      EXPECT_EQ(r.prev_hash, (*all)[i - 1].hash);
    }
  }
  EXPECT_NE((*all)[0].Canonical().find("\"rpc\":\"ApplyDeployment\""), std::string::npos);
  auto v = (*log)->Verify();
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->intact) << v->reason;
  EXPECT_EQ(v->records, 5);
  EXPECT_EQ(v->head_hash, all->back().hash);
  EXPECT_TRUE((*log)->IntegrityCheck().ok());
}

TEST_F(AuditLogTest, QueryFiltersAndPages) {
  auto log = AuditLog::Open(dir_);
  ASSERT_TRUE(log.ok());
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE((*log)
                    ->Append({i % 2 ? "spiffe://a/vendor/x" : "spiffe://a/customer/y", "r",
                              i % 3 ? "WhoAmI" : "ListAuditLog", "", "allowed"})
                    .ok());
  }
  auto vendor = (*log)->Query({.after_seq = 0, .limit = 100, .identity = "spiffe://a/vendor/x"});
  ASSERT_TRUE(vendor.ok());
  ASSERT_EQ(vendor->size(), 3u);
  for (const auto& r : *vendor) EXPECT_EQ(r.entry.identity, "spiffe://a/vendor/x");
  auto page = (*log)->Query({.after_seq = 2, .limit = 2});
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->size(), 2u);
  EXPECT_EQ((*page)[0].seq, 3);
  EXPECT_EQ((*page)[1].seq, 4);
  auto rpc = (*log)->Query({.after_seq = 0, .limit = 100, .identity = "", .rpc = "ListAuditLog"});
  ASSERT_TRUE(rpc.ok());
  EXPECT_EQ(rpc->size(), 2u);
}

TEST_F(AuditLogTest, TableRefusesUpdateAndDelete) {
  Fill(2);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "audit.db").c_str(), &db), SQLITE_OK);
  EXPECT_NE(sqlite3_exec(db, "UPDATE audit_log SET outcome='denied' WHERE seq=1", nullptr, nullptr,
                         nullptr),
            SQLITE_OK);
  EXPECT_NE(sqlite3_exec(db, "DELETE FROM audit_log WHERE seq=2", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto v = VerifyAuditFile(dir_);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->intact);
}

TEST_F(AuditLogTest, FlippedByteIsFound) {
  Fill(6);
  // One byte of record 4's target: "dep-4" -> "dep-5" differs in one bit of one byte.
  Tamper("UPDATE audit_log SET target='dep-5' WHERE seq=4;");
  auto v = VerifyAuditFile(dir_);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_FALSE(v->intact);
  EXPECT_EQ(v->first_broken_seq, 4);
  EXPECT_NE(v->reason.find("hash does not match"), std::string::npos) << v->reason;
}

TEST_F(AuditLogTest, FlippedHashByteIsFound) {
  Fill(4);
  // Rewriting a stored hash breaks the link to the next record.
  Tamper(
      "UPDATE audit_log SET hash=substr(hash,1,10) || (CASE substr(hash,11,1) WHEN 'a' THEN "
      "'b' ELSE 'a' END) || substr(hash,12) WHERE seq=2;");
  auto v = VerifyAuditFile(dir_);
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->intact);
  EXPECT_EQ(v->first_broken_seq, 2);
}

TEST_F(AuditLogTest, DeletedRowIsFound) {
  Fill(6);
  Tamper("DELETE FROM audit_log WHERE seq=3;");
  auto v = VerifyAuditFile(dir_);
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->intact);
  EXPECT_EQ(v->first_broken_seq, 3);
  EXPECT_NE(v->reason.find("expected seq 3"), std::string::npos) << v->reason;
}

TEST_F(AuditLogTest, ReorderedRowsAreFound) {
  Fill(6);
  // Swap records 2 and 3 (their whole contents, renumbered) — both orders of rows.
  Tamper(
      "UPDATE audit_log SET seq=-2 WHERE seq=2; UPDATE audit_log SET seq=2 WHERE seq=3; "
      "UPDATE audit_log SET seq=3 WHERE seq=-2;");
  auto v = VerifyAuditFile(dir_);
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->intact);
  EXPECT_EQ(v->first_broken_seq, 2);
}

TEST_F(AuditLogTest, AppendContinuesTheChainAfterReopen) {
  Fill(3);
  Fill(0);
  auto log = AuditLog::Open(dir_);
  ASSERT_TRUE(log.ok());
  auto r = (*log)->Append({"i", "r", "WhoAmI", "", "allowed"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->seq, 4);
  auto v = (*log)->Verify();
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->intact);
  EXPECT_EQ(v->records, 4);
}

TEST_F(AuditLogTest, AppendFailsWhenTheLogCannotBeWritten) {
  Fill(1);
  auto log = AuditLog::Open(dir_);
  ASSERT_TRUE(log.ok());
  // Another connection holds the write lock: the append cannot be made durable and says so.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "audit.db").c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 100);
  ASSERT_EQ(sqlite3_exec(db, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  auto r = (*log)->Append({"i", "r", "WhoAmI", "", "allowed"});
  sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  EXPECT_FALSE(r.ok());
  auto v = (*log)->Verify();
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->records, 1);
}

}  // namespace
}  // namespace sextant::agent
