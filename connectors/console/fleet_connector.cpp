#include "connectors/console/fleet_connector.h"

#include <algorithm>
#include <condition_variable>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>
#include <tuple>

#include "app/common/fact_keys.h"
#include "app/common/signing.h"
#include "connectors/agent/agent_client.h"
#include "connectors/agent/identity_certs.h"
#include "engine/base/sha256.h"
#include "engine/base/time.h"

namespace sextant::rpc {
namespace {

using console::TimeMs;

// A fact key as the map of a target's facts holds it.
std::string FactKey(std::string_view key) { return std::string(key); }
using std::chrono::milliseconds;

// The cause of a failed call in words, for the target's status.
std::string ErrorText(const Status& s) {
  switch (s.code()) {
    case StatusCode::kUnavailable:
      return "unreachable: " + s.message();
    case StatusCode::kCancelled:
      // The console cancels its own calls only when it stops, and then records nothing: a
      // cancelled call was ended by the agent (a server shutting down cancels its calls).
      return "unreachable: the agent ended the call (shutting down or restarting)";
    case StatusCode::kDeadlineExceeded:
      return "no answer within the deadline: " + s.message();
    case StatusCode::kPermissionDenied:
      return "permission denied: " + s.message();
    case StatusCode::kUnauthenticated:
      return "not authenticated: " + s.message();
    default:
      return s.ToString();
  }
}

// Quantile of the increase of a cumulative histogram between two snapshots, in milliseconds;
// linear within the bucket. Returns -1 when no observation fell in between.
double QuantileMs(const v1::Histogram& now, const v1::Histogram* before, double q) {
  const int n = now.counts_size();
  if (n == 0 || now.upper_bounds_size() + 1 != n) return -1;
  std::vector<int64_t> counts(n);
  for (int i = 0; i < n; ++i) {
    counts[i] = now.counts(i);
    if (before != nullptr && before->counts_size() == n) counts[i] -= before->counts(i);
  }
  const int64_t total = counts[n - 1];
  if (total <= 0) return -1;
  const double rank = q * static_cast<double>(total);
  int64_t prev = 0;
  for (int i = 0; i < n; ++i) {
    if (static_cast<double>(counts[i]) >= rank) {
      if (i == n - 1) return now.upper_bounds(n - 2) * 1000.0;  // +Inf bucket: its lower bound
      const double lo = i == 0 ? 0.0 : now.upper_bounds(i - 1);
      const double hi = now.upper_bounds(i);
      const int64_t in_bucket = counts[i] - prev;
      const double frac = in_bucket > 0 ? (rank - static_cast<double>(prev)) / in_bucket : 1.0;
      return (lo + (hi - lo) * std::clamp(frac, 0.0, 1.0)) * 1000.0;
    }
    prev = counts[i];
  }
  return now.upper_bounds(n - 2) * 1000.0;
}

// What a connector remembers between messages of one target.
struct TargetSync {
  std::string node;
  std::map<std::string, int> device_index;         // device id -> index in the inventory
  std::map<std::string, std::string> device_kind;  // device id -> kind
  std::map<std::string, double> gpus_requested;    // deployment -> GPUs (count × replicas)
  std::map<std::string, int> replicas_desired;
  std::map<std::string, v1::Histogram> prev_ttft;
  std::map<std::string, std::pair<double, double>> last_ttft;  // p50, p99 in ms
  std::map<std::string, v1::Histogram> prev_itl;
  std::map<std::string, std::pair<double, double>> last_itl;  // p50, p99 in ms
  TimeMs prev_snapshot_ms = 0;
};

Status SyncInventory(const v1::Inventory& inv, const std::string& target,
                     console::ConsoleDatabase& st, TargetSync* sync) {
  sync->node = inv.node().empty() ? target : inv.node();
  sync->device_index.clear();
  sync->device_kind.clear();
  std::vector<console::Gpu> gpus;
  for (int i = 0; i < inv.devices_size(); ++i) {
    const auto& d = inv.devices(i);
    sync->device_index[d.id()] = i;
    sync->device_kind[d.id()] = d.kind();
    console::Gpu g;
    g.target = target;
    g.node = sync->node;
    g.index = i;
    g.kind = d.kind();
    g.model = d.model();
    g.memory_total_bytes = d.memory_total_bytes();
    gpus.push_back(std::move(g));
  }
  return st.telemetry().ReplaceGpus(target, gpus);
}

// Reads identity, info, inventory, deployments and compliance facts into the store.
Status SyncFacts(rpc::AgentClient& client, const std::string& target, console::ConsoleDatabase& st,
                 TargetSync* sync, milliseconds deadline, TargetIdentity* who) {
  SEXTANT_ASSIGN_OR_RETURN(v1::WhoAmIResponse me, client.WhoAmI(deadline));
  SEXTANT_ASSIGN_OR_RETURN(v1::AgentInfo info, client.GetAgentInfo(deadline));
  if (who != nullptr) {
    who->identity = me.identity();
    who->role = me.role();
    who->allowed_rpcs.assign(me.allowed_rpcs().begin(), me.allowed_rpcs().end());
    who->agent_version = info.version();
    who->build_id = info.build_id();
    who->agent_name = info.agent_name();
  }
  SEXTANT_ASSIGN_OR_RETURN(v1::Inventory inv, client.GetInventory(deadline));
  SEXTANT_RETURN_IF_ERROR(SyncInventory(inv, target, st, sync));

  SEXTANT_ASSIGN_OR_RETURN(v1::ListDeploymentsResponse deps, client.ListDeployments(deadline));
  auto facts_or = client.GetComplianceFacts(deadline);
  // A role without compliance access still gets a fleet view; the facts are then missing.
  if (!facts_or.ok() && facts_or.status().code() != StatusCode::kPermissionDenied) {
    return facts_or.status();
  }
  const std::string engine_build = facts_or.ok() && !facts_or->engine_build_id().empty()
                                       ? facts_or->engine_build_id()
                                       : info.build_id();
  std::vector<console::Deployment> out;
  sync->gpus_requested.clear();
  sync->replicas_desired.clear();
  for (const auto& d : deps.deployments()) {
    console::Deployment sd;
    sd.target = target;
    sd.name = d.spec().name();
    sd.model_sha256 = d.spec().model_sha256();
    sd.spec_digest = d.spec().spec_digest();
    sd.engine_build_id = engine_build;
    sd.replicas_desired = d.status().replicas_desired();
    sd.replicas_ready = d.status().replicas_ready();
    auto spec = nlohmann::json::parse(d.spec().spec_json(), nullptr, false);
    int gpu_count = 0;
    int replicas = sd.replicas_desired;
    if (spec.is_object()) {
      const auto res = spec.value("resources", nlohmann::json::object());
      if (res.is_object()) {
        const auto gpu = res.value("gpu", nlohmann::json::object());
        if (gpu.is_object() && gpu.value("count", nlohmann::json()).is_number_integer()) {
          gpu_count = gpu["count"].get<int>();
        }
        const auto reps = res.value("replicas", nlohmann::json::object());
        if (replicas == 0 && reps.is_object() &&
            reps.value("min", nlohmann::json()).is_number_integer()) {
          replicas = reps["min"].get<int>();
        }
      }
      const auto pol = spec.value("policy", nlohmann::json::object());
      if (pol.is_object() && pol.value("labels", nlohmann::json()).is_object()) {
        for (auto& [k, v] : pol["labels"].items()) {
          if (v.is_string()) sd.labels[k] = v.get<std::string>();
        }
      }
    }
    sd.gpus_requested = static_cast<double>(gpu_count) * replicas;
    sync->gpus_requested[sd.name] = sd.gpus_requested;
    sync->replicas_desired[sd.name] = sd.replicas_desired;
    out.push_back(std::move(sd));
  }
  SEXTANT_RETURN_IF_ERROR(st.telemetry().ReplaceDeployments(target, out));

  // Facts: the typed fields under the names compliance packs read, then the agent's own
  // named facts where they do not collide.
  std::map<std::string, std::string> f;
  const TimeMs now = console::NowMs();
  const auto& cloud = facts_or.ok() && facts_or->has_cloud() ? facts_or->cloud() : info.cloud();
  f[FactKey(facts::kCloudProvider)] = cloud.provider();
  f[FactKey(facts::kCloudAccount)] = cloud.account();
  f[FactKey(facts::kCloudRegion)] = cloud.region();
  f[FactKey(facts::kCloudZone)] = cloud.zone();
  f[FactKey(facts::kCloudInstanceType)] = cloud.instance_type();
  f[FactKey(facts::kCloudInstanceId)] = cloud.instance_id();
  f[FactKey(facts::kCloudPricing)] = cloud.spot() ? "spot" : "on_demand";
  f[FactKey(facts::kCloudSource)] = cloud.source();
  f[FactKey(facts::kAgentVersion)] = info.version();
  f[FactKey(facts::kAgentBuildId)] = info.build_id();
  f[FactKey(facts::kAgentName)] = info.agent_name();
  f[FactKey(facts::kConsoleIdentity)] = me.identity();
  f[FactKey(facts::kConsoleRole)] = me.role();
  {
    std::vector<std::string> allowed(me.allowed_rpcs().begin(), me.allowed_rpcs().end());
    std::sort(allowed.begin(), allowed.end());
    std::string joined;
    for (const auto& r : allowed) joined += (joined.empty() ? "" : ",") + r;
    f[FactKey(facts::kConsoleAllowedRpcs)] = joined;
  }
  TimeMs observed = now;
  if (facts_or.ok()) {
    const v1::ComplianceFacts& c = *facts_or;
    if (c.observed_at_unix_ms() > 0) observed = c.observed_at_unix_ms();
    f[FactKey(facts::kTlsMtlsEnforced)] = c.mtls_required() ? "true" : "false";
    f[FactKey(facts::kTlsMinVersion)] = c.tls_min_version();
    f[FactKey(facts::kAuditChainVerified)] = c.audit_chain_intact() ? "true" : "false";
    f[FactKey(facts::kAuditRecords)] = std::to_string(c.audit_records());
    f[FactKey(facts::kAuditHeadHash)] = c.audit_head_hash();
    // The agent verified the chain when it answered: that is when the head was last seen good.
    f[FactKey(facts::kAuditHeadTime)] = FormatRfc3339(observed);
    f[FactKey(facts::kPolicyDigest)] = c.policy_digest();
    f[FactKey(facts::kEngineBuildId)] = c.engine_build_id();
    f[FactKey(facts::kEgressPayloadBytesToVendor)] = std::to_string(c.payload_bytes_to_vendor());
    f[facts::StoreEncrypted(facts::kStateDirStore)] = c.encryption_at_rest() ? "true" : "false";
    std::vector<std::string> rpcs;
    std::string roles;
    for (const auto& v : c.vendor_scope()) {
      if (roles.find(v.role()) == std::string::npos) roles += (roles.empty() ? "" : ",") + v.role();
      for (const auto& r : v.rpcs()) rpcs.push_back(r);
    }
    if (!c.vendor_scope().empty()) {
      std::sort(rpcs.begin(), rpcs.end());
      rpcs.erase(std::unique(rpcs.begin(), rpcs.end()), rpcs.end());
      std::string joined;
      for (const auto& r : rpcs) joined += (joined.empty() ? "" : ",") + r;
      f[FactKey(facts::kVendorRole)] = roles;
      f[FactKey(facts::kVendorRpcs)] = joined;
    }
    for (const auto& d : c.deployments()) {
      f[facts::DeploymentSpecDigest(d.name())] = d.spec_digest();
      f[facts::DeploymentModelSha256(d.name())] = d.model_sha256();
      f[facts::DeploymentEngineBuildId(d.name())] = engine_build;
    }
    // The agent's own named facts; the measured ones (which may say "unknown") replace what
    // the typed fields above could only say as a bool.
    static const std::set<std::string> kMeasured = {"tls.mtls_enforced", "tls.min_version",
                                                    "storage.state_dir.encrypted",
                                                    "storage.model_store.encrypted"};
    for (const auto& nf : c.facts()) {
      if (nf.name().empty()) continue;
      if (!f.count(nf.name()) || kMeasured.count(nf.name())) f[nf.name()] = nf.value();
    }
  }
  std::vector<std::pair<std::string, std::string>> list(f.begin(), f.end());
  return st.facts().Replace(target, "", list, observed);
}

// The samples of one metrics snapshot of `target`.
void BuildSamples(const v1::MetricsSnapshot& m, const std::string& target, TargetSync* sync,
                  int32_t interval_ms, std::vector<console::GpuSample>* gpus_out,
                  std::vector<console::DeploymentSample>* deps_out) {
  const TimeMs ts = m.observed_at_unix_ms() > 0 ? m.observed_at_unix_ms() : console::NowMs();
  double period = interval_ms / 1000.0;
  if (sync->prev_snapshot_ms > 0 && ts > sync->prev_snapshot_ms) {
    period = std::min((ts - sync->prev_snapshot_ms) / 1000.0, 3.0 * interval_ms / 1000.0);
  }
  sync->prev_snapshot_ms = ts;
  std::vector<console::GpuSample> gpus;
  double util_sum = 0;
  for (const auto& d : m.devices()) {
    auto kind = sync->device_kind.find(d.id());
    const std::string k = kind != sync->device_kind.end() ? kind->second : d.kind();
    if (k == "cpu" || k.empty()) continue;  // GPUs only: CPUs are not priced per GPU-hour
    auto idx = sync->device_index.find(d.id());
    console::GpuSample g;
    g.target = target;
    g.node = sync->node.empty() ? target : sync->node;
    g.index = idx != sync->device_index.end() ? idx->second : 0;
    g.ts = ts;
    g.period_s = period;
    g.utilization = std::max(0.0, d.utilization());
    g.memory_used_bytes = d.memory_used_bytes();
    g.temperature_c = d.temperature_c();
    g.power_w = d.power_w();
    util_sum += g.utilization;
    gpus.push_back(g);
  }
  double requested_sum = 0;
  for (const auto& [n, r] : sync->gpus_requested) requested_sum += r;
  std::vector<console::DeploymentSample> deps;
  for (const auto& d : m.deployments()) {
    console::DeploymentSample s;
    s.target = target;
    s.deployment = d.name();
    s.ts = ts;
    s.period_s = period;
    s.gpus_requested = sync->gpus_requested.count(d.name()) ? sync->gpus_requested[d.name()] : 0;
    // GPU use is measured per device, not per deployment: it is shared out by request (or
    // evenly when nothing is requested).
    const double share = requested_sum > 0 ? s.gpus_requested / requested_sum
                                           : 1.0 / std::max(1, m.deployments_size());
    s.gpus_used = util_sum * share;
    s.replicas_ready = d.replicas_ready();
    s.replicas_desired =
        sync->replicas_desired.count(d.name()) ? sync->replicas_desired[d.name()] : 0;
    // Quantiles of what was observed since the previous snapshot; with nothing observed in
    // between, the last figures stand.
    auto quantiles = [&](const v1::Histogram& h, std::map<std::string, v1::Histogram>& prev,
                         std::map<std::string, std::pair<double, double>>& last_of) {
      auto it = prev.find(d.name());
      const v1::Histogram* before = it != prev.end() ? &it->second : nullptr;
      const double p50 = QuantileMs(h, before, 0.5);
      const double p99 = QuantileMs(h, before, 0.99);
      auto& last = last_of[d.name()];
      if (p50 >= 0) last = {p50, p99};
      prev[d.name()] = h;
      return last;
    };
    std::tie(s.ttft_p50_ms, s.ttft_p99_ms) =
        quantiles(d.ttft_seconds(), sync->prev_ttft, sync->last_ttft);
    std::tie(s.itl_p50_ms, s.itl_p99_ms) =
        quantiles(d.inter_token_seconds(), sync->prev_itl, sync->last_itl);
    s.kv_cache_use = std::clamp(d.kv_cache_use(), 0.0, 1.0);
    s.tokens_per_s = d.tokens_per_second();
    s.queue_depth = d.queue_depth();
    s.prompt_tokens_total = d.prompt_tokens_total();
    s.generated_tokens_total = d.generated_tokens_total();
    deps.push_back(std::move(s));
  }
  *gpus_out = std::move(gpus);
  *deps_out = std::move(deps);
}

// One snapshot written at once (RefreshAll).
Status IngestMetrics(const v1::MetricsSnapshot& m, const std::string& target,
                     console::ConsoleDatabase& st, TargetSync* sync, int32_t interval_ms) {
  std::vector<console::GpuSample> gpus;
  std::vector<console::DeploymentSample> deps;
  BuildSamples(m, target, sync, interval_ms, &gpus, &deps);
  return st.telemetry().AppendSamples(gpus, deps);
}

milliseconds Jitter(milliseconds d) {
  thread_local std::mt19937 rng{std::random_device{}()};
  std::uniform_real_distribution<double> f(0.8, 1.2);
  return milliseconds(static_cast<int64_t>(static_cast<double>(d.count()) * f(rng)));
}

// Uniform in [0, d).
milliseconds Spread(milliseconds d) {
  if (d.count() <= 0) return milliseconds(0);
  thread_local std::mt19937 rng{std::random_device{}()};
  return milliseconds(std::uniform_int_distribution<int64_t>(0, d.count() - 1)(rng));
}

}  // namespace

// A counting semaphore for connection setup whose waiters give up when their connector stops.
class ConnectGate {
 public:
  explicit ConnectGate(int slots) : free_(std::max(1, slots)) {}
  // Takes a slot; false when stopped() turned true first.
  bool Acquire(const std::function<bool()>& stopped) {
    while (true) {
      if (stopped()) return false;
      std::unique_lock lock(mu_);
      if (free_ > 0) {
        --free_;
        return true;
      }
      cv_.wait_for(lock, milliseconds(50));
    }
  }
  void Release() {
    {
      std::lock_guard lock(mu_);
      ++free_;
    }
    cv_.notify_one();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int free_;  // GUARDED_BY(mu_)
};

// Writes the snapshots of every target in batches: the first snapshot queued starts a batch,
// and flush_interval later the whole queue goes to the store in one transaction. Callbacks run
// on the writer's thread after the write.
class IngestWriter {
 public:
  struct Item {
    std::string target;
    std::vector<console::GpuSample> gpu;
    std::vector<console::DeploymentSample> dep;
    TimeMs seen = 0;
    std::chrono::steady_clock::time_point received;
    std::function<void(const Status&)> done;
  };

  IngestWriter(console::ConsoleDatabase* st, milliseconds every,
               std::function<void(const IngestEvent&)> on_ingest)
      : store_(st), every_(every), on_ingest_(std::move(on_ingest)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~IngestWriter() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  void Add(Item item) {
    std::lock_guard lock(mu_);
    const bool first = queue_.empty();
    if (first) first_ = std::chrono::steady_clock::now();
    queue_.push_back(std::move(item));
    ++added_;
    if (first) cv_.notify_all();  // the writer waits for a first item, then for the interval
  }

  // Writes everything queued so far (at once, not waiting for the interval) and returns after.
  void Flush() {
    std::unique_lock lock(mu_);
    const uint64_t upto = added_;
    flush_now_ = true;
    cv_.notify_all();
    written_cv_.wait(lock, [&] { return written_ >= upto; });
  }

 private:
  void Run() {
    std::unique_lock lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      cv_.wait_until(lock, first_ + every_, [&] { return stopping_ || flush_now_; });
      flush_now_ = false;
      std::vector<Item> batch;
      batch.swap(queue_);
      lock.unlock();
      Write(batch);
      lock.lock();
      written_ += batch.size();
      written_cv_.notify_all();
    }
  }

  void Write(std::vector<Item>& batch) {
    console::IngestBatch b;
    size_t ng = 0, nd = 0;
    for (const auto& it : batch) {
      ng += it.gpu.size();
      nd += it.dep.size();
    }
    b.gpu.reserve(ng);
    b.dep.reserve(nd);
    std::map<std::string, TimeMs> seen;
    std::vector<std::pair<int, int>> counts;
    counts.reserve(batch.size());
    for (auto& it : batch) {
      counts.emplace_back(static_cast<int>(it.gpu.size()), static_cast<int>(it.dep.size()));
      std::move(it.gpu.begin(), it.gpu.end(), std::back_inserter(b.gpu));
      std::move(it.dep.begin(), it.dep.end(), std::back_inserter(b.dep));
      TimeMs& t = seen[it.target];
      t = std::max(t, it.seen);
    }
    b.last_seen.assign(seen.begin(), seen.end());
    const auto start = std::chrono::steady_clock::now();
    const Status s = store_->telemetry().Append(b);
    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - start);
    for (size_t i = 0; i < batch.size(); ++i) {
      Item& it = batch[i];
      if (it.done) it.done(s);
      if (!on_ingest_) continue;
      IngestEvent ev;
      ev.target = it.target;
      ev.gpu_samples = counts[i].first;
      ev.deployment_samples = counts[i].second;
      ev.store_write = took;
      ev.queued = std::chrono::duration_cast<std::chrono::microseconds>(start - it.received);
      ev.batch_snapshots = static_cast<int>(batch.size());
      ev.ok = s.ok();
      on_ingest_(ev);
    }
  }

  console::ConsoleDatabase* const store_;
  const milliseconds every_;
  const std::function<void(const IngestEvent&)> on_ingest_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable written_cv_;
  std::vector<Item> queue_;                      // GUARDED_BY(mu_)
  std::chrono::steady_clock::time_point first_;  // GUARDED_BY(mu_)
  bool stopping_ = false;                        // GUARDED_BY(mu_)
  bool flush_now_ = false;                       // GUARDED_BY(mu_)
  uint64_t added_ = 0;                           // GUARDED_BY(mu_)
  uint64_t written_ = 0;                         // GUARDED_BY(mu_)
};

Result<rpc::AgentClientOptions> ClientOptionsFor(const console::Target& target,
                                                 milliseconds deadline) {
  rpc::AgentClientOptions o;
  o.target = target.endpoint;
  o.server_name_override = target.server_name;
  o.deadline = deadline;
  auto read = [&](const std::string& path, const char* what, std::string* out) -> Status {
    if (path.empty()) {
      return Status::FailedPrecondition("target " + target.name + " has no " + what + " path");
    }
    auto text = rpc::ReadTextFile(path);
    if (!text.ok()) {
      return Status::FailedPrecondition("target " + target.name + ": cannot read " + what + " " +
                                        path + ": " + text.status().message());
    }
    *out = std::move(text).value();
    return Status();
  };
  SEXTANT_RETURN_IF_ERROR(read(target.ca_path, "CA", &o.ca_pem));
  SEXTANT_RETURN_IF_ERROR(read(target.cert_path, "client certificate", &o.cert_pem));
  SEXTANT_RETURN_IF_ERROR(read(target.key_path, "client key", &o.key_pem));
  return o;
}

Result<TargetIdentity> TestTarget(const console::Target& target, milliseconds deadline) {
  SEXTANT_ASSIGN_OR_RETURN(auto opts, ClientOptionsFor(target, deadline));
  SEXTANT_ASSIGN_OR_RETURN(auto client, rpc::AgentClient::Connect(opts));
  TargetIdentity who;
  SEXTANT_ASSIGN_OR_RETURN(v1::WhoAmIResponse me, client->WhoAmI(deadline));
  who.identity = me.identity();
  who.role = me.role();
  who.allowed_rpcs.assign(me.allowed_rpcs().begin(), me.allowed_rpcs().end());
  auto info = client->GetAgentInfo(deadline);
  if (info.ok()) {
    who.agent_version = info->version();
    who.build_id = info->build_id();
    who.agent_name = info->agent_name();
  }
  return who;
}

std::vector<console::TargetStatus> RefreshAll(console::ConsoleDatabase& st,
                                              const std::vector<console::Target>& targets,
                                              const ConnectorOptions& options) {
  std::vector<console::TargetStatus> out(targets.size());
  // A bounded pool: each worker takes the next target; a slow one holds up only its worker.
  std::atomic<size_t> next{0};
  auto refresh_one = [&](size_t i) {
    {
      const console::Target& t = targets[i];
      console::TargetStatus& s = out[i];
      s.target = t.name;
      s.since = console::NowMs();
      auto fail = [&](const Status& why) {
        s.state = console::ConnState::kError;
        s.error = ErrorText(why);
      };
      auto opts = ClientOptionsFor(t, options.call_deadline);
      if (!opts.ok()) return fail(opts.status());
      auto client = rpc::AgentClient::Connect(*opts);
      if (!client.ok()) return fail(client.status());
      // The first call also sets up the connection (TCP and TLS handshake). On a busy host a
      // handshake can outlast one deadline; the channel keeps its progress, so ask again on
      // the same channel for up to three deadlines.
      const auto give_up = std::chrono::steady_clock::now() + 3 * options.call_deadline;
      while (true) {
        auto me = (*client)->WhoAmI(options.call_deadline);
        if (me.ok() || me.status().code() != StatusCode::kUnavailable ||
            std::chrono::steady_clock::now() >= give_up) {
          break;
        }
        std::this_thread::sleep_for(milliseconds(100));
      }
      TargetSync sync;
      TargetIdentity who;
      Status synced = SyncFacts(**client, t.name, st, &sync, options.call_deadline, &who);
      if (!synced.ok()) return fail(synced);
      s.identity = who.identity;
      s.role = who.role;
      // One metrics snapshot (the watch sends one at once).
      std::mutex mu;
      Status ingest;
      bool got = false;
      rpc::AgentClient::Watch* self = nullptr;
      auto watch = (*client)->WatchMetrics(
          options.metrics_interval_ms, options.call_deadline, [&](const v1::MetricsSnapshot& m) {
            std::lock_guard lock(mu);
            if (got) return;
            got = true;
            ingest = IngestMetrics(m, t.name, st, &sync, options.metrics_interval_ms);
            if (self) self->Cancel();
          });
      {
        std::lock_guard lock(mu);
        self = watch.get();
        if (got) watch->Cancel();
      }
      Status ended = watch->Wait();
      std::lock_guard lock(mu);
      if (!got) {
        return fail(ended.ok() ? Status::DeadlineExceeded("no metrics snapshot") : ended);
      }
      if (!ingest.ok()) return fail(ingest);
      s.state = console::ConnState::kConnected;
      s.last_seen = console::NowMs();
    }
  };
  const size_t workers =
      std::min(targets.size(), static_cast<size_t>(std::max(1, options.max_concurrent_connects)));
  std::vector<std::thread> threads;
  threads.reserve(workers);
  for (size_t w = 0; w < workers; ++w) {
    threads.emplace_back([&] {
      for (size_t i = next++; i < targets.size(); i = next++) refresh_one(i);
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& s : out) (void)st.targets().SetStatus(s);
  return out;
}

// ---- continuous connectors ----

class TargetConnector {
 public:
  TargetConnector(console::Target target, console::ConsoleDatabase* st, ConnectorOptions o,
                  ConnectGate* gate, IngestWriter* writer)
      : target_(std::move(target)), store_(st), options_(o), gate_(gate), writer_(writer) {
    status_.target = target_.name;
    status_.since = console::NowMs();
  }
  ~TargetConnector() { Stop(); }

  void Start() {
    thread_ = std::thread([this] { Run(); });
  }
  void RequestStop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
  }
  void Stop() {
    RequestStop();
    Join();
  }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  const std::string& name() const { return target_.name; }
  console::TargetStatus status() {
    std::lock_guard lock(mu_);
    return status_;
  }

 private:
  void SetStatusLocked(console::ConnState state, std::string error, TimeMs since = 0) {
    const bool changed = state != status_.state || error != status_.error;
    if (changed) {
      status_.state = state;
      status_.error = std::move(error);
      status_.since = since ? since : console::NowMs();
    }
    (void)store_->targets().SetStatus(status_);
  }
  void SetStatus(console::ConnState state, std::string error) {
    std::lock_guard lock(mu_);
    SetStatusLocked(state, std::move(error));
  }
  // Sleeps d unless stopped; false when stopping.
  bool Sleep(milliseconds d) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, d, [&] { return stopping_; });
    return !stopping_;
  }

  bool stopping() {
    std::lock_guard lock(mu_);
    return stopping_;
  }

  // On gRPC's thread: the samples go to the batch writer; the status changes only when it
  // does (last_seen reaches the store with the batch).
  void OnMetrics(const v1::MetricsSnapshot& m) {
    IngestWriter::Item item;
    {
      std::lock_guard lock(sync_mu_);
      BuildSamples(m, target_.name, &sync_, options_.metrics_interval_ms, &item.gpu, &item.dep);
    }
    const TimeMs now = console::NowMs();
    item.target = target_.name;
    item.seen = now;
    item.received = std::chrono::steady_clock::now();
    item.done = [this](const Status& s) {
      if (!s.ok()) SetStatus(console::ConnState::kError, "store: " + s.message());
    };
    writer_->Add(std::move(item));
    std::lock_guard lock(mu_);
    status_.last_seen = now;
    if (status_.state != console::ConnState::kConnected || !status_.error.empty()) {
      SetStatusLocked(console::ConnState::kConnected, "");
    }
  }

  // Connection setup (the first calls of a session) under the fleet's connect gate.
  Status SyncFactsGated(rpc::AgentClient& client, TargetIdentity* who) {
    if (!gate_->Acquire([this] { return stopping(); })) return Status::Cancelled("stopping");
    Status s;
    {
      std::lock_guard lock(sync_mu_);
      s = SyncFacts(client, target_.name, *store_, &sync_, options_.call_deadline, who);
    }
    gate_->Release();
    return s;
  }

  void Run() {
    milliseconds backoff = options_.backoff_initial;
    auto failed = [&](const Status& s) {
      SetStatus(console::ConnState::kError, ErrorText(s));
      if (!Sleep(Jitter(backoff))) return false;
      backoff = std::min(backoff * 2, options_.backoff_max);
      return true;
    };
    // Connectors started together do not knock at once.
    if (!Sleep(Spread(milliseconds(200)))) return;
    // One channel for the connector's life: gRPC reconnects it with its own backoff, and a
    // handshake in progress is not thrown away by a new attempt.
    std::unique_ptr<rpc::AgentClient> channel;
    while (true) {
      {
        std::lock_guard lock(mu_);
        if (stopping_) return;
      }
      if (channel == nullptr) {
        auto opts = ClientOptionsFor(target_, options_.call_deadline);
        if (!opts.ok()) {
          if (!failed(opts.status())) return;
          continue;
        }
        auto connected = rpc::AgentClient::Connect(*opts);
        if (!connected.ok()) {
          if (!failed(connected.status())) return;
          continue;
        }
        channel = std::move(connected).value();
      }
      rpc::AgentClient* client = channel.get();
      TargetIdentity who;
      Status s = SyncFactsGated(*client, &who);
      if (stopping()) return;
      if (!s.ok()) {
        if (!failed(s)) return;
        continue;
      }
      backoff = options_.backoff_initial;
      {
        std::lock_guard lock(mu_);
        status_.identity = who.identity;
        status_.role = who.role;
        status_.last_seen = console::NowMs();
        stream_done_ = false;
        SetStatusLocked(console::ConnState::kConnected, "");
      }
      auto watch = client->WatchMetrics(
          options_.metrics_interval_ms, options_.stream_duration,
          [this](const v1::MetricsSnapshot& m) { OnMetrics(m); },
          [this](const Status& st) {
            std::lock_guard lock(mu_);
            stream_done_ = true;
            stream_status_ = st;
            cv_.notify_all();
          });
      Status failure = RunSession(*client);
      watch->Cancel();
      watch.reset();  // waits for on_done
      if (!failure.ok() && !failed(failure)) return;
    }
  }

  // Waits on the open stream, refreshing facts and watching for silence. Returns OK when the
  // stream ended normally (reopen at once) or the connector stops; the failure otherwise.
  Status RunSession(rpc::AgentClient& client) {
    // Refreshes spread out: targets connected together do not all come back together.
    auto next_refresh = std::chrono::steady_clock::now() + Jitter(options_.refresh_interval);
    const milliseconds tick = std::max(milliseconds(50), options_.stale_after / 4);
    while (true) {
      std::unique_lock lock(mu_);
      cv_.wait_until(lock, std::min(next_refresh, std::chrono::steady_clock::now() + tick),
                     [&] { return stopping_ || stream_done_; });
      if (stopping_) return Status();
      if (stream_done_) {
        const Status st = stream_status_;
        if (st.ok() || st.code() == StatusCode::kDeadlineExceeded) return Status();
        // The console cancels its stream only after this loop returns, so a cancelled stream
        // here was ended by the agent: a server shutting down cancels its open calls.
        if (st.code() == StatusCode::kCancelled) {
          return Status::Unavailable(
              "the agent ended the metrics stream (shutting down or restarting)");
        }
        return st;
      }
      const TimeMs now = console::NowMs();
      const int64_t quiet = now - status_.last_seen;
      if (status_.state == console::ConnState::kConnected && quiet > options_.stale_after.count()) {
        SetStatusLocked(console::ConnState::kStale,
                        "no report for " + std::to_string(quiet / 1000) + " s", status_.last_seen);
      }
      lock.unlock();
      if (std::chrono::steady_clock::now() >= next_refresh) {
        Status s;
        {
          std::lock_guard sl(sync_mu_);
          s = SyncFacts(client, target_.name, *store_, &sync_, options_.call_deadline, nullptr);
        }
        if (!s.ok()) return s;
        next_refresh = std::chrono::steady_clock::now() + Jitter(options_.refresh_interval);
      }
    }
  }

  const console::Target target_;
  console::ConsoleDatabase* const store_;
  const ConnectorOptions options_;
  ConnectGate* const gate_;
  IngestWriter* const writer_;
  std::thread thread_;

  std::mutex sync_mu_;
  TargetSync sync_;  // GUARDED_BY(sync_mu_)

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;         // GUARDED_BY(mu_)
  bool stream_done_ = false;      // GUARDED_BY(mu_)
  Status stream_status_;          // GUARDED_BY(mu_)
  console::TargetStatus status_;  // GUARDED_BY(mu_)
};

Result<AuditReadout> ReadAuditLog(const console::Target& target, const AuditReadOptions& options) {
  SEXTANT_ASSIGN_OR_RETURN(auto opts, ClientOptionsFor(target, options.call_deadline));
  SEXTANT_ASSIGN_OR_RETURN(auto client, rpc::AgentClient::Connect(opts));
  AuditReadout out;
  out.target = target.name;
  v1::ListAuditLogRequest req;
  req.set_page_size(options.page_size);
  req.set_identity(options.identity);
  req.set_rpc(options.rpc);
  if (options.recorded) req.set_anchor_seq(options.recorded->seq);
  v1::ListAuditLogResponse last;
  // Bounded: a page always advances after_seq, and a log cannot outgrow this many pages.
  for (int page = 0; page < 1000000; ++page) {
    SEXTANT_ASSIGN_OR_RETURN(last, client->ListAuditLog(req, options.call_deadline));
    for (const auto& r : last.records()) {
      audit::AuditRecord a;
      a.seq = r.seq();
      a.time = r.time();
      a.entry.identity = r.identity();
      a.entry.role = r.role();
      a.entry.rpc = r.rpc();
      a.entry.target = r.target();
      a.entry.outcome = r.outcome();
      a.entry.detail = r.detail();
      a.entry.intent_seq = r.intent_seq();
      a.detail_digest = r.detail_digest();
      a.detail_salt = r.detail_salt();
      a.prev_hash = r.prev_hash();
      a.hash = r.hash();
      if (out.canonical_mismatch.empty() && !r.canonical().empty() &&
          r.canonical() != a.Canonical()) {
        out.canonical_mismatch = "record " + std::to_string(a.seq) +
                                 ": the canonical form the agent sent differs from its fields";
      }
      out.records.push_back(std::move(a));
    }
    if (last.next_after_seq() <= req.after_seq()) break;
    req.set_after_seq(last.next_after_seq());
  }
  out.scope = last.scope();
  out.whole_chain = out.scope == "all" && options.identity.empty() && options.rpc.empty();
  audit::AuditChainVerifier verifier(out.whole_chain);
  for (const auto& r : out.records) {
    if (!verifier.Add(r)) break;
  }
  out.console = verifier.result();
  out.agent_verified = last.head().verified();
  out.agent_head_seq = last.head().seq();
  out.agent_head_hash = last.head().hash();
  out.agent_first_broken_seq = last.head().first_broken_seq();
  out.agent_broken_reason = last.head().broken_reason();
  bool head_ok = true;
  for (const auto& r : out.records) {
    if (r.seq == out.agent_head_seq && r.hash != out.agent_head_hash) head_ok = false;
  }

  // The agent's signature over its head.
  if (last.has_signed_head()) {
    out.has_signed_head = true;
    const auto& sh = last.signed_head();
    audit::AuditCheckpoint cp{sh.seq(), sh.hash(), sh.time(), sh.key_id(), sh.signature()};
    auto raw = FromHex(sh.public_key());
    auto key =
        raw.ok() ? report::VerifyingKey::FromRaw(*raw) : Result<report::VerifyingKey>(raw.status());
    if (!key.ok()) {
      out.signed_head_problem = "the agent's audit key is malformed: " + key.status().message();
    } else if (Status v = audit::VerifyCheckpoint(cp, *key); !v.ok()) {
      out.signed_head_problem = v.message();
    } else {
      out.signed_head_verifies = true;
    }
    for (const auto& r : out.records) {
      if (r.seq == cp.seq && r.hash != cp.hash) {
        out.signed_head_problem = "the signed head of seq " + std::to_string(cp.seq) +
                                  " differs from the record the agent sent";
        out.signed_head_verifies = false;
      }
    }
    out.next_head.target = target.name;
    out.next_head.seq = cp.seq;
    out.next_head.hash = cp.hash;
    out.next_head.signed_at = cp.time;
    out.next_head.key_id = cp.key_id;
    out.next_head.public_key = sh.public_key();
    out.next_head.signature = cp.signature;
    out.next_head.seen_at_ms = console::NowMs();
  } else {
    out.signed_head_problem = "the agent sent no signed head (an agent too old to sign it)";
  }
  // Does the log still extend what this console saw before?
  if (options.recorded) {
    const console::AuditHead& rec = *options.recorded;
    const std::string seen = "the head seen at " + FormatRfc3339(rec.seen_at_ms) + " (seq " +
                             std::to_string(rec.seq) + ", " + rec.hash.substr(0, 16) +
                             "..., signed " + rec.signed_at + ")";
    if (out.has_signed_head && out.next_head.key_id != rec.key_id) {
      out.recorded_problem = "the agent's audit key changed from " + rec.key_id.substr(0, 16) +
                             "... to " + out.next_head.key_id.substr(0, 16) + "... since " + seen +
                             ": its log can no longer be tied to it";
    } else if (!last.has_anchor() || last.anchor().seq() != rec.seq) {
      out.recorded_problem = "the agent did not say which hash its log has at seq " +
                             std::to_string(rec.seq) + " (" + seen + ")";
    } else if (!last.anchor().present()) {
      out.recorded_problem = "the log no longer extends " + seen + ": record " +
                             std::to_string(rec.seq) + " is gone (the log ends at seq " +
                             std::to_string(out.agent_head_seq) + "): it was cut back";
    } else if (last.anchor().hash() != rec.hash) {
      out.recorded_problem = "the log no longer extends " + seen + ": record " +
                             std::to_string(rec.seq) + " now hashes to " +
                             last.anchor().hash().substr(0, 16) +
                             "...: it was rewritten and re-chained";
    } else if (out.has_signed_head && out.next_head.seq < rec.seq) {
      out.recorded_problem = "the agent's signed head (seq " + std::to_string(out.next_head.seq) +
                             ") is behind " + seen;
    }
    out.extends_recorded = out.recorded_problem.empty();
  }
  out.intact = out.console.intact && out.agent_verified && head_ok &&
               out.canonical_mismatch.empty() && out.signed_head_verifies && out.extends_recorded;
  if (!out.console.intact) {
    out.verdict = "broken (found by the console): " + out.console.reason;
  } else if (!out.agent_verified) {
    out.verdict = "broken (reported by the agent): " + (out.agent_broken_reason.empty()
                                                            ? std::string("chain not verified")
                                                            : out.agent_broken_reason);
  } else if (!head_ok) {
    out.verdict = "broken: the agent's head hash differs from the record the console holds";
  } else if (!out.canonical_mismatch.empty()) {
    out.verdict = "broken: " + out.canonical_mismatch;
  } else if (!out.extends_recorded) {
    out.verdict = "broken: " + out.recorded_problem;
  } else if (!out.signed_head_verifies) {
    out.verdict = "broken: " + out.signed_head_problem;
  } else {
    out.verdict = "intact: " + std::to_string(out.records.size()) +
                  (out.whole_chain ? " records, the whole chain" : " records of a filtered view") +
                  " verified by the console; agent head seq " + std::to_string(out.agent_head_seq) +
                  " signed by its key " + out.next_head.key_id.substr(0, 16) +
                  (options.recorded ? "; extends the head seen at " +
                                          FormatRfc3339(options.recorded->seen_at_ms) + " (seq " +
                                          std::to_string(options.recorded->seq) + ")"
                                    : "; no head recorded before");
  }
  return out;
}

FleetConnector::FleetConnector(console::ConsoleDatabase* st, ConnectorOptions options)
    : store_(st),
      options_(options),
      gate_(std::make_unique<ConnectGate>(options.max_concurrent_connects)),
      writer_(std::make_unique<IngestWriter>(st, options.flush_interval, options.on_ingest)) {}

FleetConnector::~FleetConnector() { Stop(); }

void FleetConnector::Start(const std::vector<console::Target>& targets) {
  std::lock_guard lock(mu_);
  for (const auto& t : targets) {
    const bool running = std::any_of(connectors_.begin(), connectors_.end(),
                                     [&](const auto& c) { return c->name() == t.name; });
    if (running) continue;
    connectors_.push_back(
        std::make_unique<TargetConnector>(t, store_, options_, gate_.get(), writer_.get()));
    connectors_.back()->Start();
  }
}

void FleetConnector::Stop() {
  std::vector<std::unique_ptr<TargetConnector>> all;
  {
    std::lock_guard lock(mu_);
    all.swap(connectors_);
  }
  for (auto& c : all) c->RequestStop();  // all at once, so no target waits for another
  for (auto& c : all) c->Join();
  // What they sent last is in the store before they go (the writer calls back into them).
  writer_->Flush();
  all.clear();
}

std::vector<console::TargetStatus> FleetConnector::Statuses() {
  std::lock_guard lock(mu_);
  std::vector<console::TargetStatus> out;
  for (const auto& c : connectors_) out.push_back(c->status());
  return out;
}

}  // namespace sextant::rpc
