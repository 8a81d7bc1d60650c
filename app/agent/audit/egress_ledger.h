// EgressLedger: bytes the agent's gRPC service sent to each peer identity, by RPC and message
// kind, since the agent started. Kinds are fixed (see kEgressKinds; they match the comment on
// EgressEntry in connectors/proto/sextant/v1/agent.proto). "payload" (prompts and outputs) is
// a kind so a reviewer can read "payload bytes to vendor: 0": no gRPC message ever carries one,
// and Record() refuses the kind outright.
//
// A ledger made by Open() is durable: it lives in <state>/egress.db (SQLite, WAL) and every
// Record() is committed before it returns, so the counts and since_unix_ms survive a restart
// or a kill -9 (synchronous=NORMAL: a power loss may lose the last commits, never corrupt the
// file). A default-constructed ledger is in memory only.
// Thread-safety: every method is safe from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "app/agent/state/sqlite_db.h"
#include "engine/base/status.h"

namespace sextant::agent {

inline const std::vector<std::string> kEgressKinds = {
    "control", "telemetry", "audit", "compliance", "validation-digest", "identity", "payload"};

struct EgressRow {
  std::string identity;
  std::string role;
  std::string rpc;
  std::string kind;
  int64_t messages = 0;
  int64_t bytes = 0;
};

class EgressLedger {
 public:
  EgressLedger();  // in memory
  ~EgressLedger();
  // Opens or creates <dir>/egress.db and loads what it holds (dir must exist).
  static Result<std::unique_ptr<EgressLedger>> Open(const std::filesystem::path& dir);

  // Adds one message of `bytes` serialized bytes. Returns false (and counts nothing) for an
  // unknown kind or for "payload".
  bool Record(const std::string& identity, const std::string& role, const std::string& rpc,
              const std::string& kind, int64_t bytes);
  std::vector<EgressRow> Rows() const;
  // Totals per kind over identities whose role starts with "vendor"; every kind present.
  std::map<std::string, int64_t> VendorBytesByKind() const;
  int64_t since_unix_ms() const { return since_unix_ms_; }
  // OK, or the first error of writing the durable ledger (counting goes on in memory).
  Status persistence_status() const;

 private:
  mutable std::mutex mu_;
  // (identity, rpc, kind) -> row. GUARDED_BY(mu_)
  std::map<std::tuple<std::string, std::string, std::string>, EgressRow> rows_;
  int64_t since_unix_ms_;
  std::unique_ptr<SqliteDb> db_;  // GUARDED_BY(mu_); null: in memory
  Status persist_error_;          // GUARDED_BY(mu_)
};

}  // namespace sextant::agent
