// The hash-chained audit log: appends chain, the table refuses UPDATE/DELETE, and tampering
// with the file (one flipped byte, a deleted row, two rows swapped) is found and named; so is a
// log cut short or re-chained (every hash after a rewritten record recomputed), through the
// checkpoints the agent signs. Caller fields are capped and say so; details are bound by a
// salted digest that a reader without the detail can still verify; reads verify incrementally;
// admitted calls with no outcome are marked interrupted.
#include "app/agent/audit/audit_log.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "app/common/signing.h"
#include "engine/base/sha256.h"
#include "tests/support/audit_tamper.h"

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

TEST_F(AuditLogTest, CheckpointsAreSignedAndKeptOutsideTheDatabase) {
  Fill(4);
  auto log = AuditLog::Open(dir_);
  ASSERT_TRUE(log.ok());
  auto cp = (*log)->LatestCheckpoint();
  ASSERT_TRUE(cp.ok());
  EXPECT_EQ(cp->seq, 4);
  EXPECT_TRUE(audit::VerifyCheckpoint(*cp, (*log)->checkpoint_key()).ok());
  // The key is the agent's alone (mode 0600) and the journal has one checkpoint per record.
  EXPECT_EQ(std::filesystem::status(dir_ / kAuditKeyFile).permissions() &
                (std::filesystem::perms::group_all | std::filesystem::perms::others_all),
            std::filesystem::perms::none);
  auto v = VerifyAuditFile(dir_);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->intact) << v->reason;
  EXPECT_GE(v->checkpoints, 4);
  EXPECT_EQ(v->newest_checkpoint_seq, 4);
}

TEST_F(AuditLogTest, ALogCutShortIsFoundAndNamed) {
  Fill(8);
  // The last three rows deleted after the trigger was dropped: the chain of 1..5 is intact.
  Tamper("DELETE FROM audit_log WHERE seq > 5;");
  auto v = VerifyAuditFile(dir_);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_FALSE(v->intact);
  EXPECT_EQ(v->first_broken_seq, 6);
  EXPECT_NE(v->reason.find("truncated: the log ends at seq 5"), std::string::npos) << v->reason;
  EXPECT_NE(v->reason.find("records 6..8 are missing"), std::string::npos) << v->reason;
}

TEST_F(AuditLogTest, ALogReChainedFromARewrittenRecordIsFoundAndNamed) {
  Fill(8);
  ASSERT_TRUE(test_audit::Rechain(dir_, 3).ok());
  auto v = VerifyAuditFile(dir_);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_FALSE(v->intact);
  EXPECT_EQ(v->first_broken_seq, 3);
  EXPECT_NE(v->reason.find("re-chained: record 3"), std::string::npos) << v->reason;
  // An agent opening it finds it too and keeps saying so.
  auto log = AuditLog::Open(dir_);
  ASSERT_TRUE(log.ok());
  auto live = (*log)->Verify();
  ASSERT_TRUE(live.ok());
  EXPECT_FALSE(live->intact);
  EXPECT_NE(live->reason.find("re-chained"), std::string::npos) << live->reason;
}

TEST_F(AuditLogTest, WithTheAgentsKeyTheFilesCanBeMadeToAgreeAgain) {
  // The limit of what the files alone prove: someone who holds the agent's key as well (root on
  // the agent's host) re-signs the journal after cutting the log. Only a reader that recorded a
  // signed head before catches that (the console: fleet_audit_test).
  Fill(6);
  ASSERT_TRUE(test_audit::Tamper(dir_, "DELETE FROM audit_log WHERE seq > 4;").ok());
  ASSERT_TRUE(test_audit::ResignJournal(dir_).ok());
  auto v = VerifyAuditFile(dir_);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->intact) << v->reason;
  EXPECT_EQ(v->head_seq, 4);
}

TEST_F(AuditLogTest, AForgedOrMissingJournalIsFound) {
  Fill(3);
  // A checkpoint line signed by another key.
  auto other = report::SigningKey::Generate();
  ASSERT_TRUE(other.ok());
  auto forged = audit::SignCheckpoint(9, std::string(64, 'f'), "2026-01-01T00:00:00.000Z", *other);
  ASSERT_TRUE(forged.ok());
  {
    std::ofstream out(dir_ / kAuditJournalFile, std::ios::app);
    out << forged->ToJson().dump() << "\n";
  }
  auto v = VerifyAuditFile(dir_);
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->intact);
  EXPECT_NE(v->reason.find("not made by this agent"), std::string::npos) << v->reason;
  // No journal at all: completeness cannot be proved.
  std::filesystem::remove(dir_ / kAuditJournalFile);
  v = VerifyAuditFile(dir_);
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->intact);
  EXPECT_NE(v->reason.find("completeness cannot be proved"), std::string::npos) << v->reason;
}

TEST_F(AuditLogTest, TheRunningLogSeesATruncationOrReChainWithoutReHashing) {
  Fill(6);
  auto log = AuditLog::Open(dir_);
  ASSERT_TRUE(log.ok());
  ASSERT_TRUE((*log)->Verify()->intact);
  // A content edit that does not re-chain is for the full verification (reads do not re-hash
  // the verified prefix) ...
  Tamper("UPDATE audit_log SET target='dep-x' WHERE seq=2;");
  EXPECT_TRUE((*log)->Verify()->intact);
  auto full = (*log)->VerifyFull();
  ASSERT_TRUE(full.ok());
  EXPECT_FALSE(full->intact);
  EXPECT_EQ(full->first_broken_seq, 2);
  // ... and from then on the log reports it broken.
  EXPECT_FALSE((*log)->Verify()->intact);
}

TEST_F(AuditLogTest, ARunningLogCutBackUnderneathSaysSo) {
  Fill(5);
  auto log = AuditLog::Open(dir_);
  ASSERT_TRUE(log.ok());
  Tamper("DELETE FROM audit_log WHERE seq > 3;");
  auto v = (*log)->Verify();
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->intact);
  EXPECT_NE(v->reason.find("truncated"), std::string::npos) << v->reason;
}

TEST_F(AuditLogTest, CallerFieldsAreCappedAndSaySo) {
  auto log = AuditLog::Open(dir_);
  ASSERT_TRUE(log.ok());
  const std::string huge(15 * 1024 * 1024, 'n');
  auto r = (*log)->Append({std::string(2000, 'i'), "r", "ApplyDeployment", huge, "denied"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_LE(r->entry.target.size(), audit::kAuditFieldCaps.target);
  EXPECT_NE(
      r->entry.target.find("[capped: 15728640 bytes, sha256 " + Sha256Hex(huge).substr(0, 16)),
      std::string::npos)
      << r->entry.target;
  EXPECT_LE(r->entry.identity.size(), audit::kAuditFieldCaps.identity);
  auto v = (*log)->VerifyFull();
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->intact) << v->reason;
  EXPECT_LT(std::filesystem::file_size(dir_ / "audit.db"), 1u << 20);
}

TEST_F(AuditLogTest, DetailsAreBoundByASaltedDigestAndMayBeWithheld) {
  auto log = AuditLog::Open(dir_);
  ASSERT_TRUE(log.ok());
  AuditEntry e{"spiffe://x/vendor/op", "vendor-operator", "ApplyDeployment", "d", "error: X"};
  e.detail = "model sha256 mismatch: store has " + std::string(64, '5');
  ASSERT_TRUE((*log)->Append(e).ok());
  auto all = (*log)->Query({});
  ASSERT_TRUE(all.ok());
  AuditRecord r = all->front();
  EXPECT_EQ(r.entry.detail, e.detail);
  EXPECT_EQ(r.detail_salt.size(), 32u);
  EXPECT_EQ(r.detail_digest, audit::DetailDigest(r.detail_salt, e.detail));
  // Withheld (a reader whose audit scope is "own"): still verifies, and the digest cannot be
  // tested against a guess of the detail without the salt.
  r.WithholdDetail();
  EXPECT_TRUE(r.entry.detail.empty());
  audit::AuditChainVerifier verifier(/*whole_chain=*/false);
  EXPECT_TRUE(verifier.Add(r)) << verifier.result().reason;
  EXPECT_NE(r.detail_digest, Sha256Hex(e.detail));
  // A detail altered in transit does not verify.
  AuditRecord altered = all->front();
  altered.entry.detail = "model not in store";
  audit::AuditChainVerifier v2(false);
  EXPECT_FALSE(v2.Add(altered));
}

TEST_F(AuditLogTest, AdmittedCallsWithNoOutcomeAreMarkedInterrupted) {
  auto log = AuditLog::Open(dir_);
  ASSERT_TRUE(log.ok());
  auto done = (*log)->Append({"i", "r", "ApplyDeployment", "a", "allowed"});
  ASSERT_TRUE(done.ok());
  AuditEntry outcome{"i", "r", "ApplyDeployment", "a", "ok"};
  outcome.intent_seq = done->seq;
  ASSERT_TRUE((*log)->Append(outcome).ok());
  auto lost = (*log)->Append({"i", "r", "ApplyDeployment", "b", "allowed"});
  ASSERT_TRUE(lost.ok());
  ASSERT_TRUE((*log)->Append({"i", "r", "WhoAmI", "", "allowed"}).ok());  // no outcome expected
  auto n = (*log)->RecordInterrupted(
      {"ApplyDeployment"}, [](const AuditRecord& r) { return "stopped during " + r.entry.target; });
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1);
  auto recs = (*log)->Query({.rpc = "ApplyDeployment"});
  ASSERT_TRUE(recs.ok());
  ASSERT_EQ(recs->size(), 4u);
  EXPECT_EQ(recs->back().entry.outcome, "interrupted");
  EXPECT_EQ(recs->back().entry.intent_seq, lost->seq);
  EXPECT_EQ(recs->back().entry.detail, "stopped during b");
  // Once marked, never again.
  EXPECT_EQ(*(*log)->RecordInterrupted({"ApplyDeployment"}, {}), 0);
}

}  // namespace
}  // namespace sextant::agent
