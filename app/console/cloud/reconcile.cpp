#include "app/console/cloud/reconcile.h"

#include <algorithm>
#include <map>
#include <set>

#include "app/common/cloud_identity.h"
#include "app/common/fact_keys.h"

namespace sextant::console::cloud {

AgentPlacement PlacementFromFacts(const std::string& target,
                                  const std::map<std::string, std::string>& reported) {
  auto fact = [&](std::string_view key) {
    auto it = reported.find(std::string(key));
    return it == reported.end() ? std::string() : it->second;
  };
  AgentPlacement p;
  p.target = target;
  p.provider = fact(facts::kCloudProvider);
  p.account_id = fact(facts::kCloudAccount);
  p.region = fact(facts::kCloudRegion);
  p.instance_id = fact(facts::kCloudInstanceId);
  auto drop = [&](std::string& field, const Status& s) {
    if (s.ok()) return;
    field.clear();
    p.note += (p.note.empty() ? "" : "; ") + ("reported " + s.message() + ", ignored");
  };
  drop(p.account_id, CheckAccountId(p.provider, p.account_id));
  drop(p.instance_id, CheckInstanceId(p.provider, p.instance_id));
  return p;
}

Reconciliation Reconcile(const std::string& provider, const std::string& account_id,
                         const std::vector<CloudInstance>& instances,
                         const std::vector<std::string>& regions_listed,
                         const std::vector<AgentPlacement>& agents) {
  Reconciliation out;
  const std::set<std::string> listed(regions_listed.begin(), regions_listed.end());
  std::map<std::string, const CloudInstance*> by_id;
  for (const auto& inst : instances) by_id[inst.instance_id] = &inst;

  std::vector<const AgentPlacement*> ours;
  std::map<std::string, int> claims;  // instance id -> agents claiming it
  for (const auto& agent : agents) {
    if (agent.provider != provider) continue;
    if (!agent.account_id.empty() && agent.account_id != account_id) continue;
    ours.push_back(&agent);
    if (!agent.instance_id.empty()) ++claims[agent.instance_id];
  }
  auto unchecked = [&](AgentPlacement a, const std::string& why) {
    if (!why.empty()) a.note += (a.note.empty() ? "" : "; ") + why;
    out.unchecked.push_back(std::move(a));
  };

  std::set<std::string> claimed;
  for (const AgentPlacement* agent : ours) {
    if (agent->instance_id.empty()) {
      unchecked(*agent, "no instance id reported");
      continue;
    }
    auto it = by_id.find(agent->instance_id);
    const int n = claims[agent->instance_id];
    if (it != by_id.end() && n > 1) {
      unchecked(*agent, "instance " + agent->instance_id + " is claimed by " + std::to_string(n) +
                            " agents");
    } else if (it != by_id.end() && !agent->region.empty() && agent->region != it->second->region) {
      unchecked(*agent, "reports region " + agent->region + " but the account lists " +
                            agent->instance_id + " in " + it->second->region);
    } else if (it != by_id.end()) {
      out.matched.push_back({*it->second, agent->target});
      claimed.insert(agent->instance_id);
    } else if (!agent->account_id.empty() && listed.count(agent->region) != 0) {
      out.unlisted.push_back(*agent);
    } else {
      unchecked(*agent, agent->account_id.empty() ? "no account id reported"
                                                  : "region " + agent->region + " not listed");
    }
  }
  for (const auto& inst : instances) {
    if (claimed.count(inst.instance_id) != 0) continue;
    if (inst.state != "running" && inst.state != "pending") continue;
    out.unmanaged.push_back(inst);
  }
  auto by_instance = [](const CloudInstance& a, const CloudInstance& b) {
    return std::tie(a.region, a.instance_id) < std::tie(b.region, b.instance_id);
  };
  std::sort(out.unmanaged.begin(), out.unmanaged.end(), by_instance);
  std::sort(out.matched.begin(), out.matched.end(),
            [&](const InstanceMatch& a, const InstanceMatch& b) {
              return by_instance(a.instance, b.instance);
            });
  return out;
}

}  // namespace sextant::console::cloud
