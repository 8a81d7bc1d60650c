// The rollout journal: every push, scale and rollback of the console, tables `rollouts` (one
// row per rollout with its result) and `rollout_targets` (per push and target, the state before
// the push, written before the target's apply, and what the push made of it). Rollback reads
// it, so a deployment returns to what it was before its latest push even after the console
// itself was interrupted. Part of ConsoleDatabase (console_database.h): its threading model and
// error mapping apply.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "app/console/rollout/rollout.h"
#include "engine/base/status.h"

namespace sextant::console {

class ConsoleDatabase;

// The latest push of a deployment that changed (or may have changed) a target.
struct JournaledPush {
  int64_t rollout_id = 0;
  std::string spec_digest;            // the digest it applied ("sha256:<hex>")
  std::vector<TargetRecord> records;  // every target row, by target name
};

class RolloutJournal {
 public:
  explicit RolloutJournal(ConsoleDatabase* db) : db_(db) {}

  // Starts a rollout of `kind` ("push" or "rollback"); returns its id.
  Result<int64_t> Begin(const std::string& kind, const std::string& deployment,
                        const std::string& spec_digest);
  // Stores the rollout's result and when it finished.
  Status Finish(int64_t rollout_id, const PushResult& result);
  // Upserts a target row of rollout `rollout_id`. The previous state is written once (on the
  // first call for that target); later calls update the generation, state and apply_unknown.
  Status RecordTarget(int64_t rollout_id, const TargetRecord& record);

  // NOT_FOUND when no push of the deployment changed (or may have changed) a target.
  Result<JournaledPush> LatestPush(const std::string& deployment);
  // The targets of the deployment's latest push that reached any target row, by name; empty
  // when the deployment was never pushed.
  Result<std::vector<std::string>> TargetsOfLatestPush(const std::string& deployment);
  // Past rollouts of a deployment (all when empty), newest first: their stored results.
  Result<std::vector<PushResult>> List(const std::string& deployment = {}, int limit = 0);

 private:
  ConsoleDatabase* db_;
};

}  // namespace sextant::console
