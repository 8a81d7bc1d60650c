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

#include "app/agentstate/sqlite_db.h"
#include "engine/base/status.h"

namespace sextant::agent {

struct AuditEntry {
  std::string identity;
  std::string role;
  std::string rpc;
  std::string target;
  std::string outcome;  // "allowed", "denied", "unauthenticated", "ok", "error: CODE"
};

struct AuditRecord {
  int64_t seq = 0;
  std::string time;  // RFC 3339 UTC with milliseconds
  AuditEntry entry;
  std::string prev_hash;
  std::string hash;
  // The exact bytes the hash covers (after prev_hash).
  std::string Canonical() const;
};

struct AuditQuery {
  int64_t after_seq = 0;
  int limit = 100;
  std::string identity;  // exact match when non-empty
  std::string rpc;       // exact match when non-empty
};

struct ChainVerification {
  bool intact = true;
  int64_t records = 0;
  int64_t head_seq = 0;
  std::string head_hash;         // of the last record (64 zeros when empty)
  int64_t first_broken_seq = 0;  // 0 when intact; the seq (or position) of the first bad record
  std::string reason;            // what is wrong with it
};

inline constexpr char kGenesisHash[] =
    "0000000000000000000000000000000000000000000000000000000000000000";

// Checks the records of a chain in order, one at a time: AuditLog::Verify runs it over the
// whole file, the console over the records an agent sends. whole_chain: the records are the
// entire log (seq 1, 2, 3 ... each linked to the one before). Otherwise they are a filtered view
// (a caller's own records): each record must hash to its stated hash from its prev_hash and
// contents, seqs must increase, seq 1 must start from the genesis hash, and consecutive seqs
// must link. Not thread-safe (one per check).
class AuditChainVerifier {
 public:
  explicit AuditChainVerifier(bool whole_chain = true) : whole_chain_(whole_chain) {
    v_.head_hash = kGenesisHash;
  }
  // Adds the next record; false once the chain is broken (result() says where and why).
  bool Add(const AuditRecord& record);
  const ChainVerification& result() const { return v_; }

 private:
  bool whole_chain_;
  ChainVerification v_;
  int64_t last_seq_ = 0;
  std::string last_hash_ = kGenesisHash;
};

class AuditLog {
 public:
  // Opens or creates <dir>/audit.db.
  static Result<std::unique_ptr<AuditLog>> Open(const std::filesystem::path& dir);

  // Appends one record and returns it (durable on return). An error means nothing was
  // recorded.
  Result<AuditRecord> Append(const AuditEntry& entry);
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
