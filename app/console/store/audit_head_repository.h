// The newest signed head of each target's audit log that this console has seen and verified.
// The agent signs its head with a key only it holds; the console keeps the signature, the key,
// and when it saw them, so a log later cut back or re-chained below that head is caught: the
// agent can no longer show that record with that hash (`sextant audit --target T --verify`).
// Part of ConsoleDatabase (console_database.h): its threading model and error mapping apply.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "engine/base/status.h"

namespace sextant::console {

class ConsoleDatabase;

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

class AuditHeadRepository {
 public:
  explicit AuditHeadRepository(ConsoleDatabase* db) : db_(db) {}
  // The recorded head of a target, if any.
  Result<std::optional<AuditHead>> Get(const std::string& target);
  // Records a head (replacing the target's previous one).
  Status Record(const AuditHead& head);
  // Forgets the target's head (the target was removed).
  Status RemoveTarget(const std::string& target);

 private:
  ConsoleDatabase* db_;
};

}  // namespace sextant::console
