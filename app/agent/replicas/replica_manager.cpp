#include "app/agent/replicas/replica_manager.h"

#include "app/agent/config/json_log.h"
#include "engine/base/sha256.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <limits>
#include <thread>

namespace sextant::agent {

namespace {

std::string NormalizeSha(std::string s) {
  if (s.rfind("sha256:", 0) == 0) s = s.substr(7);
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

Result<std::string> Sha256OfFile(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return Status::NotFound("model file " + path.string() + " is not in the model store");
  }
  return Sha256FileHex(path);
}

namespace {

std::string_view PhaseName(agent::DeploymentPhase p) {
  switch (p) {
    case agent::DeploymentPhase::kPending:
      return "Pending";
    case agent::DeploymentPhase::kLoading:
      return "Loading";
    case agent::DeploymentPhase::kReady:
      return "Ready";
    case agent::DeploymentPhase::kFailed:
      return "Failed";
    default:
      return "Unspecified";
  }
}

agent::HistogramInfo ToInfo(const agent::Histogram::Snapshot& s) {
  agent::HistogramInfo h;
  h.upper_bounds = s.upper_bounds;
  for (uint64_t c : s.cumulative) h.counts.push_back(static_cast<int64_t>(c));
  h.sum = s.sum;
  h.count = static_cast<int64_t>(s.count);
  return h;
}

}  // namespace

// ---- DeploymentTarget --------------------------------------------------------------------------

DeploymentTarget DeploymentTarget::FromSpec(const spec::DeploymentSpec& spec, int64_t generation) {
  DeploymentTarget t;
  t.name = spec.name;
  t.generation = generation;
  t.model_uri = spec.model.uri;
  t.model_sha256 = spec.model.sha256;
  t.engine = spec.engine;
  t.replicas = std::max(1, spec.resources.replicas_min);
  t.resources = spec.resources;
  t.scaling = spec.scaling;
  return t;
}

Result<DeploymentTarget> DeploymentTarget::FromRecord(const agent::DeploymentRecord& record) {
  spec::SpecParseResult parsed = spec::ParseDeploymentSpec(record.spec_json);
  if (!parsed.ok()) {
    const spec::SpecError& e = parsed.errors.front();
    return Status::InvalidArgument("deployment '" + record.name + "' spec: " + e.ToString());
  }
  DeploymentTarget t = FromSpec(parsed.spec, record.generation);
  t.name = record.name;
  if (!record.model_sha256.empty()) t.model_sha256 = record.model_sha256;
  if (!record.model_uri.empty()) t.model_uri = record.model_uri;
  return t;
}

// ---- Replica -----------------------------------------------------------------------------------

Replica::Replica(std::string deployment, int index, std::shared_ptr<const model::Model> model,
                 serve::SchedulerOptions options, spec::SamplingDefaults sampling,
                 DeviceShare share, const std::string& chat_template)
    : share_(std::move(share)),
      deployment_(std::move(deployment)),
      index_(index),
      model_(std::move(model)),
      scheduler_(std::make_unique<serve::BatchScheduler>(model_, options)),
      sampling_(sampling),
      chat_(chat::ChatFormatter::ForModel(model_->file(), model_->tokenizer(), chat_template)) {}

Replica::~Replica() = default;

int Replica::load() const {
  const serve::SchedulerStats s = scheduler_->stats();
  return s.queue_depth + s.active;
}

ReplicaLease::ReplicaLease(std::shared_ptr<Replica> replica) : replica_(std::move(replica)) {
  if (replica_) replica_->outstanding_.fetch_add(1);
}

ReplicaLease& ReplicaLease::operator=(ReplicaLease&& other) noexcept {
  if (this != &other) {
    Release();
    replica_ = std::move(other.replica_);
  }
  return *this;
}

void ReplicaLease::Release() {
  if (replica_) {
    replica_->outstanding_.fetch_sub(1);
    replica_.reset();
  }
}

// ---- ReplicaManager ----------------------------------------------------------------------------

namespace {

constexpr size_t kMaxEvents = 1024;

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

ReplicaManager::ReplicaManager(ReplicaManagerOptions options, ServingMetrics* metrics)
    : options_(std::move(options)), metrics_(metrics), hook_guard_(std::make_shared<HookGuard>()) {
  hook_guard_->self = this;
  if (metrics_ != nullptr) {
    std::weak_ptr<HookGuard> weak = hook_guard_;
    metrics_->registry().AddCollectHook([weak] {
      auto guard = weak.lock();
      if (!guard) return;
      std::lock_guard<std::mutex> lock(guard->mu);
      if (guard->self != nullptr) guard->self->Collect();
    });
  }
  loader_ = std::thread([this] { LoaderLoop(); });
}

ReplicaManager::~ReplicaManager() {
  {
    std::lock_guard<std::mutex> lock(hook_guard_->mu);
    hook_guard_->self = nullptr;
  }
  Shutdown(options_.drain_grace);
}

Result<std::filesystem::path> ReplicaManager::ResolveModelPath(const std::filesystem::path& store,
                                                               const std::string& uri) {
  std::filesystem::path root = store;
  const std::string store_text = store.string();
  if (store_text.rfind("file://", 0) == 0) root = store_text.substr(7);
  if (root.empty()) return Status::FailedPrecondition("the agent has no model store configured");
  if (uri.empty()) return Status::InvalidArgument("model.uri is empty");
  const size_t scheme = uri.find("://");
  std::filesystem::path rel;
  if (uri.rfind("file://", 0) == 0 && uri.size() > 7 && uri[7] != '/' &&
      uri.find('/', 7) == std::string::npos) {
    // "file://NAME" (no path after the authority): the spec format's relative form, as
    // `sextant validate` reads it: NAME below the store.
    rel = std::filesystem::path(uri.substr(7)).lexically_normal();
  } else if (scheme == std::string::npos && uri[0] != '/') {
    rel = std::filesystem::path(uri).lexically_normal();
  } else {
    std::string rest = uri;
    if (scheme != std::string::npos) {
      // Drop the authority (bucket, host; empty for file:///path): what follows is the path.
      rest = uri.substr(scheme + 3);
      const size_t path_start = rest.find('/');
      rest = path_start == std::string::npos ? std::string() : rest.substr(path_start);
    }
    while (!rest.empty() && rest.back() == '/') rest.pop_back();
    const size_t slash = rest.find_last_of('/');
    rel = slash == std::string::npos ? rest : rest.substr(slash + 1);
  }
  if (rel.empty() || rel.is_absolute() || rel.filename().empty() || rel.filename() == "." ||
      rel.filename() == "..") {
    return Status::InvalidArgument("model.uri '" + uri + "' names no file");
  }
  for (const auto& part : rel) {
    if (part == "..") {
      return Status::InvalidArgument("model.uri '" + uri + "' leaves the model store");
    }
  }
  return root / rel;
}

void ReplicaManager::QueueJobLocked(const std::string& name) {
  auto it = deployments_.find(name);
  if (it == deployments_.end()) return;
  for (const LoadJob& j : jobs_) {
    if (j.name == name && j.epoch == it->second.epoch) return;  // already queued
  }
  jobs_.push_back(LoadJob{name, it->second.epoch});
  changed_.notify_all();
}

void ReplicaManager::QueuePendingLocked() {
  for (const auto& [name, d] : deployments_) {
    if (d.pending > 0) QueueJobLocked(name);
  }
}

void ReplicaManager::Upsert(DeploymentTarget target) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return;
  const bool known = deployments_.count(target.name) != 0;
  Deployment& d = deployments_[target.name];
  const bool same = d.epoch != 0 && d.target.generation == target.generation &&
                    d.target.model_sha256 == target.model_sha256 &&
                    d.target.model_uri == target.model_uri && d.target.replicas == target.replicas;
  if (same) return;
  const int lo = std::max(0, target.resources.replicas_min);
  const int hi = std::max({1, target.replicas, target.resources.replicas_max});
  // A new generation keeps the count the autoscaler reached, within the new bounds; a new
  // deployment (or one at zero) starts with its initial count.
  d.desired = known && d.desired > 0 ? std::clamp(d.desired, std::max(lo, 1), hi)
                                     : std::max(1, target.replicas);
  if (!known) d.last_request = std::chrono::steady_clock::now();
  d.target = std::move(target);
  d.epoch = next_epoch_++;
  d.phase = d.replicas.empty() ? agent::DeploymentPhase::kPending : d.phase;
  QueueJobLocked(d.target.name);
}

void ReplicaManager::Remove(const std::string& name) {
  std::vector<std::shared_ptr<Replica>> old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = deployments_.find(name);
    if (it == deployments_.end()) return;
    old = std::move(it->second.replicas);
    deployments_.erase(it);
    changed_.notify_all();
  }
  if (metrics_ != nullptr) metrics_->Forget(name);
  Retire(std::move(old));
  std::lock_guard<std::mutex> lock(mu_);
  QueuePendingLocked();  // after Retire: its GPUs count as taken until they are drained
}

void ReplicaManager::Reconcile(std::vector<DeploymentTarget> targets) {
  std::vector<std::string> gone;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& entry : deployments_) {
      const std::string& name = entry.first;
      const bool wanted = std::any_of(targets.begin(), targets.end(),
                                      [&](const DeploymentTarget& t) { return t.name == name; });
      if (!wanted) gone.push_back(name);
    }
  }
  for (const std::string& name : gone) Remove(name);
  for (DeploymentTarget& t : targets) Upsert(std::move(t));
}

void ReplicaManager::ApplyRecord(const agent::DeploymentRecord& record) {
  Result<DeploymentTarget> target = DeploymentTarget::FromRecord(record);
  if (target.ok()) {
    Upsert(std::move(target).value());
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  Deployment& d = deployments_[record.name];
  d.target.name = record.name;
  d.target.generation = record.generation;
  d.epoch = next_epoch_++;
  d.failed_epoch = d.epoch;
  d.phase = agent::DeploymentPhase::kFailed;
  d.reason = target.status().message();
  changed_.notify_all();
}

void ReplicaManager::OnChange(const agent::DeploymentChange& change) {
  if (change.kind == agent::DeploymentChange::Kind::kDeleted) {
    Remove(change.record.name);
  } else {
    ApplyRecord(change.record);
  }
}

void ReplicaManager::LoaderLoop() {
  while (true) {
    LoadJob job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      changed_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    Converge(job);
  }
}

int ReplicaManager::CpuThreadsFor(const DeploymentTarget& t) const {
  if (options_.threads_override > 0) return options_.threads_override;
  if (t.engine.threads > 0) return t.engine.threads;
  // All cores, shared by the replicas the deployment may grow to.
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int most = std::max({1, t.replicas, t.resources.replicas_max});
  return std::max(1, cores / most);
}

serve::SchedulerOptions ReplicaManager::SchedulerOptionsFor(const DeploymentTarget& t) const {
  serve::SchedulerOptions sched;
  sched.max_batch = std::max(1, t.engine.max_batch);
  if (options_.max_batch_cap > 0)
    sched.max_batch = std::min(sched.max_batch, options_.max_batch_cap);
  sched.max_queue = std::max(0, options_.max_queue);
  sched.context_length = t.engine.context_length;
  sched.max_batch_tokens = options_.max_batch_tokens;
  sched.threads = CpuThreadsFor(t);
  return sched;
}

std::set<std::string> ReplicaManager::TakenGpusLocked() const {
  std::set<std::string> taken(draining_gpus_.begin(), draining_gpus_.end());
  for (const auto& [name, d] : deployments_) {
    for (const auto& r : d.replicas) {
      for (const std::string& g : r->share().gpus) taken.insert(g);
    }
  }
  return taken;
}

int ReplicaManager::NextGpuOrdinalLocked(const DeploymentTarget& t) const {
  if (options_.inventory == nullptr || t.resources.gpu_count <= 0) return 0;
  std::set<std::string> held;
  for (const auto& [name, d] : deployments_) {
    for (const auto& r : d.replicas) {
      for (const std::string& g : r->share().gpus) held.insert(g);
    }
  }
  const agent::InventoryInfo inventory = options_.inventory->Snapshot();
  Result<DeviceShare> placed = PlaceReplica(
      inventory, PlacementRequest{t.resources.gpu_count, t.resources.gpu_model, 0}, held);
  if (!placed.ok() || placed->gpus.empty()) return 0;
  Result<int> ordinal = DeviceOrdinal(inventory, placed->gpus.front());
  return ordinal.ok() ? *ordinal : 0;
}

Result<std::shared_ptr<const model::Model>> ReplicaManager::LoadModel(const std::string& name,
                                                                      uint64_t epoch,
                                                                      const DeploymentTarget& t,
                                                                      int device,
                                                                      std::string* model_path) {
  SEXTANT_ASSIGN_OR_RETURN(std::filesystem::path path,
                           ResolveModelPath(options_.model_store, t.model_uri));
  *model_path = path.string();
  const std::string want = NormalizeSha(t.model_sha256);
  if (want.size() != 64 ||
      !std::all_of(want.begin(), want.end(), [](char c) { return std::isxdigit(c) != 0; })) {
    return Status::InvalidArgument("model.sha256 '" + t.model_sha256 + "' is not 64 hex digits");
  }
  // A file already verified and unchanged since (same device, inode, size, modification and
  // status-change times) is not hashed again: scaling from zero must not read gigabytes first.
  // Any rewrite of the file changes one of them, and it is hashed again.
  const std::optional<FileIdentity> before = IdentifyFile(path);
  bool known_good = false;
  if (before) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = verified_.find(path.string());
    known_good =
        it != verified_.end() && it->second.identity == *before && it->second.sha256 == want;
  }
  if (!known_good) {
    SEXTANT_ASSIGN_OR_RETURN(std::string have, Sha256OfFile(path));
    if (have != want) {
      return Status::FailedPrecondition("model sha256 mismatch: the spec names " + want + " but " +
                                        path.filename().string() + " in the model store has " +
                                        have);
    }
    // Cached only when the file did not change while it was read.
    if (before && IdentifyFile(path) == before) {
      std::lock_guard<std::mutex> lock(mu_);
      verified_[path.string()] = VerifiedFile{*before, have};
    }
  }
  model::LoadOptions load;
  load.backend = options_.backend_override.empty() ? t.engine.backend : options_.backend_override;
  load.threads = CpuThreadsFor(t);
  load.device = device;
  load.context_length = t.engine.context_length;
  load.on_progress = [this, &name, epoch](float) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = deployments_.find(name);
    return !stopping_ && it != deployments_.end() && it->second.epoch == epoch;
  };
  Result<std::shared_ptr<const model::Model>> model = model::Model::Load(path, load);
  if (!model.ok()) return model.status().WithContext("loading " + path.filename().string());
  return model;
}

void ReplicaManager::Converge(const LoadJob& job) {
  using SteadyClock = std::chrono::steady_clock;
  DeploymentTarget target;
  std::shared_ptr<const model::Model> model;
  std::vector<std::shared_ptr<Replica>> retired;
  bool load_needed = false;
  int load_device = 0;  // where the first replica is about to be placed
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = deployments_.find(job.name);
    if (stopping_ || it == deployments_.end() || it->second.epoch != job.epoch) return;
    Deployment& d = it->second;
    if (d.failed_epoch == d.epoch) return;  // nothing to do until a new generation
    target = d.target;
    if (d.desired == 0) {
      // Scaled to zero: every replica drains, and the model is released.
      retired = std::move(d.replicas);
      d.replicas.clear();
      d.model.reset();
      d.models_by_device.clear();
      d.pending = 0;
      d.pending_reason.clear();
      QueuePendingLocked();
      if (d.serving_generation == target.generation) {
        d.phase = agent::DeploymentPhase::kReady;
        d.reason = "scaled to zero";
      }
      changed_.notify_all();
    } else {
      load_needed = d.model == nullptr || d.serving_generation != target.generation;
      model = d.model;
      if (load_needed) {
        if (d.replicas.empty()) {
          d.phase = agent::DeploymentPhase::kLoading;
          d.reason = "loading the model";
        }
        // A replica on whole GPUs gives them back before the next generation takes them:
        // a GPU is never held by two replicas, even for a moment (requests wait meanwhile).
        if (target.resources.gpu_count > 0 && d.serving_generation != target.generation) {
          retired = std::move(d.replicas);
          d.replicas.clear();
        }
        load_device = NextGpuOrdinalLocked(target);
        changed_.notify_all();
      }
    }
  }
  Retire(std::move(retired));
  retired.clear();
  if (load_needed) {
    std::string model_path;
    const SteadyClock::time_point start = SteadyClock::now();
    Result<std::shared_ptr<const model::Model>> loaded =
        LoadModel(job.name, job.epoch, target, load_device, &model_path);
    const double seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
    std::lock_guard<std::mutex> lock(mu_);
    auto it = deployments_.find(job.name);
    if (stopping_ || it == deployments_.end() || it->second.epoch != job.epoch) return;
    Deployment& d = it->second;
    d.model_path = model_path;
    if (!loaded.ok()) {
      // Nothing is served for a deployment whose current generation cannot be verified or
      // loaded: the previous generation's replicas stop too.
      retired = std::move(d.replicas);
      d.replicas.clear();
      d.model.reset();
      d.models_by_device.clear();
      d.serving_generation = 0;
      d.failed_epoch = d.epoch;
      d.phase = agent::DeploymentPhase::kFailed;
      d.reason = loaded.status().message();
      agent::LogEvent(
          spdlog::level::warn, "deployment_failed",
          {{"deployment", job.name}, {"generation", target.generation}, {"reason", d.reason}});
      changed_.notify_all();
    } else {
      d.last_load_seconds = seconds;
      d.model = std::move(loaded).value();
      d.models_by_device.clear();
      d.models_by_device[d.model->device()] = d.model;
      d.backend = std::string(d.model->backend_name());
      model = d.model;
    }
  }
  if (!retired.empty() || model == nullptr) {
    Retire(std::move(retired));
    return;
  }

  // Size: start replicas up to the desired count (placed one by one), or drain the surplus.
  // Replicas of a new generation are staged until its set is complete, then swapped in.
  std::vector<std::shared_ptr<Replica>> staged;
  // The next replica cannot be started (not placed, or its model does not load on its GPU): it
  // stays Pending with `why`, and serving continues on the replicas that are placed.
  // REQUIRES: mu_ held.
  const auto leave_pending = [&](Deployment& d, const std::string& why) {
    if (d.serving_generation != target.generation && !staged.empty()) {
      retired = std::move(d.replicas);
      d.replicas = std::move(staged);
      staged.clear();
      d.serving_generation = target.generation;
      d.reason.clear();
      d.phase = agent::DeploymentPhase::kReady;
    }
    const int now_have =
        static_cast<int>(d.serving_generation == target.generation ? d.replicas.size() : 0);
    d.pending = std::max(0, d.desired - now_have);
    d.pending_reason = why;
    if (now_have == 0) {
      d.phase = agent::DeploymentPhase::kPending;
      d.reason = "no replica placed: " + d.pending_reason;
    }
    agent::LogEvent(
        spdlog::level::warn, "replicas_pending",
        {{"deployment", job.name}, {"pending", d.pending}, {"reason", d.pending_reason}});
    changed_.notify_all();
  };
  while (true) {
    DeviceShare share;
    int index = 0;
    int ordinal = -1;  // device ordinal of the replica's first GPU; -1: it runs on the CPU
    std::shared_ptr<const model::Model> replica_model = model;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = deployments_.find(job.name);
      if (stopping_ || it == deployments_.end() || it->second.epoch != job.epoch) break;
      Deployment& d = it->second;
      const bool new_generation = d.serving_generation != target.generation;
      // Replicas of the previous generation keep serving until the new set is complete.
      const int have = new_generation ? 0 : static_cast<int>(d.replicas.size());
      if (have > d.desired) {
        // Drain the replicas with the least outstanding work first.
        std::sort(d.replicas.begin(), d.replicas.end(),
                  [](const auto& a, const auto& b) { return a->outstanding() > b->outstanding(); });
        while (static_cast<int>(d.replicas.size()) > d.desired) {
          retired.push_back(d.replicas.back());
          d.replicas.pop_back();
        }
        d.pending = 0;
        d.pending_reason.clear();
        QueuePendingLocked();  // devices given back may place another deployment's replicas
        changed_.notify_all();
        break;
      }
      const int complete = have + static_cast<int>(staged.size());
      if (new_generation && complete >= d.desired) {
        // The new generation's set is complete: swap it in.
        retired = std::move(d.replicas);
        d.replicas = std::move(staged);
        staged.clear();
        d.serving_generation = target.generation;
        d.phase = agent::DeploymentPhase::kReady;
        d.reason.clear();
        d.pending = 0;
        d.pending_reason.clear();
        agent::LogEvent(spdlog::level::info, "deployment_ready",
                        {{"deployment", job.name},
                         {"generation", target.generation},
                         {"replicas", d.replicas.size()},
                         {"backend", d.backend}});
        changed_.notify_all();
        break;
      }
      if (!new_generation && have == d.desired) {
        d.pending = 0;
        d.pending_reason.clear();
        if (d.phase != agent::DeploymentPhase::kReady) {
          d.phase = agent::DeploymentPhase::kReady;
          d.reason.clear();
        }
        changed_.notify_all();
        break;
      }
      // One more replica: place it.
      std::set<std::string> taken = TakenGpusLocked();
      for (const auto& r : staged) {
        for (const std::string& g : r->share().gpus) taken.insert(g);
      }
      agent::InventoryInfo inventory;
      if (options_.inventory != nullptr && target.resources.gpu_count > 0) {
        inventory = options_.inventory->Snapshot();
      }
      Result<DeviceShare> placed =
          PlaceReplica(inventory,
                       PlacementRequest{target.resources.gpu_count, target.resources.gpu_model,
                                        CpuThreadsFor(target)},
                       taken);
      if (!placed.ok()) {
        leave_pending(d, placed.status().message());
        break;
      }
      share = std::move(placed).value();
      if (!share.gpus.empty()) {
        // A replica computes on its first GPU, with the model loaded for that device.
        Result<int> device = DeviceOrdinal(inventory, share.gpus.front());
        if (!device.ok()) {
          leave_pending(d, device.status().message());
          break;
        }
        ordinal = *device;
        auto cached = d.models_by_device.find(ordinal);
        replica_model = cached == d.models_by_device.end() ? nullptr : cached->second.lock();
      }
      index = d.next_index++;
    }
    if (replica_model == nullptr) {
      // No replica of this generation runs on that device: load the model for it (without the
      // lock; a change meanwhile cancels the load and supersedes this job).
      std::string loaded_path;
      Result<std::shared_ptr<const model::Model>> loaded =
          LoadModel(job.name, job.epoch, target, ordinal, &loaded_path);
      std::lock_guard<std::mutex> lock(mu_);
      auto it = deployments_.find(job.name);
      if (stopping_ || it == deployments_.end() || it->second.epoch != job.epoch) break;
      Deployment& d = it->second;
      if (!loaded.ok()) {
        leave_pending(d, loaded.status()
                             .WithContext("on " + share.gpus.front() + " (device " +
                                          std::to_string(ordinal) + ")")
                             .message());
        break;
      }
      replica_model = std::move(loaded).value();
      d.models_by_device[ordinal] = replica_model;
      agent::LogEvent(spdlog::level::info, "model_loaded_on_device",
                      {{"deployment", job.name},
                       {"generation", target.generation},
                       {"device", share.gpus.front()},
                       {"ordinal", ordinal}});
    }
    auto r =
        std::make_shared<Replica>(target.name, index, replica_model, SchedulerOptionsFor(target),
                                  target.engine.sampling, share, target.engine.chat_template);
    r->generation_ = target.generation;
    if (Status s = r->scheduler().status(); !s.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = deployments_.find(job.name);
      if (it != deployments_.end() && it->second.epoch == job.epoch) {
        Deployment& d = it->second;
        d.pending = std::max(0, d.desired - static_cast<int>(d.replicas.size()));
        d.pending_reason = s.WithContext("starting replica " + std::to_string(index)).message();
        if (d.replicas.empty()) {
          d.failed_epoch = d.epoch;
          d.phase = agent::DeploymentPhase::kFailed;
          d.reason = d.pending_reason;
        }
        changed_.notify_all();
      }
      break;
    }
    std::lock_guard<std::mutex> lock(mu_);
    auto it = deployments_.find(job.name);
    if (stopping_ || it == deployments_.end() || it->second.epoch != job.epoch) {
      staged.push_back(std::move(r));  // retired below
      break;
    }
    Deployment& d = it->second;
    if (d.serving_generation != target.generation) {
      staged.push_back(std::move(r));
    } else {
      d.replicas.push_back(std::move(r));
      if (d.phase != agent::DeploymentPhase::kReady) {
        d.phase = agent::DeploymentPhase::kReady;  // serving from the first replica on
        d.reason.clear();
      }
      agent::LogEvent(spdlog::level::info, "replica_started",
                      {{"deployment", job.name},
                       {"replica", index},
                       {"device", d.replicas.back()->share().Describe()},
                       {"replicas", d.replicas.size()}});
      changed_.notify_all();
    }
  }
  for (auto& r : staged) retired.push_back(std::move(r));
  Retire(std::move(retired));
}

void ReplicaManager::Retire(std::vector<std::shared_ptr<Replica>> replicas) {
  if (replicas.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  // Draining runs off the caller's thread: the replica takes no new request (it left the
  // routing set), requests that hold a lease on it finish (they were routed before it left, and
  // may not have reached its engine yet), then its engine stops within what remains of the grace
  // period.
  // A draining replica's GPUs stay taken until its engine has stopped.
  for (const auto& r : replicas) {
    for (const std::string& g : r->share().gpus) draining_gpus_.insert(g);
  }
  drainers_.emplace_back([this, replicas = std::move(replicas), grace = options_.drain_grace] {
    const auto deadline = std::chrono::steady_clock::now() + grace;
    for (const auto& r : replicas) {
      while (r->outstanding() > 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      r->scheduler().Shutdown(std::max(std::chrono::milliseconds(0), left));
    }
    std::lock_guard<std::mutex> relock(mu_);
    bool freed = false;
    for (const auto& r : replicas) {
      for (const std::string& g : r->share().gpus) {
        auto it = draining_gpus_.find(g);
        if (it != draining_gpus_.end()) {
          draining_gpus_.erase(it);
          freed = true;
        }
      }
    }
    if (freed && !stopping_) QueuePendingLocked();
  });
}

void ReplicaManager::Shutdown(std::chrono::milliseconds grace) {
  std::vector<std::shared_ptr<Replica>> all;
  std::vector<std::thread> drainers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      stopping_ = true;
      for (auto& [name, d] : deployments_) {
        for (auto& r : d.replicas) all.push_back(r);
        d.replicas.clear();
        d.model.reset();
        d.models_by_device.clear();
        d.phase = agent::DeploymentPhase::kPending;
        d.reason = "shutting down";
      }
      changed_.notify_all();
    }
  }
  if (loader_.joinable()) loader_.join();
  // Drain every replica at once so the grace period is shared, not summed.
  std::vector<std::thread> now;
  for (auto& r : all) now.emplace_back([r, grace] { r->scheduler().Shutdown(grace); });
  for (auto& t : now) t.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    drainers = std::move(drainers_);
  }
  for (auto& t : drainers) t.join();
}

Result<std::shared_ptr<Replica>> ReplicaManager::Acquire(const std::string& name) const {
  std::vector<std::shared_ptr<Replica>> replicas;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return Status::Unavailable("the agent is shutting down");
    auto it = deployments_.find(name);
    if (it == deployments_.end()) return Status::NotFound("no deployment named '" + name + "'");
    const Deployment& d = it->second;
    if (d.replicas.empty()) {
      if (d.phase == agent::DeploymentPhase::kFailed) {
        return Status::FailedPrecondition("deployment '" + name + "' failed: " + d.reason);
      }
      return Status::Unavailable("deployment '" + name + "' has no ready replica yet");
    }
    replicas = d.replicas;
  }
  std::shared_ptr<Replica> best;
  int best_load = std::numeric_limits<int>::max();
  for (const auto& r : replicas) {
    const int l = r->outstanding() + r->load();
    if (l < best_load) {
      best_load = l;
      best = r;
    }
  }
  return best;
}

Result<ReplicaLease> ReplicaManager::AcquireLease(const std::string& name,
                                                  std::chrono::milliseconds timeout) {
  std::function<void(const std::string&)> listener;
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_) return Status::Unavailable("the agent is shutting down");
  auto it = deployments_.find(name);
  if (it == deployments_.end()) return Status::NotFound("no deployment named '" + name + "'");
  it->second.last_request = std::chrono::steady_clock::now();
  if (it->second.replicas.empty()) {
    Deployment& d = it->second;
    if (d.phase == agent::DeploymentPhase::kFailed) {
      return Status::FailedPrecondition("deployment '" + name + "' failed: " + d.reason);
    }
    if (d.waiting >= d.target.scaling.max_queue) {
      return Status::ResourceExhausted("deployment '" + name + "' has no ready replica and " +
                                       std::to_string(d.waiting) + " requests already waiting");
    }
    if (timeout.count() < 0) {
      timeout = options_.queue_timeout_override.count() > 0
                    ? options_.queue_timeout_override
                    : std::chrono::milliseconds(d.target.scaling.queue_timeout_seconds * 1000);
    }
    ++d.waiting;
    listener = demand_listener_;
    lock.unlock();
    if (listener) listener(name);
    lock.lock();
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    bool ready = false;
    while (true) {
      it = deployments_.find(name);
      if (stopping_ || it == deployments_.end()) break;
      if (!it->second.replicas.empty() || it->second.phase == agent::DeploymentPhase::kFailed) {
        ready = true;
        break;
      }
      if (changed_.wait_until(lock, deadline) == std::cv_status::timeout) {
        it = deployments_.find(name);
        ready = it != deployments_.end() && !it->second.replicas.empty();
        break;
      }
    }
    it = deployments_.find(name);
    if (it != deployments_.end()) --it->second.waiting;
    if (stopping_) return Status::Unavailable("the agent is shutting down");
    if (it == deployments_.end()) return Status::NotFound("no deployment named '" + name + "'");
    if (it->second.phase == agent::DeploymentPhase::kFailed) {
      return Status::FailedPrecondition("deployment '" + name + "' failed: " + it->second.reason);
    }
    if (!ready) {
      return Status::DeadlineExceeded(
          "deployment '" + name + "' had no ready replica within " +
          std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) +
          " ms" + (it->second.pending > 0 ? ": " + it->second.pending_reason : ""));
    }
  }
  const std::vector<std::shared_ptr<Replica>>& replicas = it->second.replicas;
  // Least outstanding work: leases held (routed, not finished), then what its engine holds.
  std::shared_ptr<Replica> best;
  std::pair<int, int> best_load{std::numeric_limits<int>::max(), 0};
  for (const auto& r : replicas) {
    const std::pair<int, int> l{r->outstanding(), r->load()};
    if (l < best_load) {
      best_load = l;
      best = r;
    }
  }
  return ReplicaLease(best);  // counted before the lock is released: concurrent picks spread
}

int ReplicaManager::RetryAfterSeconds(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = deployments_.find(name);
  const double s = it == deployments_.end() ? 1.0 : it->second.last_load_seconds;
  return static_cast<int>(std::clamp(std::ceil(s) + 1.0, 1.0, 60.0));
}

std::vector<ScalingInput> ReplicaManager::ScalingInputs() const {
  std::vector<ScalingInput> out;
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return out;
  for (const auto& [name, d] : deployments_) {
    ScalingInput in;
    in.name = name;
    in.generation = d.target.generation;
    in.desired = d.desired;
    in.ready = static_cast<int>(d.replicas.size());
    for (const auto& r : d.replicas) {
      in.in_flight += r->outstanding();
      in.queued += r->scheduler().stats().queue_depth;
    }
    in.waiting = d.waiting;
    in.last_request = d.last_request;
    in.replicas_min = d.target.resources.replicas_min;
    in.replicas_max = std::max({1, d.target.replicas, d.target.resources.replicas_max});
    int slots = std::max(1, d.target.engine.max_batch);
    if (options_.max_batch_cap > 0) slots = std::min(slots, options_.max_batch_cap);
    const int in_flight_target =
        d.target.scaling.target_in_flight > 0 ? d.target.scaling.target_in_flight : slots;
    in.per_replica_target = in_flight_target + d.target.scaling.target_queue_depth;
    in.scaling = d.target.scaling;
    in.scalable = d.failed_epoch != d.epoch && d.epoch != 0 &&
                  (d.serving_generation == d.target.generation || d.desired == 0);
    out.push_back(std::move(in));
  }
  return out;
}

Status ReplicaManager::SetDesired(const std::string& name, int replicas, const std::string& reason,
                                  double queue_depth, double in_flight) {
  int from = 0;
  int to = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = deployments_.find(name);
    if (it == deployments_.end()) return Status::NotFound("no deployment named '" + name + "'");
    from = it->second.desired;
    const int hi =
        std::max({1, it->second.target.replicas, it->second.target.resources.replicas_max});
    to = std::clamp(replicas, 0, hi);
  }
  if (from == to) return Status::Ok();
  // Recorded before it takes effect: a decision that cannot be audited is not taken.
  if (options_.audit != nullptr) {
    agent::AuditEntry entry;
    entry.identity = "agent:autoscaler";
    entry.role = "agent";
    entry.rpc = "Scale";
    entry.target = name;
    entry.outcome = std::to_string(from) + " -> " + std::to_string(to) + ": " + reason;
    Result<agent::AuditRecord> appended = options_.audit->Append(entry);
    if (!appended.ok()) {
      agent::LogEvent(spdlog::level::err, "scale_not_audited",
                      {{"deployment", name}, {"error", appended.status().message()}});
      return appended.status().WithContext("recording the scaling decision");
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = deployments_.find(name);
  if (it == deployments_.end()) return Status::NotFound("no deployment named '" + name + "'");
  it->second.desired = to;
  agent::ScalingEventInfo e;
  e.deployment = name;
  e.from_replicas = from;
  e.to_replicas = to;
  e.reason = reason;
  e.at_unix_ms = UnixMs();
  // Strictly increasing times, so "events since T" never skips one decided in the same ms.
  if (!events_.empty() && e.at_unix_ms <= events_.back().at_unix_ms) {
    e.at_unix_ms = events_.back().at_unix_ms + 1;
  }
  e.queue_depth = queue_depth;
  e.in_flight = in_flight;
  events_.push_back(e);
  while (events_.size() > kMaxEvents) events_.pop_front();
  agent::LogEvent(spdlog::level::info, "scaled",
                  {{"deployment", name},
                   {"from", from},
                   {"to", to},
                   {"reason", reason},
                   {"queue_depth", queue_depth},
                   {"in_flight", in_flight}});
  QueueJobLocked(name);
  return Status::Ok();
}

void ReplicaManager::SetDemandListener(std::function<void(const std::string&)> listener) {
  std::lock_guard<std::mutex> lock(mu_);
  demand_listener_ = std::move(listener);
}

std::vector<agent::ScalingEventInfo> ReplicaManager::ScalingEventsSince(int64_t after_unix_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<agent::ScalingEventInfo> out;
  for (const auto& e : events_) {
    if (e.at_unix_ms > after_unix_ms) out.push_back(e);
  }
  return out;
}

DeploymentView ReplicaManager::ViewLocked(const Deployment& d) const {
  DeploymentView v;
  v.name = d.target.name;
  v.generation = d.target.generation;
  v.serving_generation = d.serving_generation;
  v.phase = d.phase;
  v.reason = d.reason;
  v.replicas_desired = d.desired;
  v.replicas_ready = static_cast<int>(d.replicas.size());
  v.replicas_pending = d.pending;
  v.pending_reason = d.pending_reason;
  for (const auto& r : d.replicas) {
    v.in_flight += r->outstanding();
    v.replica_devices.push_back(r->share().Describe());
    v.replica_device_ordinals.push_back(r->share().gpus.empty() ? -1 : r->model().device());
  }
  v.waiting = d.waiting;
  v.model_path = d.model_path;
  v.backend = d.backend;
  return v;
}

std::vector<DeploymentView> ReplicaManager::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<DeploymentView> out;
  for (const auto& [name, d] : deployments_) out.push_back(ViewLocked(d));
  return out;
}

std::optional<DeploymentView> ReplicaManager::Get(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = deployments_.find(name);
  if (it == deployments_.end()) return std::nullopt;
  return ViewLocked(it->second);
}

bool ReplicaManager::AllReady(std::string* why) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, d] : deployments_) {
    // A deployment scaled to zero on purpose is ready: its next request brings a replica back.
    const bool at_zero = d.desired == 0 && d.phase == agent::DeploymentPhase::kReady;
    if (d.replicas.empty() && !at_zero) {
      if (why != nullptr) {
        *why = "deployment '" + name + "' is " + std::string(PhaseName(d.phase)) +
               (d.reason.empty() ? "" : ": " + d.reason);
      }
      return false;
    }
  }
  return true;
}

std::optional<DeploymentView> ReplicaManager::WaitSettled(const std::string& name,
                                                          std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  auto settled = [&] {
    auto it = deployments_.find(name);
    if (it == deployments_.end()) return true;
    const Deployment& d = it->second;
    if (d.phase == agent::DeploymentPhase::kFailed) return true;
    const bool complete = static_cast<int>(d.replicas.size()) + d.pending >= d.desired;
    return d.phase == agent::DeploymentPhase::kReady &&
           d.serving_generation == d.target.generation && complete;
  };
  changed_.wait_for(lock, timeout, settled);
  auto it = deployments_.find(name);
  if (it == deployments_.end()) return std::nullopt;
  return ViewLocked(it->second);
}

void ReplicaManager::Collect() {
  if (metrics_ == nullptr) return;
  struct Snap {
    std::vector<std::shared_ptr<Replica>> replicas;
    int desired = 0;
    int waiting = 0;
  };
  std::map<std::string, Snap> snapshot;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, d] : deployments_) {
      snapshot[name] = Snap{d.replicas, d.desired, d.waiting};
    }
  }
  for (const auto& [name, snap] : snapshot) {
    int queue = snap.waiting;
    int active = 0;
    int64_t used = 0;
    int64_t cached = 0;
    int64_t capacity = 0;
    for (const auto& r : snap.replicas) {
      const serve::SchedulerStats s = r->scheduler().stats();
      queue += s.queue_depth;
      active += s.active;
      used += s.kv_blocks_used;
      cached += s.kv_blocks_cached;
      capacity += s.kv_blocks_total;
    }
    const ServingMetrics::Deployment& m = metrics_->For(name);
    m.queue_depth->Set(queue);
    m.active_requests->Set(active);
    m.kv_cache_usage->Set(capacity > 0 ? static_cast<double>(used) / capacity : 0.0);
    m.kv_blocks_used->Set(static_cast<double>(used));
    m.kv_blocks_cached->Set(static_cast<double>(cached));
    m.kv_blocks_total->Set(static_cast<double>(capacity));
    m.replicas_ready->Set(static_cast<double>(snap.replicas.size()));
    m.replicas_desired->Set(snap.desired);
  }
}

std::optional<agent::DeploymentStatusInfo> ReplicaManager::StatusOf(const std::string& name) {
  std::optional<DeploymentView> v = Get(name);
  if (!v) return std::nullopt;
  agent::DeploymentStatusInfo s;
  s.phase = v->phase;
  s.reason = v->reason;
  if (v->replicas_pending > 0 && v->reason.empty()) {
    s.reason = std::to_string(v->replicas_pending) + " of " + std::to_string(v->replicas_desired) +
               " replicas pending: " + v->pending_reason;
  }
  s.observed_generation = v->serving_generation;
  s.replicas_desired = v->replicas_desired;
  s.replicas_ready = v->replicas_ready;
  s.backend = v->backend;
  return s;
}

std::vector<agent::DeploymentMetricsInfo> ReplicaManager::Metrics() {
  std::vector<agent::DeploymentMetricsInfo> out;
  if (metrics_ == nullptr) return out;
  Collect();
  for (const DeploymentView& v : List()) {
    const ServingMetrics::Deployment& m = metrics_->For(v.name);
    agent::DeploymentMetricsInfo info;
    info.name = v.name;
    info.requests_total = static_cast<int64_t>(m.RequestsTotal());
    info.rejected_total = static_cast<int64_t>(m.RequestsWithCode(429));
    info.prompt_tokens_total = static_cast<int64_t>(m.prompt_tokens->value());
    info.generated_tokens_total = static_cast<int64_t>(m.generated_tokens->value());
    info.queue_depth = static_cast<int32_t>(m.queue_depth->value());
    info.kv_cache_use = m.kv_cache_usage->value();
    info.kv_cache_blocks_used = static_cast<int64_t>(m.kv_blocks_used->value());
    info.kv_cache_blocks_total = static_cast<int64_t>(m.kv_blocks_total->value());
    info.prefix_cache_queries_total = static_cast<int64_t>(m.prefix_cache_queries->value());
    info.prefix_cache_hits_total = static_cast<int64_t>(m.prefix_cache_hits->value());
    info.ttft_seconds = ToInfo(m.ttft_seconds->snapshot());
    const agent::Histogram::Snapshot itl = m.inter_token_seconds->snapshot();
    info.inter_token_seconds = ToInfo(itl);
    // Decode rate of one stream, from the mean inter-token latency.
    info.tokens_per_second = itl.count > 0 && itl.sum > 0 ? itl.count / itl.sum : 0;
    info.replicas_ready = v.replicas_ready;
    info.replicas_desired = v.replicas_desired;
    info.replicas_pending = v.replicas_pending;
    info.pending_reason = v.pending_reason;
    info.in_flight = v.in_flight;
    out.push_back(std::move(info));
  }
  return out;
}

}  // namespace sextant::agent
