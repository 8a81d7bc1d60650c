// The facts agents report about their targets (cloud context, TLS settings, audit chain,
// deployments' digests ...), keyed by the names in app/common/fact_keys.h. Part of
// ConsoleDatabase (console_database.h): its threading model and error mapping apply.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "app/console/store/records.h"
#include "engine/base/status.h"

namespace sextant::console {

class ConsoleDatabase;

class FactRepository {
 public:
  explicit FactRepository(ConsoleDatabase* db) : db_(db) {}
  // Replaces every fact of `target` whose key starts with `prefix` by `facts` (all stamped
  // observed_at), in one transaction. An empty prefix replaces all of the target's facts.
  // INVALID_ARGUMENT (and nothing written) when a fact's key is outside the prefix.
  Status Replace(const std::string& target, const std::string& prefix,
                 const std::vector<std::pair<std::string, std::string>>& facts, TimeMs observed_at);
  // Every fact of `target` (of every target when empty), by target and key.
  Result<std::vector<Fact>> List(const std::string& target = "");
  // Removes the target's facts (part of removing a target).
  Status RemoveTarget(const std::string& target);

 private:
  ConsoleDatabase* db_;
};

}  // namespace sextant::console
