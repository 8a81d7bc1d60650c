// ConsoleActions: what the desktop console asks of the outside world (the agents over the wire,
// the embedded engine, the store's target list). The program's entry point implements it with
// the connectors; tests may implement it with anything real.
//
// Every method blocks until done and is called on a worker thread, never on the GUI thread
// (ActionRunner in ui/action_runner.h does that and delivers results as queued signals).
// Progress callbacks are invoked on the calling worker thread. A method that sees `cancel`
// become true stops as soon as it can and returns CANCELLED; nothing it would have stored is
// stored then.
//
// Thread-safety: implementations must be safe for concurrent calls from several threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "app/console/store/console_database.h"
#include "engine/base/status.h"

namespace sextant::ui {

struct TargetTestResult {
  std::string identity;
  std::string role;
  std::vector<std::string> allowed_rpcs;
  std::string agent_name;
  std::string agent_version;
};

struct AuditRow {
  std::string target;
  int64_t seq = 0;
  std::string time;  // RFC 3339
  std::string identity;
  std::string role;
  std::string rpc;
  std::string object;  // what the call acted on (deployment name ...), may be empty
  std::string outcome;
  std::string hash;
};

// One target's audit chain as its agent reported it with the records the caller may read.
struct AuditFetch {
  std::string target;
  bool chain_verified = false;
  int64_t head_seq = 0;
  int64_t first_broken_seq = 0;  // 0 when intact
  std::string broken_reason;
  std::string scope;              // "own" or "all"
  std::vector<AuditRow> records;  // oldest first
};

struct ValidationPromptRow {
  int index = 0;
  int generated_tokens = 0;
  double ttft_ms = 0;
  double tokens_per_second = 0;
  std::string output_digest;
};

struct ValidationOutcome {
  int64_t report_id = 0;  // the stored, signed report
  bool passed = false;
  std::string spec_name;
  std::string spec_digest;
  std::string model_sha256;
  std::string backend;
  std::string device;
  std::string output_digest;
  double worst_ttft_ms = 0;
  double tokens_per_second = 0;
  std::vector<ValidationPromptRow> prompts;
  std::vector<std::string> failures;
};

// Per-target progress of a push or rollback. `state` is the rollout's state name
// (pending, applying, validating, done, unchanged, refused, failed, rolled-back).
struct PushProgress {
  std::string target;
  std::string state;
  std::string message;  // the refusal or failure cause, or the comparison verdict
  // Known in the final outcome only (0: absent, or not known yet): the target's deployment
  // generation at the end and before the push.
  int64_t generation = 0;
  int64_t previous_generation = 0;
};

struct PushOutcome {
  bool ok = false;
  bool no_op = false;
  std::string deployment;
  std::string stopped_because;
  std::vector<PushProgress> targets;  // final state per target
};

struct PushArgs {
  std::string spec_file;
  std::vector<std::string> targets;
  std::string canary;  // empty: the first target
  int max_unavailable = 1;
};

class ConsoleActions {
 public:
  virtual ~ConsoleActions() = default;

  // Asks the agent who the console is (mTLS handshake, WhoAmI, agent info).
  virtual Result<TargetTestResult> TestTarget(const std::string& target) = 0;
  // Adds a target to the store and starts watching it; removes one and stops watching it.
  virtual Status AddTarget(const console::Target& target) = 0;
  virtual Status RemoveTarget(const std::string& target) = 0;
  // Reads up to max_records of the newest audit records the console may read, and the chain head.
  virtual Result<AuditFetch> FetchAudit(const std::string& target, int max_records) = 0;
  // Validates a spec on the embedded engine, signs and stores the report. Progress stages:
  // "checking model sha256", "loading model", "prompt N/M".
  virtual Result<ValidationOutcome> Validate(
      const std::string& spec_file, const std::string& model_dir,
      const std::function<void(std::string_view stage, double fraction)>& progress,
      const std::atomic<bool>& cancel) = 0;
  // Pushes the spec (which needs a passing signed report) canary first.
  virtual Result<PushOutcome> Push(const PushArgs& args,
                                   const std::function<void(const PushProgress&)>& progress,
                                   const std::atomic<bool>& cancel) = 0;
  // Returns every target of the deployment's latest push to its previous generation.
  virtual Result<PushOutcome> Rollback(
      const std::string& deployment, const std::function<void(const PushProgress&)>& progress) = 0;
};

}  // namespace sextant::ui
