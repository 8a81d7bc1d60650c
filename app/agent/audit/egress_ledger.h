// EgressLedger: bytes the agent's gRPC service sent to each peer identity, by RPC and message
// kind, and by response field, since the agent started. Kinds are fixed (see kEgressKinds; they
// match the comment on EgressEntry in connectors/proto/sextant/v1/agent.proto).
//
// "payload" is what was measured, not declared: RecordResponse() takes the bytes of every field
// of the response (the gRPC server walks the message by reflection, connectors/agent/
// egress_fields.h) with the egress class the field declares in the proto; the bytes of fields
// that declare none ("unclassified") count under the kind "payload". So "payload bytes to
// vendor: 0" holds because every field that left declared what it carries, and a field added
// without a declaration shows up there (and by name in FieldRows()). Record() refuses the
// kind "payload" outright: only a measured response can count it.
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

#include "app/common/sqlite/sqlite_db.h"
#include "engine/base/status.h"

namespace sextant::agent {

using sqlite::SqliteDb;  // the SQLite wrapper the agent's stores share with the console
using sqlite::SqliteStmt;

inline const std::vector<std::string> kEgressKinds = {
    "control", "telemetry", "audit", "compliance", "validation-digest", "identity", "payload"};

// One field of one response: its full name ("sextant.v1.Device.model"), its declared egress
// class ("figures", ..., "unclassified", or "framing" for the tag and length of a nested
// message) and its serialized bytes.
struct FieldBytes {
  std::string field;
  std::string egress_class;
  int64_t bytes = 0;
};
inline constexpr char kUnclassifiedEgress[] = "unclassified";

struct EgressFieldRow {
  std::string identity;
  std::string role;
  std::string field;
  std::string egress_class;
  int64_t messages = 0;  // responses that carried it
  int64_t bytes = 0;
};

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
  // One response of `total_bytes` of kind `kind`, and its fields: each counted per identity
  // and field; unclassified fields' bytes also under the kind "payload". Returns false (and
  // counts nothing) for an unknown kind or "payload".
  bool RecordResponse(const std::string& identity, const std::string& role, const std::string& rpc,
                      const std::string& kind, int64_t total_bytes,
                      const std::vector<FieldBytes>& fields);
  std::vector<EgressRow> Rows() const;
  std::vector<EgressFieldRow> FieldRows() const;
  // Totals per kind over identities whose role starts with "vendor"; every kind present.
  std::map<std::string, int64_t> VendorBytesByKind() const;
  int64_t since_unix_ms() const { return since_unix_ms_; }
  // OK, or the first error of writing the durable ledger (counting goes on in memory).
  Status persistence_status() const;

 private:
  mutable std::mutex mu_;
  // (identity, rpc, kind) -> row. GUARDED_BY(mu_)
  std::map<std::tuple<std::string, std::string, std::string>, EgressRow> rows_;
  // (identity, field) -> row. GUARDED_BY(mu_)
  std::map<std::pair<std::string, std::string>, EgressFieldRow> field_rows_;
  int64_t since_unix_ms_;
  std::unique_ptr<SqliteDb> db_;  // GUARDED_BY(mu_); null: in memory
  Status persist_error_;          // GUARDED_BY(mu_)

  // REQUIRES: mu_ held.
  void AddKindLocked(const std::string& identity, const std::string& role, const std::string& rpc,
                     const std::string& kind, int64_t bytes);
  void PersistLocked(Status s);
};

}  // namespace sextant::agent
