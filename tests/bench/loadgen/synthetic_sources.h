// Synthetic sources for load generation: an inventory of GPUs and deployment metrics that
// change every interval, for `sextant-loadgen` and the fleet connector benchmark. They stand in
// for GPU discovery and the replica manager so that many agents fit in one process; nothing in
// the product uses them, and their figures describe no real device or deployment.
//
// The figures are a pure function of (agent index, GPU index, interval number), except the
// cumulative counters (tokens, requests, TTFT histogram), which only grow.
//
// Thread-safety: every method may be called from several gRPC threads at once.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "app/agent/state/sources.h"

namespace sextant::loadgen {

// What one synthetic agent looks like: where it runs and what GPUs it has.
struct SyntheticProfile {
  std::string provider, account, region, zone, instance_type;
  std::string gpu_kind;  // "cuda" or "rocm"
  std::string gpu_model;
  int64_t gpu_memory_bytes = 0;
  int gpus = 8;
};

// The profile of agent `index`: cycles through H100/H200/MI300X/A100/L4 machines on AWS, GCP,
// Azure and a GPU cloud. gpus > 0 overrides the profile's GPU count.
SyntheticProfile ProfileFor(int index, int gpus);

class SyntheticInventory : public agent::InventorySource {
 public:
  SyntheticInventory(int agent_index, SyntheticProfile profile, int64_t interval_ms);
  agent::InventoryInfo Snapshot() override;

 private:
  const int agent_index_;
  const SyntheticProfile profile_;
  const int64_t interval_ms_;
};

class SyntheticCloud : public agent::CloudContextSource {
 public:
  explicit SyntheticCloud(SyntheticProfile profile) : profile_(std::move(profile)) {}
  agent::CloudContextInfo Context() override;

 private:
  const SyntheticProfile profile_;
};

// One deployment per agent, named `deployment`, always Ready.
class SyntheticDeployments : public agent::DeploymentObserver {
 public:
  SyntheticDeployments(int agent_index, std::string deployment, int64_t interval_ms);
  std::optional<agent::DeploymentStatusInfo> StatusOf(const std::string& name) override;
  std::vector<agent::DeploymentMetricsInfo> Metrics() override;

 private:
  // Brings the counters up to the current interval.
  void AdvanceLocked(int64_t tick);

  const int agent_index_;
  const std::string deployment_;
  const int64_t interval_ms_;
  std::mutex mu_;
  int64_t tick_ = -1;                  // GUARDED_BY(mu_)
  agent::DeploymentMetricsInfo last_;  // GUARDED_BY(mu_)
};

}  // namespace sextant::loadgen
