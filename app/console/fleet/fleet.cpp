#include "app/console/fleet/fleet.h"

#include <algorithm>
#include <ctime>
#include <set>

#include "app/common/fact_keys.h"
#include "engine/base/time.h"

namespace sextant::console {

std::string TargetView::StatusText() const {
  switch (status.state) {
    case console::ConnState::kConnected:
      return "connected";
    case console::ConnState::kStale:
      return "stale since " + FormatRfc3339(status.since);
    case console::ConnState::kError:
      return "error: " + status.error;
    case console::ConnState::kUnknown:
      break;
  }
  return "never connected";
}

Result<FleetSnapshot> LoadFleet(console::ConsoleDatabase& st, console::TimeMs now,
                                int64_t stale_after_ms) {
  SEXTANT_ASSIGN_OR_RETURN(auto accounts, st.accounts().List());
  SEXTANT_ASSIGN_OR_RETURN(auto targets, st.targets().List());
  SEXTANT_ASSIGN_OR_RETURN(auto statuses, st.targets().ListStatus());
  SEXTANT_ASSIGN_OR_RETURN(auto facts, st.facts().List());
  SEXTANT_ASSIGN_OR_RETURN(auto gpus, st.telemetry().ListGpus());
  SEXTANT_ASSIGN_OR_RETURN(auto deployments, st.telemetry().ListDeployments());

  std::map<std::string, console::TargetStatus> status_of;
  for (auto& s : statuses) status_of[s.target] = s;
  std::map<std::string, std::map<std::string, std::string, std::less<>>> facts_of;
  for (auto& f : facts) facts_of[f.target][f.key] = f.value;

  std::map<std::string, std::vector<const console::Gpu*>> gpus_of;
  for (const auto& g : gpus) gpus_of[g.target].push_back(&g);
  std::map<std::string, std::vector<const console::Deployment*>> deployments_of;
  for (const auto& d : deployments) deployments_of[d.target].push_back(&d);

  std::map<std::string, AccountView> by_account;
  for (const auto& a : accounts) by_account[a.name] = {a.name, a.provider, {}};
  for (const auto& t : targets) {
    TargetView v;
    v.target = t;
    auto it = status_of.find(t.name);
    if (it != status_of.end()) v.status = it->second;
    v.status.target = t.name;
    if (v.status.state == console::ConnState::kConnected &&
        now - v.status.last_seen > stale_after_ms) {
      v.status.state = console::ConnState::kStale;
      v.status.since = v.status.last_seen;
      v.status.error = "no report for " + std::to_string((now - v.status.last_seen) / 1000) + " s";
    }
    const auto& f = facts_of[t.name];
    auto fact = [&](std::string_view k) {
      auto i = f.find(k);
      return i == f.end() ? std::string() : i->second;
    };
    v.provider = fact(facts::kCloudProvider);
    v.region = fact(facts::kCloudRegion);
    v.instance_type = fact(facts::kCloudInstanceType);
    v.account = !t.account.empty() ? t.account : fact(facts::kCloudAccount);
    std::map<std::string, NodeView> nodes;
    for (const console::Gpu* g : gpus_of[t.name]) {
      NodeView& n = nodes[g->node];
      n.name = g->node;
      if (g->kind != "cpu") n.gpus.push_back(*g);
    }
    for (auto& [name, n] : nodes) v.nodes.push_back(std::move(n));
    for (const console::Deployment* d : deployments_of[t.name]) v.deployments.push_back(*d);
    const std::string acct = v.account.empty() ? "(none)" : v.account;
    AccountView& av = by_account[acct];
    av.name = acct;
    if (av.provider.empty()) av.provider = v.provider;
    av.targets.push_back(std::move(v));
  }
  FleetSnapshot snap;
  snap.now = now;
  for (auto& [name, a] : by_account) snap.accounts.push_back(std::move(a));
  return snap;
}

Result<FleetGroupBy> ParseFleetGroupBy(std::string_view s) {
  if (s == "account") return FleetGroupBy::kAccount;
  if (s == "target") return FleetGroupBy::kTarget;
  if (s == "region") return FleetGroupBy::kRegion;
  if (s == "gpu") return FleetGroupBy::kGpu;
  return Status::InvalidArgument("cannot group the fleet by '" + std::string(s) +
                                 "' (account, target, region or gpu)");
}

namespace {

struct Acc {
  FleetRow row;
  double util_sum = 0;
  std::set<std::string> targets;
  std::set<std::string> nodes;
};

void AddTarget(Acc& a, const TargetView& t) {
  if (!a.targets.insert(t.target.name).second) return;
  a.row.targets++;
  switch (t.status.state) {
    case console::ConnState::kConnected:
      a.row.connected++;
      break;
    case console::ConnState::kStale:
      a.row.stale++;
      break;
    default:
      a.row.unreachable++;
  }
}

void AddGpu(Acc& a, const std::string& target, const std::string& node, const console::Gpu& g) {
  if (a.nodes.insert(target + "/" + node).second) a.row.nodes++;
  a.row.gpus++;
  a.util_sum += g.utilization;
  a.row.memory_used_bytes += g.memory_used_bytes;
  a.row.memory_total_bytes += g.memory_total_bytes;
}

void AddDeployment(Acc& a, const console::Deployment& d) {
  a.row.deployments++;
  a.row.replicas_ready += d.replicas_ready;
  a.row.replicas_desired += d.replicas_desired;
  a.row.ttft_p50_ms = std::max(a.row.ttft_p50_ms, d.ttft_p50_ms);
  a.row.ttft_p99_ms = std::max(a.row.ttft_p99_ms, d.ttft_p99_ms);
  a.row.itl_p50_ms = std::max(a.row.itl_p50_ms, d.itl_p50_ms);
  a.row.itl_p99_ms = std::max(a.row.itl_p99_ms, d.itl_p99_ms);
  a.row.kv_cache_use = std::max(a.row.kv_cache_use, d.kv_cache_use);
  a.row.tokens_per_s += d.tokens_per_s;
  a.row.queue_depth += d.queue_depth;
}

FleetRow Finish(Acc& a) {
  a.row.utilization = a.row.gpus ? a.util_sum / a.row.gpus : 0;
  if (a.row.status.empty()) {
    a.row.status = std::to_string(a.row.connected) + " connected";
    if (a.row.stale) a.row.status += ", " + std::to_string(a.row.stale) + " stale";
    if (a.row.unreachable)
      a.row.status += ", " + std::to_string(a.row.unreachable) + " unreachable";
  }
  return a.row;
}

void AddWhole(Acc& a, const TargetView& t) {
  AddTarget(a, t);
  for (const auto& n : t.nodes) {
    for (const auto& g : n.gpus) AddGpu(a, t.target.name, n.name, g);
  }
  for (const auto& d : t.deployments) AddDeployment(a, d);
}

}  // namespace

std::vector<FleetRow> Summarize(const FleetSnapshot& fleet, FleetGroupBy by) {
  std::map<std::string, Acc> groups;
  for (const auto& acct : fleet.accounts) {
    for (const auto& t : acct.targets) {
      switch (by) {
        case FleetGroupBy::kAccount:
          AddWhole(groups[acct.name], t);
          break;
        case FleetGroupBy::kTarget: {
          Acc& a = groups[t.target.name];
          AddWhole(a, t);
          a.row.status = t.StatusText();
          break;
        }
        case FleetGroupBy::kRegion:
          AddWhole(groups[t.region.empty() ? "(unknown)" : t.region], t);
          break;
        case FleetGroupBy::kGpu: {
          // GPUs by model; a target counts under each model it has. Deployments are not split
          // by GPU model (they are not bound to one), so this view leaves them out.
          for (const auto& n : t.nodes) {
            for (const auto& g : n.gpus) {
              Acc& a = groups[g.model.empty() ? "(unknown)" : g.model];
              AddTarget(a, t);
              AddGpu(a, t.target.name, n.name, g);
            }
          }
          break;
        }
      }
    }
  }
  std::vector<FleetRow> rows;
  for (auto& [key, a] : groups) {
    a.row.key = key;
    rows.push_back(Finish(a));
  }
  return rows;
}

FleetRow Totals(const FleetSnapshot& fleet) {
  Acc a;
  for (const auto& acct : fleet.accounts) {
    for (const auto& t : acct.targets) AddWhole(a, t);
  }
  a.row.key = "total";
  return Finish(a);
}

}  // namespace sextant::console
