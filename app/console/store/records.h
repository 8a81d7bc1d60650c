// The console database's records: the plain values its repositories read and write
// (app/console/store/console_database.h). No SQL and no behaviour here.
//
// Thread-safety: values; distinct objects may be used from different threads freely.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/base/time.h"

namespace sextant::console {

// Milliseconds since the Unix epoch (engine/base/time.h); every time in the store is one.
using sextant::NowMs;
using sextant::TimeMs;

struct Account {
  std::string name;        // the console's name for it, unique
  std::string provider;    // aws, gcp, azure, lambda, coreweave, on-prem
  std::string account_id;  // the provider's account / project / subscription id
  std::vector<std::string> regions;
  std::string role_ref;     // the vendor role the customer created (ARN, service account ...)
  std::string external_id;  // the external id recorded with that role
  TimeMs created_at = 0;
};

struct Target {
  std::string name;         // unique
  std::string endpoint;     // host:port of the agent's gRPC listener
  std::string account;      // an Account name, or empty
  std::string ca_path;      // CA that signed the agent's server certificate
  std::string cert_path;    // the console's client certificate
  std::string key_path;     // and its private key
  std::string server_name;  // TLS name to verify when it differs from the endpoint's host
  std::map<std::string, std::string> labels;  // team=..., env=...
  TimeMs created_at = 0;
};

enum class ConnState { kUnknown = 0, kConnected = 1, kStale = 2, kError = 3 };
std::string_view ConnStateName(ConnState s);

struct TargetStatus {
  std::string target;
  ConnState state = ConnState::kUnknown;
  TimeMs since = 0;      // when the state was entered
  TimeMs last_seen = 0;  // last successful exchange with the agent, 0 if never
  std::string error;     // the cause in words when state is kError (or why it went stale)
  std::string identity;  // the identity and role the agent reported for the console
  std::string role;
};

// One fact an agent reported (cloud context, TLS settings, audit chain ...). Keys are named in
// app/common/fact_keys.h, dotted:
// "cloud.region", "tls.min_version", "deployment.<name>.model_sha256".
struct Fact {
  std::string target;
  std::string key;
  std::string value;
  TimeMs observed_at = 0;
};

struct Gpu {
  std::string target;
  std::string node;
  int index = 0;
  std::string kind;   // "cuda", "rocm", "cpu"
  std::string model;  // e.g. "H100"
  int64_t memory_total_bytes = 0;
  // Latest sample (0 when none yet).
  TimeMs sampled_at = 0;
  double utilization = 0;  // 0..1
  int64_t memory_used_bytes = 0;
  double temperature_c = 0;
  double power_w = 0;
};

struct Deployment {
  std::string target;
  std::string name;
  std::string model_sha256;
  std::string engine_build_id;
  std::string spec_digest;
  double gpus_requested = 0;
  std::map<std::string, std::string> labels;
  // Latest sample (zeros when none yet).
  TimeMs sampled_at = 0;
  int replicas_ready = 0;
  int replicas_desired = 0;
  double ttft_p50_ms = 0;
  double ttft_p99_ms = 0;
  double tokens_per_s = 0;
  int64_t queue_depth = 0;
  int64_t prompt_tokens_total = 0;
  int64_t generated_tokens_total = 0;
  // Last: positional initializers of the fields above stay valid.
  double itl_p50_ms = 0;  // inter-token latency (time between output tokens)
  double itl_p99_ms = 0;
  double kv_cache_use = 0;  // 0..1
};

// A GPU sample covers `period_s` seconds ending at `ts`.
struct GpuSample {
  std::string target;
  std::string node;
  int index = 0;
  TimeMs ts = 0;
  double period_s = 1;
  double utilization = 0;
  int64_t memory_used_bytes = 0;
  double temperature_c = 0;
  double power_w = 0;
};

// A deployment sample covers `period_s` seconds ending at `ts`. Token counters are the agent's
// cumulative counters; the store keeps the increase since the previous sample (a counter that
// goes down was reset, and its new value is the increase; the first sample adds nothing).
struct DeploymentSample {
  std::string target;
  std::string deployment;
  TimeMs ts = 0;
  double period_s = 1;
  double gpus_requested = 0;
  double gpus_used = 0;  // GPUs' worth of actual use (sum of utilization of its GPUs)
  int replicas_ready = 0;
  int replicas_desired = 0;
  double ttft_p50_ms = 0;
  double ttft_p99_ms = 0;
  double tokens_per_s = 0;
  int64_t queue_depth = 0;
  int64_t prompt_tokens_total = 0;
  int64_t generated_tokens_total = 0;
  // Last: positional initializers of the fields above stay valid.
  double itl_p50_ms = 0;  // inter-token latency over the period (the last figures when idle)
  double itl_p99_ms = 0;
  double kv_cache_use = 0;  // 0..1
};

// Usage of one target (or one deployment on it) in one hour, from the hourly rollup.
struct HourUsage {
  std::string target;
  std::string deployment;              // empty for the target's provisioned GPUs
  TimeMs hour = 0;                     // start of the hour
  double gpu_seconds_provisioned = 0;  // target rows: sum over GPUs of covered seconds
  double gpu_seconds_requested = 0;    // deployment rows
  double gpu_seconds_used = 0;         // deployment rows
  int64_t tokens_generated = 0;        // deployment rows
  int64_t tokens_prompt = 0;           // deployment rows
};

// What the ingest path writes in one transaction: samples of any number of targets, and when
// each target was last heard from.
struct IngestBatch {
  std::vector<GpuSample> gpu;
  std::vector<DeploymentSample> dep;
  std::vector<std::pair<std::string, TimeMs>> last_seen;  // target, time (only ever raised)
};

struct Budget {
  std::string label;  // "team=ml"
  double amount_usd = 0;
  int window_days = 30;     // the budget covers the last window_days days
  double warn_ratio = 0.8;  // warning at this share of the amount
};

struct RetentionOptions {
  std::chrono::seconds raw_window{3600};
  std::chrono::seconds minute_window{30 * 24 * 3600};
  std::chrono::seconds hour_window{400 * 24 * 3600};
  // Ingest runs retention (rollup + delete) at most this often.
  std::chrono::seconds interval{30};
};

struct DatabaseOptions {
  RetentionOptions retention;
};

}  // namespace sextant::console
