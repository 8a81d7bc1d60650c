// The fleet as the console sees it: accounts → targets → nodes → GPUs → deployments, read from
// the console store, with each target's connection state (connected, stale since T, or the
// error in words) and summaries grouped by account, target, region or GPU model.
//
// A target whose last successful exchange is older than `stale_after` shows as stale since
// that time even when its stored state says connected (the process that kept it connected may
// be gone). Devices of kind "cpu" are nodes' CPUs, not GPUs: they are left out of GPU counts.
//
// Thread-safety: LoadFleet reads the store (itself thread-safe); the rest are pure functions.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "app/console/store/console_database.h"

namespace sextant::console {

struct NodeView {
  std::string name;
  std::vector<console::Gpu> gpus;  // GPUs only (no CPU devices)
};

struct TargetView {
  console::Target target;
  console::TargetStatus status;  // effective: stale applied
  std::string account;           // the target's account, or its reported cloud account
  std::string provider;
  std::string region;
  std::string instance_type;
  std::vector<NodeView> nodes;
  std::vector<console::Deployment> deployments;

  // "connected", "stale since 2026-01-01T00:00:00Z", "error: ...", "never connected".
  std::string StatusText() const;
};

struct AccountView {
  std::string name;  // "(none)" for targets without an account
  std::string provider;
  std::vector<TargetView> targets;
};

struct FleetSnapshot {
  console::TimeMs now = 0;
  std::vector<AccountView> accounts;  // sorted by name; targets sorted by name
};

Result<FleetSnapshot> LoadFleet(console::ConsoleDatabase& store, console::TimeMs now,
                                int64_t stale_after_ms);

enum class FleetGroupBy { kAccount, kTarget, kRegion, kGpu };
Result<FleetGroupBy> ParseFleetGroupBy(std::string_view s);

struct FleetRow {
  std::string key;
  int targets = 0;
  int connected = 0;
  int stale = 0;
  int unreachable = 0;  // error or never connected
  int nodes = 0;
  int gpus = 0;
  double utilization = 0;  // mean over GPUs, 0..1
  int64_t memory_used_bytes = 0;
  int64_t memory_total_bytes = 0;
  int deployments = 0;
  int replicas_ready = 0;
  int replicas_desired = 0;
  double ttft_p50_ms = 0;  // worst (highest) over deployments
  double ttft_p99_ms = 0;
  double itl_p50_ms = 0;  // inter-token latency: worst (highest) over deployments
  double itl_p99_ms = 0;
  double kv_cache_use = 0;  // highest over deployments, 0..1
  double tokens_per_s = 0;  // sum
  int64_t queue_depth = 0;  // sum
  std::string status;       // by target: its StatusText(); otherwise a count summary
};

// Rows sorted by key, and the totals over the whole fleet (key "total").
std::vector<FleetRow> Summarize(const FleetSnapshot& fleet, FleetGroupBy by);
FleetRow Totals(const FleetSnapshot& fleet);

}  // namespace sextant::console
