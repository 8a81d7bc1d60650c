// AuditLog: the agent's append-only, hash-chained record of every call (<state>/audit.db,
// SQLite, WAL, synchronous=FULL). Each record holds
//   hash = hex(sha256(prev_hash || canonical))
// (app/common/audit_chain.h: the canonical form, the salted detail digest, intent_seq). Triggers
// refuse UPDATE and DELETE, so the table only grows through this class.
//
// Completeness: after every append the agent signs the new head (an AuditCheckpoint, Ed25519
// with <state>/audit-signing-key.pem, a key only the agent holds, created on first open, mode
// 0600) and keeps it twice: the newest in the database, and every one in the checkpoint journal
// <state>/audit-checkpoints.jsonl (one JSON object per line, appended, fsynced at most every
// 250 ms and on close). A log cut short (rows deleted after the triggers were dropped) leaves
// checkpoints past its end; a log re-chained (a record rewritten and every later hash
// recomputed) no longer has the hash a checkpoint signed for that seq. VerifyAuditFile and
// VerifyFull name either, with the seq where it starts. A console that recorded a signed head
// catches what the files alone cannot (both cut back together): see ListAuditLog's anchor.
//
// Caller fields are capped (audit::kAuditFieldCaps) and say so in the record.
//
// Reads verify incrementally: the log keeps the prefix it has verified (the whole chain on
// Open, then each record it appends); Verify() checks that the prefix's last record still has
// the hash it had (a re-chained or truncated file cannot keep it) and hashes only the records
// after it. VerifyFull() re-hashes everything. A broken chain stays reported as broken.
//
// Append() returns only when the record is durable; a caller that cannot append must fail the
// call it was about to make.
//
// Thread-safety: every method is safe from any thread (one mutex; appends are serialized so the
// chain is linear).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "app/common/audit_chain.h"
#include "app/common/signing.h"
#include "app/common/sqlite/sqlite_db.h"
#include "engine/base/status.h"

namespace sextant::agent {

using sqlite::SqliteDb;  // the SQLite wrapper the agent's stores share with the console
using sqlite::SqliteStmt;

// The record format and chain check are shared with the console (app/common/audit_chain.h).
using audit::AuditChainVerifier;
using audit::AuditCheckpoint;
using audit::AuditEntry;
using audit::AuditRecord;
using audit::ChainVerification;
using audit::kGenesisHash;

struct AuditQuery {
  int64_t after_seq = 0;
  int limit = 100;
  std::string identity;  // exact match when non-empty
  std::string rpc;       // exact match when non-empty
};

inline constexpr char kAuditKeyFile[] = "audit-signing-key.pem";
inline constexpr char kAuditJournalFile[] = "audit-checkpoints.jsonl";

class AuditLog {
 public:
  // Opens or creates <dir>/audit.db, the audit key and the checkpoint journal, and verifies the
  // whole chain and its checkpoints once (the result is what Verify() reports from then on).
  static Result<std::unique_ptr<AuditLog>> Open(const std::filesystem::path& dir);
  ~AuditLog();  // fsyncs the journal

  // Appends one record (fields capped) and returns it as stored (durable on return). An error
  // means nothing was recorded.
  Result<AuditRecord> Append(const AuditEntry& entry);
  // Appends `entries` in order as consecutive records in one transaction (one fsync for all) and
  // returns them (durable on return). All or nothing: an error means none was recorded.
  Result<std::vector<AuditRecord>> AppendBatch(const std::vector<AuditEntry>& entries);
  // Records in seq order matching the query, with their details.
  Result<std::vector<AuditRecord>> Query(const AuditQuery& query) const;
  // Incremental (see above): O(records appended by others since the last call).
  Result<ChainVerification> Verify() const;
  // The whole chain and every checkpoint of the journal.
  Result<ChainVerification> VerifyFull() const;
  // Last seq and hash (no verification).
  Result<std::pair<int64_t, std::string>> Head() const;
  // The hash of record `seq`; nullopt when the log has no such record.
  Result<std::optional<std::string>> HashAt(int64_t seq) const;
  // The newest signed checkpoint (of the head, once anything was appended or on Open).
  Result<AuditCheckpoint> LatestCheckpoint() const;
  const report::VerifyingKey& checkpoint_key() const { return key_.public_key(); }

  // Calls admitted (outcome "allowed") to one of `rpcs` whose outcome was never recorded (the
  // agent stopped between the two records): appends, for each, an outcome record "interrupted"
  // naming it (intent_seq) with describe(record) as detail. Only records written since outcomes
  // were linked to their intents are considered. Returns how many were recorded.
  Result<int> RecordInterrupted(const std::set<std::string>& rpcs,
                                const std::function<std::string(const AuditRecord&)>& describe);

  const std::filesystem::path& path() const { return path_; }
  const std::filesystem::path& journal_path() const { return journal_path_; }
  Status IntegrityCheck() const;

 private:
  AuditLog(std::unique_ptr<SqliteDb> db, std::filesystem::path path, std::filesystem::path journal,
           report::SigningKey key)
      : db_(std::move(db)),
        path_(std::move(path)),
        journal_path_(std::move(journal)),
        key_(std::move(key)) {}

  Result<AuditRecord> AppendLocked(const AuditEntry& entry);
  // REQUIRES: mu_ held, entries not empty. Consecutive records in one transaction, one checkpoint.
  Result<std::vector<AuditRecord>> AppendBatchLocked(const std::vector<AuditEntry>& entries);
  // Re-reads the file from the verified prefix on; marks the chain broken when the prefix no
  // longer holds. REQUIRES: mu_ held.
  Status CatchUpLocked() const;
  void MarkBrokenLocked(int64_t seq, std::string reason) const;
  Status WriteJournalLocked(const AuditCheckpoint& c);

  mutable std::mutex mu_;
  std::unique_ptr<SqliteDb> db_;  // GUARDED_BY(mu_)
  std::filesystem::path path_;
  std::filesystem::path journal_path_;
  report::SigningKey key_;
  int journal_fd_ = -1;                               // GUARDED_BY(mu_)
  int64_t last_fsync_ms_ = 0;                         // GUARDED_BY(mu_)
  mutable int64_t verified_seq_ = 0;                  // GUARDED_BY(mu_): the verified prefix
  mutable std::string verified_hash_;                 // GUARDED_BY(mu_)
  mutable std::optional<ChainVerification> broken_;   // GUARDED_BY(mu_): sticky
  std::optional<AuditCheckpoint> latest_checkpoint_;  // GUARDED_BY(mu_)
  int64_t checkpoints_ = 0;                           // GUARDED_BY(mu_)
};

// Verifies <dir>/audit.db and its checkpoint journal without writing to them (for
// `sextant-agent audit verify`): the chain, then every checkpoint (signature by the agent's
// key, seq within the log, hash equal to the record's). NOT_FOUND when there is no log.
Result<ChainVerification> VerifyAuditFile(const std::filesystem::path& dir);

}  // namespace sextant::agent
