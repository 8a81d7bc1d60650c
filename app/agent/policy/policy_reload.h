// Reloading the customer's policy file (SIGHUP), failing closed: a file that does not parse
// (or names an unknown RPC) leaves the policy in force unchanged and marks the agent degraded
// (AgentHealth condition "policy_reload") until a reload succeeds, so a typo in a revocation
// never passes for a revocation that took effect. Either way the reload is a record of the
// audit log (identity "agent:sighup", rpc "ReloadPolicy", outcome "ok" or "refused", detail:
// the new digest, or the error with its line and column), written before a new policy takes
// effect; a reload whose record cannot be written does not take effect.
//
// Thread-safety: safe from any thread; reloads should come from one (the signal thread).
#pragma once

#include <filesystem>
#include <set>
#include <string>

#include "app/agent/audit/audit_log.h"
#include "app/agent/policy/access_policy.h"
#include "app/agent/state/agent_health.h"
#include "engine/base/status.h"

namespace sextant::agent {

// OK when the new policy is in force; the error otherwise (the old policy stays).
Status ReloadPolicy(const std::filesystem::path& path, const std::set<std::string>& known_rpcs,
                    PolicyHolder& holder, AuditLog& audit, AgentHealth& health);

}  // namespace sextant::agent
