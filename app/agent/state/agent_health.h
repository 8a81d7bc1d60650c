// AgentHealth: whether the agent runs as its owner configured it, or degraded: a condition
// that does not stop it (inference keeps serving) but that its owner must fix, such as a policy
// reload that failed (the previous policy stays in force), a revocation list that cannot be
// read, or an audit chain found broken. Each condition has a name and the reason in words; it
// holds until cleared (the next successful reload clears a failed one).
//
// Where it shows: GetAgentInfo (health, degraded_reasons), the compliance fact agent.health, and
// the metrics sextant_agent_degraded (1 while any condition holds) and
// sextant_agent_degraded_condition{condition} (1 per condition that holds).
//
// Thread-safety: every method is safe from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace sextant::agent {

class Registry;
class Gauge;

class AgentHealth {
 public:
  // registry (optional, must outlive this) gets the gauges above.
  explicit AgentHealth(Registry* registry = nullptr);

  // Sets (or replaces the reason of) a condition; `since` is now on first set.
  void SetDegraded(const std::string& condition, const std::string& reason);
  void Clear(const std::string& condition);

  struct Condition {
    std::string name;
    std::string reason;
    int64_t since_unix_ms = 0;
  };
  bool degraded() const;
  std::vector<Condition> Conditions() const;  // by name
  // "ok", or "degraded"
  std::string Summary() const;

 private:
  Registry* registry_;
  mutable std::mutex mu_;
  std::map<std::string, Condition> conditions_;  // GUARDED_BY(mu_)
  Gauge* degraded_gauge_ = nullptr;
};

// Condition names (also metric label values).
inline constexpr char kPolicyReloadCondition[] = "policy_reload";
inline constexpr char kRevocationListCondition[] = "revocation_list";
inline constexpr char kAuditChainCondition[] = "audit_chain";
inline constexpr char kApprovalsCondition[] = "approvals";

}  // namespace sextant::agent
