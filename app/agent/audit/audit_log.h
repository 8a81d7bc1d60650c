// AuditLog: the agent's append-only, hash-chained record of every call (<state>/audit.db,
// SQLite, WAL, synchronous=FULL). Each record holds
//   hash = hex(sha256(prev_hash || canonical))
// where canonical is the JSON object {identity, outcome, role, rpc, seq, target, time} with
// sorted keys and no whitespace, and prev_hash of seq 1 is 64 zeros. Triggers refuse UPDATE and
// DELETE, so the table only grows through this class; tampering with the file (by hand) is
// found by Verify(), which names the first broken record.
//
// Append() returns only when the record is durable; a caller that cannot append must fail the
// call it was about to make.
//
// Thread-safety: every method is safe from any thread (one mutex; appends are serialized so the
// chain is linear).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "app/agent/state/sqlite_db.h"
#include "app/common/audit_chain.h"
#include "engine/base/status.h"

namespace sextant::agent {

// The record format and chain check are shared with the console (app/common/audit_chain.h).
using audit::AuditChainVerifier;
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

class AuditLog {
 public:
  // Opens or creates <dir>/audit.db.
  static Result<std::unique_ptr<AuditLog>> Open(const std::filesystem::path& dir);

  // Appends one record and returns it (durable on return). An error means nothing was
  // recorded.
  Result<AuditRecord> Append(const AuditEntry& entry);
  // Appends `entries` in order as consecutive records in one transaction (one fsync for all) and
  // returns them (durable on return). All or nothing: an error means none was recorded.
  Result<std::vector<AuditRecord>> AppendBatch(const std::vector<AuditEntry>& entries);
  // Records in seq order matching the query.
  Result<std::vector<AuditRecord>> Query(const AuditQuery& query) const;
  // Recomputes the whole chain.
  Result<ChainVerification> Verify() const;
  // Last seq and hash (no verification).
  Result<std::pair<int64_t, std::string>> Head() const;

  const std::filesystem::path& path() const { return path_; }
  Status IntegrityCheck() const;

 private:
  AuditLog(std::unique_ptr<SqliteDb> db, std::filesystem::path path)
      : db_(std::move(db)), path_(std::move(path)) {}

  mutable std::mutex mu_;
  std::unique_ptr<SqliteDb> db_;  // GUARDED_BY(mu_)
  std::filesystem::path path_;
};

// Verifies <dir>/audit.db without writing to it (for `sextant-agent audit verify`).
Result<ChainVerification> VerifyAuditFile(const std::filesystem::path& dir);

}  // namespace sextant::agent
