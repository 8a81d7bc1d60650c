// AuditHeadStore: the newest signed head of each target's audit log that this console has seen
// and verified (table audit_heads in the console store's file; created by the console store's
// migrations, the CREATE TABLE below must stay identical to that migration). The agent signs
// its head with a key only it holds; the console keeps the signature, the key, and where and
// when it saw them, so a log later cut back or re-chained below that head is caught: the agent
// can no longer show that record with that hash (`sextant audit --target T --verify`).
//
// Thread-safety: an AuditHeadStore does not own the connection; callers serialize use of one
// connection across threads (the console store opens it in serialized mode).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "engine/base/status.h"

struct sqlite3;

namespace sextant::console {

struct AuditHead {
  std::string target;
  int64_t seq = 0;
  std::string hash;
  std::string signed_at;   // the checkpoint's time (the agent's clock)
  std::string key_id;      // the agent's audit key
  std::string public_key;  // raw Ed25519 public key, hex
  std::string signature;   // hex
  int64_t seen_at_ms = 0;  // when this console verified it
};

class AuditHeadStore {
 public:
  explicit AuditHeadStore(sqlite3* db) : db_(db) {}

  static Status EnsureSchema(sqlite3* db);

  // The recorded head of a target, if any.
  Result<std::optional<AuditHead>> Get(const std::string& target);
  // Records a head (replacing the target's previous one).
  Status Record(const AuditHead& head);

 private:
  sqlite3* db_;
};

}  // namespace sextant::console
