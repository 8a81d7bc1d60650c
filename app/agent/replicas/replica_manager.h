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
// The HTTP front asks AcquireLease() for the ready replica of a deployment with the least
// outstanding work (requests routed to it and not finished). While a deployment has no ready
// replica (scaled to zero, loading) the request waits, bounded by the spec's scaling.maxQueue
// and scaling.queueTimeout.
//
// Replica count: starts at max(replicas.min, 1); an autoscaler (app/agent/scaling/autoscaler.h)
// moves it with SetDesired(), which writes the decision to the audit log first, then records it as
// a scaling event. Each replica is placed on its own device share (placement.h): a replica that
// cannot be placed stays Pending, with the reason in the deployment's status and metrics. A
// replica on whole GPUs computes on the first of them: it runs on the deployment's model loaded
// for that GPU's device ordinal (DeviceOrdinal in placement.h), one load per ordinal while a
// replica runs on it; a load that fails for one GPU leaves that replica Pending with the reason
// while the others serve. CPU replicas share one model. At zero replicas the model is released; the
// file's verified sha256 is remembered (by path, size and modification time) so that scaling from
// zero loads without hashing it again. A replica that is scaled away stops taking requests and
// finishes the ones it holds (within drain_grace) before it stops.
//
// Thread-safety: every public method is safe from any thread.
#pragma once

#include <atomic>
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
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "app/agent/audit/audit_log.h"
#include "app/agent/replicas/placement.h"
#include "app/agent/replicas/serving_metrics.h"
#include "app/agent/state/desired_state.h"
#include "app/agent/state/file_identity.h"
#include "app/agent/state/sources.h"
#include "app/common/deployment_spec.h"
#include "engine/base/status.h"
#include "engine/chat/chat_template.h"
#include "engine/model/model.h"
#include "engine/serve/scheduler.h"

namespace sextant::agent {

// What the replica manager needs of one desired deployment.
struct DeploymentTarget {
  std::string name;
  int64_t generation = 0;
  std::string model_uri;
  std::string model_sha256;  // 64 hex digits, optionally prefixed "sha256:"
  spec::EngineSettings engine;
  int replicas = 1;  // replicas to start with (the autoscaler moves the count later)
  spec::Resources resources;
  spec::Scaling scaling;

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
  // GPUs to place replicas on; null: a CPU-only agent (a spec that asks for GPUs stays Pending).
  agent::InventorySource* inventory = nullptr;
  // Where scaling decisions are recorded before they take effect; null: not recorded.
  agent::AuditLog* audit = nullptr;
  // Replaces the spec's scaling.queueTimeout when > 0 (tests).
  std::chrono::milliseconds queue_timeout_override{0};
};

// sha256 of a file's bytes, lowercase hex, read in 1 MiB chunks. NOT_FOUND when the file is
// absent, UNAVAILABLE when it cannot be read.
Result<std::string> Sha256OfFile(const std::filesystem::path& path);

// One running engine instance of a deployment.
class Replica {
 public:
  // chat_template: the spec's engine.chatTemplate ("" the model's own), for chat_formatter().
  Replica(std::string deployment, int index, std::shared_ptr<const model::Model> model,
          serve::SchedulerOptions options, spec::SamplingDefaults sampling, DeviceShare share = {},
          const std::string& chat_template = {});
  ~Replica();

  const std::string& deployment() const { return deployment_; }
  int index() const { return index_; }
  const model::Model& model() const { return *model_; }
  serve::BatchScheduler& scheduler() { return *scheduler_; }
  const spec::SamplingDefaults& sampling_defaults() const { return sampling_; }
  // How conversations are formatted (engine/chat): the deployment's chat template, or why it
  // cannot be used (chat requests then fail with that error; completions are unaffected).
  const Result<chat::ChatFormatter>& chat_formatter() const { return chat_; }
  // Queued + active requests in the engine.
  int load() const;
  // Requests routed here (leases held) and not finished: what routing compares.
  int outstanding() const { return outstanding_.load(); }
  const DeviceShare& share() const { return share_; }
  int64_t generation() const { return generation_; }

 private:
  friend class ReplicaLease;
  friend class ReplicaManager;
  std::atomic<int> outstanding_{0};
  int64_t generation_ = 0;
  const DeviceShare share_;

  const std::string deployment_;
  const int index_;
  std::shared_ptr<const model::Model> model_;
  std::unique_ptr<serve::BatchScheduler> scheduler_;
  const spec::SamplingDefaults sampling_;
  const Result<chat::ChatFormatter> chat_;
};

// A request's hold on a replica: counts as outstanding work on it until released (or
// destroyed). Move-only.
class ReplicaLease {
 public:
  ReplicaLease() = default;
  explicit ReplicaLease(std::shared_ptr<Replica> replica);
  ~ReplicaLease() { Release(); }
  ReplicaLease(ReplicaLease&& other) noexcept : replica_(std::move(other.replica_)) {}
  ReplicaLease& operator=(ReplicaLease&& other) noexcept;
  ReplicaLease(const ReplicaLease&) = delete;
  ReplicaLease& operator=(const ReplicaLease&) = delete;

  const std::shared_ptr<Replica>& replica() const { return replica_; }
  Replica* operator->() const { return replica_.get(); }
  explicit operator bool() const { return replica_ != nullptr; }
  void Release();

 private:
  std::shared_ptr<Replica> replica_;
};

// What the autoscaler reads of one deployment.
struct ScalingInput {
  std::string name;
  int64_t generation = 0;
  int desired = 0;  // replicas wanted now
  int ready = 0;
  int64_t in_flight = 0;  // leases held on ready or draining replicas
  int64_t queued = 0;     // of those, waiting in an engine queue
  int64_t waiting = 0;    // requests waiting for a ready replica
  std::chrono::steady_clock::time_point last_request;
  int replicas_min = 1;
  int replicas_max = 1;
  int per_replica_target = 1;  // (targetInFlight or engine.maxBatch) + targetQueueDepth
  spec::Scaling scaling;
  bool scalable = false;  // Ready (or at zero) at its desired generation; not Failed
};

struct DeploymentView {
  std::string name;
  int64_t generation = 0;          // desired
  int64_t serving_generation = 0;  // of the replicas now serving (0: none)
  agent::DeploymentPhase phase = agent::DeploymentPhase::kPending;
  std::string reason;  // why Failed (or what is loading)
  int replicas_desired = 0;
  int replicas_ready = 0;
  int replicas_pending = 0;                  // wanted but not placed
  std::string pending_reason;                // why, when replicas_pending > 0
  int64_t in_flight = 0;                     // leases held on its replicas
  int64_t waiting = 0;                       // requests waiting for a ready replica
  std::vector<std::string> replica_devices;  // DeviceShare::Describe() of each ready replica
  // Of each ready replica, in the same order: the device its model was loaded for
  // (model::Model::device()) when it runs on GPUs, -1 when it runs on the CPU.
  std::vector<int> replica_device_ordinals;
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
  // The ready replica with the least outstanding work, held by the returned lease. Waits while
  // the deployment has no ready replica (scaled to zero, loading, between generations): at most
  // `timeout` (negative: the spec's scaling.queueTimeout), with at most scaling.maxQueue
  // requests waiting. Errors: NOT_FOUND (unknown), FAILED_PRECONDITION (Failed, with the
  // reason), RESOURCE_EXHAUSTED (the wait queue is full), DEADLINE_EXCEEDED (no replica became
  // ready in time), UNAVAILABLE (shutting down).
  Result<ReplicaLease> AcquireLease(
      const std::string& name, std::chrono::milliseconds timeout = std::chrono::milliseconds(-1));
  // Seconds a client should wait before retrying a request refused while no replica was ready
  // (from how long the last model load took); at least 1.
  int RetryAfterSeconds(const std::string& name) const;

  // ---- Scaling (the autoscaler's side) ----
  std::vector<ScalingInput> ScalingInputs() const;
  // Sets the replica count of a deployment (clamped to [0, replicas.max]) and converges to it
  // in the background. The decision is appended to the audit log first (when one is given); if
  // that fails nothing changes and the error is returned. NOT_FOUND for an unknown deployment.
  Status SetDesired(const std::string& name, int replicas, const std::string& reason,
                    double queue_depth, double in_flight);
  // Called (outside the manager's lock) with a deployment's name when a request starts to wait
  // for a ready replica: the autoscaler wakes for it. One listener; empty clears it.
  void SetDemandListener(std::function<void(const std::string&)> listener);

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
  std::vector<agent::ScalingEventInfo> ScalingEventsSince(int64_t after_unix_ms) override;

  // Resolves a spec's model URI to a file in the store (see the header comment). Does not
  // check that the file exists. INVALID_ARGUMENT naming "model.uri" for a URI that would leave
  // the store or names no file.
  static Result<std::filesystem::path> ResolveModelPath(const std::filesystem::path& store,
                                                        const std::string& uri);

 private:
  // Invariants: (1) every replica in `replicas` is of `serving_generation` and runs on `model`
  // (on the CPU) or on the entry of `models_by_device` for its first GPU's ordinal;
  // (2) replicas.size() + pending <= desired, except while a converge job is queued;
  // (3) phase is Failed only for the epoch in failed_epoch.
  struct Deployment {
    DeploymentTarget target;
    uint64_t epoch = 0;  // bumped by every change; a load for an older epoch is discarded
    uint64_t failed_epoch = 0;
    agent::DeploymentPhase phase = agent::DeploymentPhase::kPending;
    std::string reason;
    std::string model_path;
    std::string backend;
    int64_t serving_generation = 0;
    std::shared_ptr<const model::Model> model;  // of serving_generation; null at zero replicas
    // The models of `model`'s generation by the device ordinal they were loaded for, `model`
    // among them; empty whenever `model` is null. Weak: a model no replica runs on any more is
    // released (and the GPU memory it held with it).
    std::map<int, std::weak_ptr<const model::Model>> models_by_device;
    std::vector<std::shared_ptr<Replica>> replicas;
    int desired = 1;
    int pending = 0;
    std::string pending_reason;
    int waiting = 0;  // requests blocked in AcquireLease
    int next_index = 0;
    std::chrono::steady_clock::time_point last_request;
    double last_load_seconds = 0;
  };
  struct LoadJob {
    std::string name;
    uint64_t epoch = 0;
  };
  struct VerifiedFile {
    FileIdentity identity;  // device, inode, size, mtime, ctime when it was hashed
    std::string sha256;
  };

  void LoaderLoop();
  void Converge(const LoadJob& job);
  // Runs without the lock: resolve, verify, load the model for GPU `device` (of its vendor).
  Result<std::shared_ptr<const model::Model>> LoadModel(const std::string& name, uint64_t epoch,
                                                        const DeploymentTarget& t, int device,
                                                        std::string* model_path);
  // The device ordinal of the GPU the next replica of `t` would be placed on, ignoring GPUs that
  // are draining (they are about to be free); 0 when none is free or `t` asks for no GPU.
  int NextGpuOrdinalLocked(const DeploymentTarget& t) const;
  serve::SchedulerOptions SchedulerOptionsFor(const DeploymentTarget& t) const;
  int CpuThreadsFor(const DeploymentTarget& t) const;
  std::set<std::string> TakenGpusLocked() const;
  void QueueJobLocked(const std::string& name);
  void QueuePendingLocked();  // re-tries placing the Pending replicas of every deployment
  void Collect();             // metrics hook: queue depth, KV use, replicas
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
  std::multiset<std::string> draining_gpus_;       // GUARDED_BY(mu_): held by draining replicas
  std::map<std::string, VerifiedFile> verified_;   // GUARDED_BY(mu_): by path
  std::deque<agent::ScalingEventInfo> events_;     // GUARDED_BY(mu_): newest last, bounded
  std::function<void(const std::string&)> demand_listener_;  // GUARDED_BY(mu_)
  std::thread loader_;
};

}  // namespace sextant::agent
