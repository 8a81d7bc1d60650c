#include "app/agent/state/agent_health.h"

#include <chrono>

#include "app/agent/metrics/registry.h"

namespace sextant::agent {

namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

AgentHealth::AgentHealth(Registry* registry) : registry_(registry) {
  if (registry_) {
    degraded_gauge_ = &registry_
                           ->AddGauge("sextant_agent_degraded",
                                      "1 while the agent runs degraded (see "
                                      "sextant_agent_degraded_condition and GetAgentInfo)",
                                      {})
                           .WithLabels({});
    // Every known condition renders, 0 while it does not hold.
    auto& family = registry_->AddGauge("sextant_agent_degraded_condition",
                                       "1 while this condition holds", {"condition"});
    for (const char* c : {kPolicyReloadCondition, kRevocationListCondition, kAuditChainCondition,
                          kApprovalsCondition}) {
      family.WithLabels({c}).Set(0);
    }
  }
}

void AgentHealth::SetDegraded(const std::string& condition, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = conditions_.find(condition);
  if (it == conditions_.end()) {
    conditions_[condition] = Condition{condition, reason, NowMs()};
  } else {
    it->second.reason = reason;
  }
  if (registry_) {
    registry_
        ->AddGauge("sextant_agent_degraded_condition", "1 while this condition holds",
                   {"condition"})
        .WithLabels({condition})
        .Set(1);
    degraded_gauge_->Set(1);
  }
}

void AgentHealth::Clear(const std::string& condition) {
  std::lock_guard<std::mutex> lock(mu_);
  conditions_.erase(condition);
  if (registry_) {
    registry_
        ->AddGauge("sextant_agent_degraded_condition", "1 while this condition holds",
                   {"condition"})
        .WithLabels({condition})
        .Set(0);
    degraded_gauge_->Set(conditions_.empty() ? 0 : 1);
  }
}

bool AgentHealth::degraded() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !conditions_.empty();
}

std::vector<AgentHealth::Condition> AgentHealth::Conditions() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Condition> out;
  for (const auto& [name, c] : conditions_) out.push_back(c);
  return out;
}

std::string AgentHealth::Summary() const { return degraded() ? "degraded" : "ok"; }

}  // namespace sextant::agent
