#include "app/console/cloud/reconcile.h"

#include <algorithm>
#include <map>
#include <set>

namespace sextant::console::cloud {

Reconciliation Reconcile(const std::string& provider, const std::string& account_id,
                         const std::vector<CloudInstance>& instances,
                         const std::vector<std::string>& regions_listed,
                         const std::vector<AgentPlacement>& agents) {
  Reconciliation out;
  const std::set<std::string> listed(regions_listed.begin(), regions_listed.end());
  std::map<std::string, const CloudInstance*> by_id;
  for (const auto& inst : instances) by_id[inst.instance_id] = &inst;

  std::set<std::string> claimed;
  for (const auto& agent : agents) {
    if (agent.provider != provider) continue;
    if (!agent.account_id.empty() && agent.account_id != account_id) continue;
    if (agent.instance_id.empty()) {
      out.unchecked.push_back(agent);
      continue;
    }
    auto it = by_id.find(agent.instance_id);
    if (it != by_id.end()) {
      out.matched.push_back({*it->second, agent.target});
      claimed.insert(agent.instance_id);
    } else if (!agent.account_id.empty() && listed.count(agent.region) != 0) {
      out.unlisted.push_back(agent);
    } else {
      out.unchecked.push_back(agent);
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
