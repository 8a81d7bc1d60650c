#include "tests/bench/loadgen/synthetic_sources.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace sextant::loadgen {
namespace {

constexpr int64_t kGiB = 1024LL * 1024 * 1024;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A smooth wave in [lo, hi] that moves every interval.
double Wave(int64_t tick, double phase, double lo, double hi) {
  const double s = 0.5 + 0.5 * std::sin(static_cast<double>(tick) * 0.37 + phase);
  return lo + (hi - lo) * s;
}

}  // namespace

SyntheticProfile ProfileFor(int index, int gpus) {
  static const SyntheticProfile kProfiles[] = {
      {"aws", "111111111111", "eu-west-1", "eu-west-1a", "p5.48xlarge", "cuda",
       "NVIDIA H100 80GB HBM3", 80 * kGiB, 8},
      {"gcp", "sextant-load-gcp", "us-central1", "us-central1-a", "a3-ultragpu-8g", "cuda",
       "NVIDIA H200", 141 * kGiB, 8},
      {"azure", "00000000-0000-0000-0000-000000000001", "eastus", "eastus-1",
       "Standard_ND96isr_MI300X_v5", "rocm", "AMD Instinct MI300X", 192 * kGiB, 8},
      {"aws", "111111111111", "us-east-1", "us-east-1b", "p4d.24xlarge", "cuda",
       "NVIDIA A100-SXM4-40GB", 40 * kGiB, 8},
      {"gcp", "sextant-load-gcp", "europe-west4", "europe-west4-a", "g2-standard-48", "cuda",
       "NVIDIA L4", 24 * kGiB, 4},
      {"coreweave", "load-org", "US-EAST-04", "US-EAST-04A", "gd-8xh100ib-i128", "cuda",
       "NVIDIA H100 80GB HBM3", 80 * kGiB, 8},
  };
  constexpr int kCount = static_cast<int>(sizeof(kProfiles) / sizeof(kProfiles[0]));
  SyntheticProfile p = kProfiles[index % kCount];
  if (gpus > 0) p.gpus = gpus;
  return p;
}

SyntheticInventory::SyntheticInventory(int agent_index, SyntheticProfile profile,
                                       int64_t interval_ms)
    : agent_index_(agent_index),
      profile_(std::move(profile)),
      interval_ms_(std::max<int64_t>(1, interval_ms)) {}

agent::InventoryInfo SyntheticInventory::Snapshot() {
  const int64_t now = NowMs();
  const int64_t tick = now / interval_ms_;
  agent::InventoryInfo inv;
  inv.node = "load-node-" + std::to_string(agent_index_);
  inv.source = "synthetic";
  inv.observed_at_unix_ms = now;
  for (int g = 0; g < profile_.gpus; ++g) {
    const double phase = agent_index_ * 0.7 + g * 1.3;
    agent::DeviceInfo d;
    d.id = "gpu" + std::to_string(g);
    d.kind = profile_.gpu_kind;
    d.model = profile_.gpu_model;
    d.uuid = "SYNTHETIC-" + std::to_string(agent_index_) + "-" + std::to_string(g);
    d.memory_total_bytes = profile_.gpu_memory_bytes;
    d.utilization = Wave(tick, phase, 0.05, 0.98);
    d.memory_used_bytes =
        static_cast<int64_t>(Wave(tick, phase + 0.5, 0.3, 0.9) * profile_.gpu_memory_bytes);
    d.temperature_c = Wave(tick, phase + 1.0, 38, 82);
    d.power_w = Wave(tick, phase + 1.5, 90, 690);
    d.driver = "synthetic";
    inv.devices.push_back(std::move(d));
  }
  return inv;
}

agent::CloudContextInfo SyntheticCloud::Context() {
  agent::CloudContextInfo c;
  c.provider = profile_.provider;
  c.account = profile_.account;
  c.region = profile_.region;
  c.zone = profile_.zone;
  c.instance_type = profile_.instance_type;
  c.spot = false;
  c.source = "config";
  return c;
}

SyntheticDeployments::SyntheticDeployments(int agent_index, std::string deployment,
                                           int64_t interval_ms)
    : agent_index_(agent_index),
      deployment_(std::move(deployment)),
      interval_ms_(std::max<int64_t>(1, interval_ms)) {
  last_.name = deployment_;
  last_.ttft_seconds.upper_bounds = {0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
  last_.ttft_seconds.counts.assign(last_.ttft_seconds.upper_bounds.size() + 1, 0);
  last_.inter_token_seconds.upper_bounds = {0.005, 0.01, 0.025, 0.05, 0.1};
  last_.inter_token_seconds.counts.assign(last_.inter_token_seconds.upper_bounds.size() + 1, 0);
}

void SyntheticDeployments::AdvanceLocked(int64_t tick) {
  if (tick_ < 0) tick_ = tick - 1;
  // At most one minute of catch-up: a paused process does not replay hours of intervals.
  tick_ = std::max(tick_, tick - 60);
  const double seconds = static_cast<double>(interval_ms_) / 1000.0;
  auto& m = last_;
  while (tick_ < tick) {
    ++tick_;
    const double phase = agent_index_ * 0.9;
    m.tokens_per_second = Wave(tick_, phase, 40, 2400);
    const auto generated = static_cast<int64_t>(m.tokens_per_second * seconds);
    const int64_t requests = std::max<int64_t>(1, generated / 180);
    m.generated_tokens_total += generated;
    m.prompt_tokens_total += requests * 350;
    m.requests_total += requests;
    m.queue_depth = static_cast<int32_t>(Wave(tick_, phase + 2, 0, 24));
    m.in_flight = m.queue_depth + 4;
    m.kv_cache_use = Wave(tick_, phase + 1, 0.1, 0.95);
    // This interval's requests land around a TTFT that moves with the load.
    const double ttft = Wave(tick_, phase + 0.3, 0.03, 0.8);
    auto& h = m.ttft_seconds;
    for (int64_t r = 0; r < requests; ++r) {
      const double v = ttft * (0.6 + 0.8 * static_cast<double>(r % 5) / 4.0);
      size_t b = 0;
      while (b < h.upper_bounds.size() && v > h.upper_bounds[b]) ++b;
      for (size_t i = b; i < h.counts.size(); ++i) ++h.counts[i];  // cumulative
      h.sum += v;
      ++h.count;
    }
    auto& it = m.inter_token_seconds;
    for (size_t i = 2; i < it.counts.size(); ++i) it.counts[i] += generated;
    it.sum += 0.02 * static_cast<double>(generated);
    it.count += generated;
    m.replicas_desired = 2;
    m.replicas_ready = (tick_ + agent_index_) % 10 == 0 ? 1 : 2;
    m.replicas_pending = m.replicas_desired - m.replicas_ready;
    m.pending_reason = m.replicas_pending > 0 ? "loading" : "";
  }
}

std::optional<agent::DeploymentStatusInfo> SyntheticDeployments::StatusOf(const std::string& name) {
  if (name != deployment_) return std::nullopt;
  std::lock_guard lock(mu_);
  AdvanceLocked(NowMs() / interval_ms_);
  agent::DeploymentStatusInfo s;
  s.phase = agent::DeploymentPhase::kReady;
  s.observed_generation = 1;
  s.replicas_desired = last_.replicas_desired;
  s.replicas_ready = last_.replicas_ready;
  s.backend = "synthetic";
  return s;
}

std::vector<agent::DeploymentMetricsInfo> SyntheticDeployments::Metrics() {
  std::lock_guard lock(mu_);
  AdvanceLocked(NowMs() / interval_ms_);
  return {last_};
}

}  // namespace sextant::loadgen
