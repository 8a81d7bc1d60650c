// ReplicaManager: turns the agent's desired deployments into running engine replicas.
//
// For each deployment it resolves the model in the agent's OWN model store (the model never
// travels from the control plane), verifies the file's sha256 against the one the spec names,
// loads it, and runs one engine BatchScheduler (continuous batching) per replica. A digest
// mismatch, a missing file or a model that does not load marks the deployment Failed with that
// reason, and nothing is served for it. Loading happens on a background thread; a newer
// generation that arrives while an older one loads supersedes it. The replicas of the previous
// generation keep serving until the new one is ready, then drain within the grace period.
//
// Model store resolution (ResolveModelPath): the store is a directory (a path or file:// URI).
// A spec's model URI names a file in it:
//   - a relative path ("llama/7b.gguf") is taken below the store;
//   - any other URI (file:///abs/x.gguf, s3://bucket/x.gguf, gs://...) by its last segment
//     ("x.gguf") in the store's top directory.
// Paths never escape the store ("..", absolute components are refused).
//
// The HTTP front asks Acquire() for the least-loaded ready replica of a deployment.
//
// Thread-safety: every public method is safe from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "app/agentstate/desired_state.h"
#include "app/agentstate/sources.h"
#include "app/replicas/serving_metrics.h"
#include "app/spec/deployment_spec.h"
#include "engine/base/status.h"
#include "engine/model/model.h"
#include "engine/serve/scheduler.h"

namespace sextant::replicas {

// What the replica manager needs of one desired deployment.
struct DeploymentTarget {
  std::string name;
  int64_t generation = 0;
  std::string model_uri;
  std::string model_sha256;  // 64 hex digits, optionally prefixed "sha256:"
  spec::EngineSettings engine;
  int replicas = 1;

  // From a desired-state record: parses its canonical spec JSON. INVALID_ARGUMENT naming the
  // field when the spec does not parse.
  static Result<DeploymentTarget> FromRecord(const agent::DeploymentRecord& record);
  static DeploymentTarget FromSpec(const spec::DeploymentSpec& spec, int64_t generation);
};

struct ReplicaManagerOptions {
  std::filesystem::path model_store;  // directory; "file://" prefix accepted
  int max_queue = 64;                 // requests waiting per replica before 429
  int max_batch_cap = 0;              // caps engine.max_batch when > 0
  std::string backend_override;       // replaces engine.backend when non-empty
  int threads_override = 0;           // replaces engine.threads when > 0
  int max_batch_tokens = 256;         // tokens per forward pass (scheduler)
  std::chrono::milliseconds drain_grace{10000};
};

// sha256 of a file's bytes, lowercase hex, read in 1 MiB chunks. NOT_FOUND when the file is
// absent, UNAVAILABLE when it cannot be read.
Result<std::string> Sha256OfFile(const std::filesystem::path& path);

// One running engine instance of a deployment.
class Replica {
 public:
  Replica(std::string deployment, int index, std::shared_ptr<const model::Model> model,
          serve::SchedulerOptions options, spec::SamplingDefaults sampling);
  ~Replica();

  const std::string& deployment() const { return deployment_; }
  int index() const { return index_; }
  const model::Model& model() const { return *model_; }
  serve::BatchScheduler& scheduler() { return *scheduler_; }
  const spec::SamplingDefaults& sampling_defaults() const { return sampling_; }
  // Queued + active requests: what "least loaded" compares.
  int load() const;

 private:
  const std::string deployment_;
  const int index_;
  std::shared_ptr<const model::Model> model_;
  std::unique_ptr<serve::BatchScheduler> scheduler_;
  const spec::SamplingDefaults sampling_;
};

struct DeploymentView {
  std::string name;
  int64_t generation = 0;          // desired
  int64_t serving_generation = 0;  // of the replicas now serving (0: none)
  agent::DeploymentPhase phase = agent::DeploymentPhase::kPending;
  std::string reason;  // why Failed (or what is loading)
  int replicas_desired = 0;
  int replicas_ready = 0;
  std::string model_path;  // resolved file in the store
  std::string backend;
};

class ReplicaManager : public agent::DeploymentObserver {
 public:
  // `metrics` may be null (no metrics); it must outlive the manager.
  ReplicaManager(ReplicaManagerOptions options, ServingMetrics* metrics);
  // Shutdown(options.drain_grace).
  ~ReplicaManager() override;
  ReplicaManager(const ReplicaManager&) = delete;
  ReplicaManager& operator=(const ReplicaManager&) = delete;

  // Creates or updates a deployment; loading runs in the background. The same generation with
  // the same model is a no-op.
  void Upsert(DeploymentTarget target);
  // Stops a deployment's replicas (draining) and forgets it. No-op when unknown.
  void Remove(const std::string& name);
  // Makes the set of deployments exactly `targets`.
  void Reconcile(std::vector<DeploymentTarget> targets);
  // Applies a desired-state change (a DesiredState listener can forward to this). A record
  // whose spec does not parse marks the deployment Failed with the reason.
  void OnChange(const agent::DeploymentChange& change);
  void ApplyRecord(const agent::DeploymentRecord& record);

  // The least-loaded ready replica of `name`. NOT_FOUND for an unknown deployment,
  // FAILED_PRECONDITION with the reason for a Failed one, UNAVAILABLE while it loads or after
  // Shutdown.
  Result<std::shared_ptr<Replica>> Acquire(const std::string& name) const;

  std::vector<DeploymentView> List() const;
  std::optional<DeploymentView> Get(const std::string& name) const;
  // True when every deployment has at least one ready replica (and there is no load pending);
  // otherwise `why` (when given) names the first that has none.
  bool AllReady(std::string* why = nullptr) const;
  // Blocks until `name` is Ready or Failed at its desired generation, or the timeout passes.
  // Returns the view at that moment (nullopt when unknown).
  std::optional<DeploymentView> WaitSettled(const std::string& name,
                                            std::chrono::milliseconds timeout) const;

  // Stops accepting changes, drains every replica within `grace`, joins the loader.
  void Shutdown(std::chrono::milliseconds grace);

  // agent::DeploymentObserver
  std::optional<agent::DeploymentStatusInfo> StatusOf(const std::string& name) override;
  std::vector<agent::DeploymentMetricsInfo> Metrics() override;

  // Resolves a spec's model URI to a file in the store (see the header comment). Does not
  // check that the file exists. INVALID_ARGUMENT naming "model.uri" for a URI that would leave
  // the store or names no file.
  static Result<std::filesystem::path> ResolveModelPath(const std::filesystem::path& store,
                                                        const std::string& uri);

 private:
  struct Deployment {
    DeploymentTarget target;
    uint64_t epoch = 0;  // bumped by every change; a load for an older epoch is discarded
    agent::DeploymentPhase phase = agent::DeploymentPhase::kPending;
    std::string reason;
    std::string model_path;
    std::string backend;
    int64_t serving_generation = 0;
    std::vector<std::shared_ptr<Replica>> replicas;
  };
  struct LoadJob {
    std::string name;
    uint64_t epoch = 0;
    DeploymentTarget target;
  };

  void LoaderLoop();
  // Runs without the lock: resolve, verify, load, start schedulers.
  Result<std::vector<std::shared_ptr<Replica>>> Load(const LoadJob& job, std::string* model_path,
                                                     std::string* backend);
  void Collect();  // metrics hook: queue depth, KV use, replicas
  DeploymentView ViewLocked(const Deployment& d) const;
  void Retire(std::vector<std::shared_ptr<Replica>> replicas);

  const ReplicaManagerOptions options_;
  ServingMetrics* const metrics_;
  // The registry's collect hook reaches this manager only through the guard, which the
  // destructor clears (the registry may outlive the manager).
  struct HookGuard {
    std::mutex mu;
    ReplicaManager* self = nullptr;  // GUARDED_BY(mu)
  };
  std::shared_ptr<HookGuard> hook_guard_;

  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  std::map<std::string, Deployment> deployments_;  // GUARDED_BY(mu_)
  std::deque<LoadJob> jobs_;                       // GUARDED_BY(mu_)
  uint64_t next_epoch_ = 1;                        // GUARDED_BY(mu_)
  bool stopping_ = false;                          // GUARDED_BY(mu_)
  std::vector<std::thread> drainers_;              // GUARDED_BY(mu_)
  std::thread loader_;
};

}  // namespace sextant::replicas
