// DemoFleet: a complete local fleet for `sextant demo`. It creates a console state directory
// (a fresh temporary one unless given), a CA and mTLS identities, the console's report key, a
// deployment spec for the model it runs, and starts three real `sextant-agent` processes on
// 127.0.0.1 (ports chosen by the kernel) whose configs declare the cloud contexts aws/eu-west-1,
// gcp/us-central1 and on-prem, each with its own model store holding its own link (or copy) of
// the model. The agents are registered as targets in the console store of that directory, so
// every console verb (`fleet`, `cost`, `compliance`, `tui`, the GUI) works on it with --state.
//
// Validate() runs the spec on the embedded engine and stores the signed report, as `sextant
// validate` does; pushing and refreshing use the console's own functions on the same store.
// The demo plays both parties: the console (vendor) gets its certificate from a signing
// request, its key never on the customer's side; the customer holds an approver key, and its
// agents admit only specs it approved (Approve(), as `sextant-agent approve` does).
//
// Stop() ends every agent (SIGTERM, then SIGKILL after a grace period) and reaps it; the
// destructor calls Stop(). Agents also receive SIGTERM when the thread that started them ends
// (PR_SET_PDEATHSIG), so a demo killed with SIGKILL leaves no agent behind either. A temporary
// state directory is removed by Stop() unless `keep` was asked for.
//
// Thread-safety: not thread-safe, except Stop(), which may be called from another thread (a
// signal-handling thread) while the owner is inside any other method; those then fail.
// Start() must run on a thread that outlives the agents (see PR_SET_PDEATHSIG above).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "app/common/deployment_spec.h"
#include "app/common/signing.h"
#include "app/common/validation_report.h"
#include "app/console/store/console_database.h"
#include "engine/base/status.h"

namespace sextant::demo {

struct DemoOptions {
  // Console state directory; empty: a new directory under $TMPDIR (or /tmp).
  std::filesystem::path state_dir;
  // Keep the state directory (and its logs) after Stop(); a given state_dir is always kept.
  bool keep = false;
  // Model to run; empty: ../shared/models/stories260K.gguf near the working directory or the
  // executable, else a model of the same shape synthesized into the state directory.
  std::filesystem::path model;
  // The sextant-agent program; empty: next to this executable, else on $PATH.
  std::filesystem::path agent_binary;
  // Deployment spec to start from (its model is replaced by the one that runs); empty: the
  // example resources/examples/stories260k.yaml.
  std::filesystem::path spec_template;
  // Report signing key; empty: the console's key (report::DefaultSigningKeyPath()).
  std::filesystem::path signing_key;
  // How long each agent may take to listen and answer.
  std::chrono::milliseconds start_timeout{30000};
  // Progress, one short line per step ("starting agent aws-eu-west-1 ..."), on the caller's
  // thread.
  std::function<void(const std::string&)> on_step;
};

// One agent of the demo fleet.
struct DemoAgent {
  std::string name;                 // target name, e.g. "aws-eu-west-1"
  std::string provider;             // aws, gcp, on-prem
  std::string region;               // empty for on-prem
  std::string cloud_context;        // "aws/eu-west-1", "gcp/us-central1", "on-prem"
  std::string instance_type;        // declared in its config, for pricing
  bool encryption_at_rest = false;  // declared in its config
  std::filesystem::path dir;        // its folder: agent.yaml, policy.yaml, models/, state/
  std::filesystem::path log;        // its JSON log (stdout and stderr)
  std::string endpoint;             // gRPC, 127.0.0.1:PORT
  std::string http_endpoint;        // OpenAI-compatible API, 127.0.0.1:PORT (empty if unknown)
  pid_t pid = -1;                   // -1 once reaped
};

// The model the demo runs.
struct DemoModel {
  std::filesystem::path path;
  std::string sha256;
  bool synthesized = false;  // true: random weights of stories260K's shape, written by sextant
  std::string description;   // one line for people
};

class DemoFleet {
 public:
  DemoFleet() = default;
  ~DemoFleet();  // Stop()
  DemoFleet(const DemoFleet&) = delete;
  DemoFleet& operator=(const DemoFleet&) = delete;

  // Creates the state, starts the three agents, waits until each answers WhoAmI over mTLS and
  // registers them as targets (replacing demo targets of the same names). On error every
  // agent already started is stopped again.
  Status Start(const DemoOptions& options);

  // Validates the spec on the embedded engine (greedy, as `sextant validate`), signs the report
  // with the console's key and stores it. Returns the report (passed or not).
  Result<report::ValidationReport> Validate();

  // As the customer: approves the spec's digest with the customer's approver key (appends the
  // signed approval to the approvals file the agents read).
  Status Approve();

  // Ends every agent and reaps it; removes a temporary state directory unless kept. Idempotent.
  void Stop();

  const std::filesystem::path& state_dir() const { return state_dir_; }
  bool state_is_temporary() const { return temporary_ && !keep_; }
  const std::filesystem::path& spec_file() const { return spec_file_; }
  const spec::DeploymentSpec& spec() const { return spec_; }
  std::string spec_digest() const { return spec::SpecDigest(spec_); }
  const DemoModel& model() const { return model_; }
  const std::vector<DemoAgent>& agents() const { return agents_; }
  std::vector<std::string> target_names() const;
  // The console store in state_dir() (open between Start() and Stop()).
  console::ConsoleDatabase& store() { return *store_; }
  const std::filesystem::path& signing_key_path() const { return key_path_; }
  // The console's public report key (PEM), as the agents' console_keys list names it.
  const std::filesystem::path& console_key_pem() const { return console_key_pem_; }

 private:
  void Step(const std::string& line) const;
  Status PrepareState();
  Status PrepareModel();
  Status PrepareSpec();
  Status PrepareKeysAndCerts();
  Status StartAgent(DemoAgent& agent);
  Status WaitForAgent(DemoAgent& agent);
  Status RegisterTargets();

  DemoOptions options_;
  std::filesystem::path state_dir_;
  bool temporary_ = false;
  bool keep_ = false;
  DemoModel model_;
  spec::DeploymentSpec spec_;
  std::filesystem::path spec_file_;
  std::filesystem::path key_path_;
  std::filesystem::path console_key_pem_;
  std::filesystem::path agent_binary_;
  std::filesystem::path policy_file_;
  std::filesystem::path console_cert_;  // the console's client certificate (issued by the CA)
  std::filesystem::path console_key_;   // and its key, made on the console's side
  std::filesystem::path approver_key_;  // the customer's approver key
  std::filesystem::path approvals_file_;
  std::unique_ptr<console::ConsoleDatabase> store_;
  std::mutex stop_mu_;  // serializes Stop() with itself
  std::vector<DemoAgent> agents_;
};

// Where sextant-agent is: next to this executable, else on $PATH. NOT_FOUND says where it looked.
Result<std::filesystem::path> FindAgentBinary();

// ../shared/models/stories260K.gguf seen from the working directory or from any folder above
// the executable; empty when there is none.
std::filesystem::path FindSharedStoriesModel();

}  // namespace sextant::demo
