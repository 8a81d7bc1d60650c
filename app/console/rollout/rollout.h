// Rollout of one validated deployment to a set of targets, and its rollback: the orchestration
// only (no wire code). Each target is reached through a TargetChannel (gRPC in
// connectors/console/push.h; in memory in tests).
//
// Push(plan, options):
//   1. Reads every target's current deployment of that name (its "previous generation": the
//      spec it runs, or absent). A target that cannot be read stops the push before anything
//      changes. When every target already runs the spec digest the push is a no-op (no apply,
//      no validation).
//   2. The canary (options.canary, else the first target) alone, then the rest in waves of at
//      most max_unavailable targets in parallel. Per target: apply (optimistic: if_generation
//      = the generation read in step 1, or require_absent), then RunValidation of the new
//      generation: the target is sent the output digests of the local reports and answers,
//      per prompt, whether its own outputs have them (never a digest of its own).
//   3. The first refusal (the agent said no: PERMISSION_DENIED / FAILED_PRECONDITION /
//      INVALID_ARGUMENT), mismatch or failure ends the push after the wave in flight: no later
//      wave starts, and every target this push changed is rolled back to its previous
//      generation: the previous spec (with its report, when the plan can find one) re-applied,
//      or the deployment deleted when it did not exist before. Each rollback is conditional on
//      the generation this push created, so a change made meanwhile by someone else is never
//      overwritten.
//
// Consistency: a target is never half-applied (an apply is one durable, idempotent agent call)
// and never applied twice (same digest: the agent answers changed=false; if_generation refuses
// a stale apply). A target whose apply outcome is unknown (the call failed in transport) is
// re-read before rollback; one that cannot be reached is reported with the two generations it
// may be at, and Rollback() over the journal completes it later.
//
// Comparison rule (recorded in TargetOutcome::comparison):
//   "exact"                   the target's backend has a local report (plan.expected): every
//                             prompt's output must match that report's digest.
//   "prompt-agreement>=F"     no local report of the target's backend: the fraction of
//                             validation prompts whose greedy output matches the reference
//                             report's (the plan's first expected output) must be at least F
//                             (options.cross_backend_min_agreement, default 1).
// The agent answers match bits only (never digests, logits or text), so a finer rule (top-1
// agreement where the logit margin exceeds a bound) cannot be computed by the console.
//
// Thread-safety: Push and Rollback block the calling thread and may run concurrently on
// different plans; they call channels from several threads at once. on_event and the journal
// callbacks are serialized by the orchestrator (never two at once).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/base/status.h"

namespace sextant::console {

// What a target's RunValidation returned: match answers and figures only.
struct RemoteValidation {
  bool output_matches = false;        // every prompt matched the expected set it was compared with
  std::vector<bool> prompt_matches;   // per prompt, in prompt order
  std::string compared_with_backend;  // the expected set the target used (its own backend's)
  std::string backend, device;
  double worst_ttft_ms = 0, tokens_per_second = 0;
  int64_t generation = 0;
  std::string model_sha256;
};

struct ExpectedOutput;

// A deployment as applied: the spec (canonical JSON and its digest, "sha256:<hex>" or bare
// hex), the model it names, and the signed report that authorizes it (may be empty).
struct DeploymentPayload {
  std::string name;
  std::string spec_json;
  std::string spec_digest;
  std::string model_uri;
  std::string model_sha256;
  std::string signed_report_json;
};

// A target's current deployment of a name.
struct RemoteDeployment {
  DeploymentPayload spec;  // signed_report_json empty (agents do not return it)
  int64_t generation = 0;
};

struct ApplyReply {
  int64_t generation = 0;
  bool changed = false;
};

// One target. Errors carry the agent's status code: PERMISSION_DENIED / FAILED_PRECONDITION /
// INVALID_ARGUMENT are refusals, UNAVAILABLE / DEADLINE_EXCEEDED mean the outcome of a
// mutating call is unknown. Implementations must be thread-safe.
class TargetChannel {
 public:
  virtual ~TargetChannel() = default;
  virtual std::string name() const = 0;
  // nullopt when the target has no deployment of that name.
  virtual Result<std::optional<RemoteDeployment>> Get(const std::string& deployment) = 0;
  // if_generation != 0: the current generation must equal it; require_absent: must not exist.
  virtual Result<ApplyReply> Apply(const DeploymentPayload& payload, int64_t if_generation,
                                   bool require_absent) = 0;
  // Runs the validation prompts of that generation on the target, which compares its outputs
  // with `expected` (the set of its own backend, else the first).
  virtual Result<RemoteValidation> Validate(const std::string& deployment, int64_t generation,
                                            const std::vector<ExpectedOutput>& expected) = 0;
  // if_generation != 0: the current generation must equal it.
  virtual Status Delete(const std::string& deployment, int64_t if_generation) = 0;
};

enum class TargetState {
  kPending,  // not reached (yet)
  kApplying,
  kValidating,
  kDone,        // applied (or already there) and validated
  kUnchanged,   // already ran the spec; left as it was
  kRefused,     // the agent refused the apply; nothing changed
  kFailed,      // unreachable, validation failed or mismatched; see error
  kRolledBack,  // changed by this push, then returned to its previous generation
};

struct TargetOutcome {
  std::string target;
  TargetState state = TargetState::kPending;
  int64_t generation = 0;           // the target's generation at the end (0: absent)
  int64_t previous_generation = 0;  // before the push (0: absent)
  // The local report's output digest that the target's validation matched ("" when it did not
  // match exactly).
  std::string output_digest;
  std::string comparison;  // the rule used (see above) and its verdict
  std::string backend;
  std::string error;
  // Extensions.
  std::string device;
  std::string previous_spec_digest;  // empty: absent before
  bool changed = false;              // this push changed the target (and it is not restored)
};

struct PushEvent {
  std::string target;
  TargetState state;
  std::string message;
};

struct PushOptions {
  int max_unavailable = 1;
  std::string canary;  // empty: first target
  std::function<void(const PushEvent&)> on_event;
  // Extensions.
  double cross_backend_min_agreement = 1.0;  // see the comparison rule
};

struct PushResult {
  bool ok = false;
  bool no_op = false;
  std::string deployment;
  std::string spec_digest;
  std::string local_output_digest;
  std::string stopped_because;
  std::vector<TargetOutcome> targets;
  // Extensions.
  std::string kind = "push";  // "push" or "rollback"
  int64_t rollout_id = 0;     // the journal's id, when journaled
};

std::string_view TargetStateName(TargetState state);
nlohmann::json ToJson(const PushResult& result);
nlohmann::json ToJson(const TargetOutcome& outcome);

// A local validation report's outputs, for the comparison.
struct ExpectedOutput {
  std::string backend;  // "cpu", "cuda", "hip"
  std::string output_digest;
  std::vector<std::string> prompt_digests;  // per prompt, in prompt order
  int64_t report_id = 0;
};

// What a target was before a push, and what the push made of it: the journal's row.
struct TargetRecord {
  std::string target;
  bool previous_known = false;               // `previous` was read from the target
  std::optional<RemoteDeployment> previous;  // nullopt: absent before
  int64_t generation = 0;  // the generation this push created (0: none (yet) or unknown)
  TargetState state = TargetState::kPending;
  bool apply_unknown = false;  // the apply's outcome is unknown (transport failure)
};

struct PushPlan {
  DeploymentPayload deployment;
  std::vector<ExpectedOutput> expected;  // first: the reference for other backends
  std::vector<std::shared_ptr<TargetChannel>> targets;
  // The signed report (JSON) of a spec digest for re-applying a previous spec on rollback;
  // empty or unset: re-apply without one.
  std::function<std::string(const std::string& spec_digest)> report_for;
  // Called before each apply with the previous state (an error cancels that apply: the target
  // fails unchanged), and after every state change. Optional.
  std::function<Status(const TargetRecord&)> journal;
};

// Validates the plan (INVALID_ARGUMENT: no targets, duplicate names, unknown canary,
// max_unavailable < 1, no expected output) and runs it. Errors of targets are in the result.
Result<PushResult> Push(const PushPlan& plan, const PushOptions& options);

// Returns each journaled target of a push to its previous generation: a target that runs the
// push's spec digest gets the previous spec re-applied (or the deployment deleted when it was
// absent), conditional on its current generation; one already back is kUnchanged; one changed
// since by someone else (another digest) is left alone and reported kFailed.
struct RollbackPlan {
  std::string deployment;
  std::string spec_digest;  // the digest the push applied
  std::vector<TargetRecord> records;
  std::vector<std::shared_ptr<TargetChannel>> targets;  // by name, for the records
  std::function<std::string(const std::string& spec_digest)> report_for;
  std::function<Status(const TargetRecord&)> journal;
};
Result<PushResult> Rollback(const RollbackPlan& plan, const PushOptions& options);

// "sha256:<hex>" and "<hex>" name the same digest; this returns the lowercase hex.
std::string BareDigest(std::string_view digest);

// The comparison of one validation with the local reports; returns the comparison text and
// OK, or FAILED_PRECONDITION describing the mismatch (the text is filled either way).
Status CompareOutputs(const RemoteValidation& remote, const std::vector<ExpectedOutput>& expected,
                      double cross_backend_min_agreement, std::string* comparison);

}  // namespace sextant::console
