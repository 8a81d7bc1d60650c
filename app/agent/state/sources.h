// What the agent reports about itself, behind small interfaces so the gRPC service does not
// depend on how the facts are gathered. Implementations: GPU discovery (NVML / ROCm SMI) and
// instance metadata in connectors/, the CPU fallback in cpu_inventory.h, and the replica manager
// for deployment status and metrics.
//
// Plain structs: they mirror the messages of connectors/proto/sextant/v1/agent.proto (Device,
// Inventory, CloudContext, DeploymentStatus, DeploymentMetrics) field for field; keep them in
// step when either changes.
//
// Thread-safety: every interface method may be called from several gRPC threads at once;
// implementations must be thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/base/status.h"

namespace sextant::agent {

struct DeviceInfo {
  std::string id;    // "gpu0", "cpu"
  std::string kind;  // "cuda", "rocm", "cpu"
  std::string model;
  std::string uuid;
  int64_t memory_total_bytes = 0;
  int64_t memory_used_bytes = 0;
  double utilization = -1;  // 0..1, -1 unknown
  double temperature_c = -1;
  double power_w = -1;
  int32_t cores = 0;
  std::string driver;
};

struct InventoryInfo {
  std::string node;
  std::vector<DeviceInfo> devices;
  std::string source;  // "nvml", "rocm-smi", "cpu", "nvml+cpu"
  int64_t observed_at_unix_ms = 0;
};

class InventorySource {
 public:
  virtual ~InventorySource() = default;
  // A fresh snapshot. Never fails: a missing GPU library means fewer devices, not an error.
  virtual InventoryInfo Snapshot() = 0;
};

struct CloudContextInfo {
  std::string provider = "on-prem";  // "aws", "gcp", "azure", "on-prem"
  std::string account;
  std::string region;
  std::string zone;
  std::string instance_type;
  // The provider's id of the machine (AWS instance id, GCP instance id, Azure vmId), so the
  // console can match the agent with the account's instances; empty when unknown.
  std::string instance_id;
  bool spot = false;
  std::string source = "default";  // "config", "imds", "default"
};

class CloudContextSource {
 public:
  virtual ~CloudContextSource() = default;
  // The cloud context; cheap (implementations resolve once and cache).
  virtual CloudContextInfo Context() = 0;
};

enum class DeploymentPhase {
  kUnspecified = 0,
  kPending = 1,
  kLoading = 2,
  kReady = 3,
  kFailed = 4
};

struct DeploymentStatusInfo {
  DeploymentPhase phase = DeploymentPhase::kPending;
  std::string reason;
  int64_t observed_generation = 0;
  int32_t replicas_desired = 0;
  int32_t replicas_ready = 0;
  std::string backend;
};

struct HistogramInfo {
  std::vector<double> upper_bounds;  // increasing; +Inf implied
  std::vector<int64_t> counts;       // cumulative, upper_bounds.size() + 1 entries
  double sum = 0;
  int64_t count = 0;
};

struct DeploymentMetricsInfo {
  std::string name;
  int64_t requests_total = 0;
  int64_t prompt_tokens_total = 0;
  int64_t generated_tokens_total = 0;
  int32_t queue_depth = 0;
  double kv_cache_use = 0;
  double tokens_per_second = 0;
  HistogramInfo ttft_seconds;
  HistogramInfo inter_token_seconds;
  int32_t replicas_ready = 0;
  int64_t rejected_total = 0;
  int32_t replicas_desired = 0;
  int32_t replicas_pending = 0;
  std::string pending_reason;
  int64_t in_flight = 0;
};

// A scaling decision of the agent's autoscaler.
struct ScalingEventInfo {
  std::string deployment;
  int32_t from_replicas = 0;
  int32_t to_replicas = 0;
  std::string reason;
  int64_t at_unix_ms = 0;
  double queue_depth = 0;
  double in_flight = 0;
};

// What the replica manager observes of deployments. Figures only: nothing here may carry a
// prompt or an output.
class DeploymentObserver {
 public:
  virtual ~DeploymentObserver() = default;
  // nullopt when the deployment is unknown to the replica manager (not started yet).
  virtual std::optional<DeploymentStatusInfo> StatusOf(const std::string& name) = 0;
  virtual std::vector<DeploymentMetricsInfo> Metrics() = 0;
  // Scaling decisions taken strictly after after_unix_ms, oldest first.
  virtual std::vector<ScalingEventInfo> ScalingEventsSince(int64_t after_unix_ms) {
    (void)after_unix_ms;
    return {};
  }
};

}  // namespace sextant::agent

namespace sextant::agent {

struct DeploymentRecord;  // desired_state.h

struct ValidationPromptResult {
  int32_t index = 0;
  std::string prompt_digest;         // sha256 of the prompt token ids
  std::string output_tokens_digest;  // sha256 of the greedy output token ids
  int32_t prompt_tokens = 0;
  int32_t generated_tokens = 0;
  double ttft_ms = 0;
  double decode_tokens_per_second = 0;
  bool stopped_at_eos = false;
  double inter_token_ms = 0;
};

struct ValidationRunResult {
  std::string model_sha256;  // of the agent's own copy
  std::string engine_build_id;
  std::string backend;
  std::vector<ValidationPromptResult> prompts;
  int64_t peak_memory_bytes = 0;
  std::string output_digest;  // report::CombineOutputDigests over the prompts
  std::string device;
  int32_t threads = 0;
};

// Runs a deployment's validation prompts on the agent's own model copy. Returns digests and
// figures only. `cancelled` is polled between tokens; when it returns true the run stops with
// CANCELLED.
class ValidationRunner {
 public:
  virtual ~ValidationRunner() = default;
  virtual Result<ValidationRunResult> Run(const DeploymentRecord& deployment,
                                          const std::function<bool()>& cancelled) = 0;
};

}  // namespace sextant::agent
