#include "app/replicas/replica_manager.h"

#include "app/agentconfig/json_log.h"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <limits>

namespace sextant::replicas {

namespace {

std::string NormalizeSha(std::string s) {
  if (s.rfind("sha256:", 0) == 0) s = s.substr(7);
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

Result<std::string> Sha256OfFile(const std::filesystem::path& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return std::filesystem::exists(path)
               ? Status::Unavailable("cannot read " + path.string())
               : Status::NotFound("model file " + path.string() + " is not in the model store");
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<unsigned char> buf(1 << 20);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) EVP_DigestUpdate(ctx, buf.data(), n);
  const bool read_error = std::ferror(f) != 0;
  std::fclose(f);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  if (read_error) return Status::Unavailable("read error on " + path.string());
  static const char* kHex = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex += kHex[md[i] >> 4];
    hex += kHex[md[i] & 15];
  }
  return hex;
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

agent::HistogramInfo ToInfo(const metrics::Histogram::Snapshot& s) {
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
                 serve::SchedulerOptions options, spec::SamplingDefaults sampling)
    : deployment_(std::move(deployment)),
      index_(index),
      model_(std::move(model)),
      scheduler_(std::make_unique<serve::BatchScheduler>(model_, options)),
      sampling_(sampling) {}

Replica::~Replica() = default;

int Replica::load() const {
  const serve::SchedulerStats s = scheduler_->stats();
  return s.queue_depth + s.active;
}

// ---- ReplicaManager ----------------------------------------------------------------------------

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
  if (scheme == std::string::npos && uri[0] != '/') {
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

void ReplicaManager::Upsert(DeploymentTarget target) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return;
  Deployment& d = deployments_[target.name];
  const bool same = d.epoch != 0 && d.target.generation == target.generation &&
                    d.target.model_sha256 == target.model_sha256 &&
                    d.target.model_uri == target.model_uri && d.target.replicas == target.replicas;
  if (same) return;
  d.target = target;
  d.epoch = next_epoch_++;
  d.phase = d.replicas.empty() ? agent::DeploymentPhase::kPending : d.phase;
  jobs_.push_back(LoadJob{target.name, d.epoch, std::move(target)});
  changed_.notify_all();
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
}

void ReplicaManager::Reconcile(std::vector<DeploymentTarget> targets) {
  std::vector<std::string> gone;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, d] : deployments_) {
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
      auto it = deployments_.find(job.name);
      if (it == deployments_.end() || it->second.epoch != job.epoch) continue;  // superseded
      it->second.phase =
          it->second.replicas.empty() ? agent::DeploymentPhase::kLoading : it->second.phase;
      if (it->second.replicas.empty()) it->second.reason = "loading the model";
      changed_.notify_all();
    }
    std::string model_path;
    std::string backend;
    Result<std::vector<std::shared_ptr<Replica>>> loaded = Load(job, &model_path, &backend);
    std::vector<std::shared_ptr<Replica>> retired;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = deployments_.find(job.name);
      if (it == deployments_.end() || it->second.epoch != job.epoch || stopping_) {
        if (loaded.ok()) retired = std::move(loaded).value();  // superseded while loading
      } else if (!loaded.ok()) {
        Deployment& d = it->second;
        // Nothing is served for a deployment whose current generation cannot be verified or
        // loaded: the previous generation's replicas stop too.
        retired = std::move(d.replicas);
        d.replicas.clear();
        d.serving_generation = 0;
        d.phase = agent::DeploymentPhase::kFailed;
        d.reason = loaded.status().message();
        d.model_path = model_path;
        agent::LogEvent(spdlog::level::warn, "deployment_failed",
                        {{"deployment", job.name},
                         {"generation", job.target.generation},
                         {"reason", d.reason}});
      } else {
        Deployment& d = it->second;
        retired = std::move(d.replicas);
        d.replicas = std::move(loaded).value();
        d.serving_generation = job.target.generation;
        d.phase = agent::DeploymentPhase::kReady;
        d.reason.clear();
        d.model_path = model_path;
        d.backend = backend;
        agent::LogEvent(spdlog::level::info, "deployment_ready",
                        {{"deployment", job.name},
                         {"generation", job.target.generation},
                         {"replicas", d.replicas.size()},
                         {"backend", backend}});
      }
      changed_.notify_all();
    }
    Retire(std::move(retired));
  }
}

Result<std::vector<std::shared_ptr<Replica>>> ReplicaManager::Load(const LoadJob& job,
                                                                   std::string* model_path,
                                                                   std::string* backend) {
  const DeploymentTarget& t = job.target;
  SEXTANT_ASSIGN_OR_RETURN(std::filesystem::path path,
                           ResolveModelPath(options_.model_store, t.model_uri));
  *model_path = path.string();
  const std::string want = NormalizeSha(t.model_sha256);
  if (want.size() != 64 ||
      !std::all_of(want.begin(), want.end(), [](char c) { return std::isxdigit(c) != 0; })) {
    return Status::InvalidArgument("model.sha256 '" + t.model_sha256 + "' is not 64 hex digits");
  }
  SEXTANT_ASSIGN_OR_RETURN(std::string have, Sha256OfFile(path));
  if (have != want) {
    return Status::FailedPrecondition("model sha256 mismatch: the spec names " + want + " but " +
                                      path.filename().string() + " in the model store has " + have);
  }
  model::LoadOptions load;
  load.backend = options_.backend_override.empty() ? t.engine.backend : options_.backend_override;
  load.threads = options_.threads_override > 0 ? options_.threads_override : t.engine.threads;
  load.context_length = t.engine.context_length;
  load.on_progress = [this, &job](float) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = deployments_.find(job.name);
    return !stopping_ && it != deployments_.end() && it->second.epoch == job.epoch;
  };
  Result<std::shared_ptr<const model::Model>> model = model::Model::Load(path, load);
  if (!model.ok()) return model.status().WithContext("loading " + path.filename().string());
  *backend = std::string(model.value()->backend_name());

  serve::SchedulerOptions sched;
  sched.max_batch = std::max(1, t.engine.max_batch);
  if (options_.max_batch_cap > 0)
    sched.max_batch = std::min(sched.max_batch, options_.max_batch_cap);
  sched.max_queue = std::max(0, options_.max_queue);
  sched.context_length = t.engine.context_length;
  sched.max_batch_tokens = options_.max_batch_tokens;
  sched.threads = load.threads;
  std::vector<std::shared_ptr<Replica>> replicas;
  for (int i = 0; i < std::max(1, t.replicas); ++i) {
    auto r = std::make_shared<Replica>(t.name, i, model.value(), sched, t.engine.sampling);
    Status s = r->scheduler().status();
    if (!s.ok()) return s.WithContext("starting replica " + std::to_string(i));
    replicas.push_back(std::move(r));
  }
  return replicas;
}

void ReplicaManager::Retire(std::vector<std::shared_ptr<Replica>> replicas) {
  if (replicas.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  // Draining may take the whole grace period; it runs off the caller's thread. Requests that
  // hold the replica keep it alive until they finish.
  drainers_.emplace_back([replicas = std::move(replicas), grace = options_.drain_grace] {
    for (const auto& r : replicas) r->scheduler().Shutdown(grace);
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
    const int l = r->load();
    if (l < best_load) {
      best_load = l;
      best = r;
    }
  }
  return best;
}

DeploymentView ReplicaManager::ViewLocked(const Deployment& d) const {
  DeploymentView v;
  v.name = d.target.name;
  v.generation = d.target.generation;
  v.serving_generation = d.serving_generation;
  v.phase = d.phase;
  v.reason = d.reason;
  v.replicas_desired = std::max(1, d.target.replicas);
  v.replicas_ready = static_cast<int>(d.replicas.size());
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
    if (d.replicas.empty()) {
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
    return d.phase == agent::DeploymentPhase::kReady && d.serving_generation == d.target.generation;
  };
  changed_.wait_for(lock, timeout, settled);
  auto it = deployments_.find(name);
  if (it == deployments_.end()) return std::nullopt;
  return ViewLocked(it->second);
}

void ReplicaManager::Collect() {
  if (metrics_ == nullptr) return;
  std::map<std::string, std::pair<std::vector<std::shared_ptr<Replica>>, int>> snapshot;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, d] : deployments_) {
      snapshot[name] = {d.replicas, std::max(1, d.target.replicas)};
    }
  }
  for (const auto& [name, entry] : snapshot) {
    const auto& [replicas, desired] = entry;
    int queue = 0;
    int active = 0;
    int64_t used = 0;
    int64_t capacity = 0;
    for (const auto& r : replicas) {
      const serve::SchedulerStats s = r->scheduler().stats();
      queue += s.queue_depth;
      active += s.active;
      used += s.kv_tokens_used;
      capacity += s.kv_tokens_capacity;
    }
    const ServingMetrics::Deployment& m = metrics_->For(name);
    m.queue_depth->Set(queue);
    m.active_requests->Set(active);
    m.kv_cache_usage->Set(capacity > 0 ? static_cast<double>(used) / capacity : 0.0);
    m.replicas_ready->Set(static_cast<double>(replicas.size()));
    m.replicas_desired->Set(desired);
  }
}

std::optional<agent::DeploymentStatusInfo> ReplicaManager::StatusOf(const std::string& name) {
  std::optional<DeploymentView> v = Get(name);
  if (!v) return std::nullopt;
  agent::DeploymentStatusInfo s;
  s.phase = v->phase;
  s.reason = v->reason;
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
    info.ttft_seconds = ToInfo(m.ttft_seconds->snapshot());
    const metrics::Histogram::Snapshot itl = m.inter_token_seconds->snapshot();
    info.inter_token_seconds = ToInfo(itl);
    // Decode rate of one stream, from the mean inter-token latency.
    info.tokens_per_second = itl.count > 0 && itl.sum > 0 ? itl.count / itl.sum : 0;
    info.replicas_ready = v.replicas_ready;
    out.push_back(std::move(info));
  }
  return out;
}

}  // namespace sextant::replicas
