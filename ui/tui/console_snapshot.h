// ConsoleSnapshot: everything the terminal UI shows, read in one go from the console store —
// the fleet (targets, nodes, GPUs, deployments with their latest samples), the alerts derived
// from it (unreachable or stale targets, replicas not ready, budget breaches, failed compliance
// rules, certificates near expiry), each target's audit chain state, and the cost summary.
//
// The store is filled by the console's fleet connector; reading it never touches the wire, so a
// slow or dead agent cannot slow a snapshot down. SnapshotPoller loads snapshots on its own
// thread at a fixed interval and hands the UI the newest one; the UI thread never waits for it.
//
// Thread-safety: LoadSnapshot and ComputeAlerts are functions of their arguments (the store is
// itself thread-safe). SnapshotPoller's public methods may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "app/console/compliance/pack.h"
#include "app/console/cost/cost_model.h"
#include "app/console/cost/price_catalog.h"
#include "app/console/fleet/fleet.h"
#include "app/console/store/console_database.h"

namespace sextant::tui {

enum class AlertSeverity { kCritical = 0, kWarning = 1 };
std::string_view AlertSeverityName(AlertSeverity s);

struct Alert {
  AlertSeverity severity = AlertSeverity::kWarning;
  std::string kind;     // "unreachable", "stale", "replicas", "budget", "compliance", "certificate"
  std::string subject;  // a target, "target/deployment", a budget label
  std::string target;   // the target it concerns, when it concerns one (for drill-down)
  std::string message;  // what is wrong, in words
  console::TimeMs since = 0;  // when it started (0 when unknown)
  // Identity of the alert across snapshots: kind + subject (+ rule for compliance).
  std::string key;
};

// One target's audit log as its agent last reported it.
struct AuditState {
  std::string target;
  std::string chain;  // "intact", "BROKEN" or "unknown"
  int64_t records = -1;
  std::string head_hash;
  console::TimeMs verified_at = 0;  // when the agent last verified the chain
  std::string policy_digest;
  std::string payload_bytes_to_vendor;  // egress ledger, "" when unknown
};

struct CostSummary {
  bool available = false;
  std::string note;  // why it is not available, or unpriced targets
  console::CostReport by_deployment;
  console::CostReport by_target;
  std::vector<console::BudgetStatus> budgets;
};

struct ConsoleSnapshot {
  console::TimeMs loaded_at = 0;
  std::string identity;  // the console's identity as agents see it (URI SAN), or ""
  std::string role;      // its role on the agents, or ""
  console::FleetSnapshot fleet;
  std::vector<console::TargetView> targets;  // every target, sorted by name
  int targets_connected = 0;
  console::TimeMs last_update = 0;  // newest exchange with any agent (0: never)
  std::vector<Alert> alerts;        // critical first, then by kind (reachability first), since
  std::vector<AuditState> audit;
  CostSummary cost;
  std::vector<console::Fact> facts;  // every target's facts (for detail views)
  // Carried from snapshot to snapshot: failed compliance rules (recomputed by heavy loads) and
  // when each alert was first raised.
  std::vector<console::Finding> failed_findings;
  std::map<std::string, console::TimeMs> alert_first_seen;
  std::string error;  // a store read that failed, in words ("" when none)
};

// What a snapshot is computed from. catalog and packs may be null (cost or compliance is then
// left out, and the snapshot says why).
struct SnapshotSources {
  console::ConsoleDatabase* store = nullptr;
  const console::PriceCatalog* catalog = nullptr;
  std::string catalog_error;  // why catalog is null
  const std::vector<console::PolicyPack>* packs = nullptr;
  int64_t stale_after_ms = 30000;
  int64_t cert_warn_ms = 14LL * 86'400'000;  // certificates expiring sooner raise an alert
  int64_t cost_window_ms = 7LL * 86'400'000;
};

// Reads the store. With `heavy` false, the cost summary and compliance evaluation are not
// recomputed (the caller carries them over from the previous snapshot).
ConsoleSnapshot LoadSnapshot(const SnapshotSources& sources, console::TimeMs now, bool heavy,
                             const ConsoleSnapshot* previous);

// Alerts of a snapshot's fleet, audit and cost parts, plus compliance failures. `first_seen`
// keeps the time each alert key was first raised, for alerts whose start the store does not
// record (replicas, compliance); it is updated in place and pruned of alerts that cleared.
std::vector<Alert> ComputeAlerts(const ConsoleSnapshot& snap,
                                 const std::vector<console::Finding>& failed_findings,
                                 int64_t cert_warn_ms, console::TimeMs now,
                                 std::map<std::string, console::TimeMs>* first_seen);

// Loads snapshots on a thread of its own every `interval`, keeps the newest. A load that is
// still running when the next is due is not doubled; readers get a shared, immutable copy.
class SnapshotPoller {
 public:
  using Loader = std::function<ConsoleSnapshot(bool heavy, const ConsoleSnapshot* previous)>;
  // Every `heavy_every`-th load (and the first) is heavy.
  SnapshotPoller(Loader loader, std::chrono::milliseconds interval, int heavy_every = 10);
  ~SnapshotPoller();  // stops and joins
  SnapshotPoller(const SnapshotPoller&) = delete;
  SnapshotPoller& operator=(const SnapshotPoller&) = delete;

  // The newest snapshot, or null before the first load finished. Never blocks on a load.
  std::shared_ptr<const ConsoleSnapshot> Latest();
  // Increases on every finished load.
  uint64_t generation() const { return generation_.load(); }
  // Asks for a load now (e.g. after an action).
  void Poke();
  void Stop();

 private:
  void Run();

  Loader loader_;
  std::chrono::milliseconds interval_;
  int heavy_every_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<const ConsoleSnapshot> latest_;  // GUARDED_BY(mu_)
  bool stop_ = false;                              // GUARDED_BY(mu_)
  bool poked_ = false;                             // GUARDED_BY(mu_)
  std::atomic<uint64_t> generation_{0};
  std::thread thread_;
};

}  // namespace sextant::tui
