#include "app/agent/policy/policy_reload.h"

#include "app/agent/config/json_log.h"

namespace sextant::agent {

Status ReloadPolicy(const std::filesystem::path& path, const std::set<std::string>& known_rpcs,
                    PolicyHolder& holder, AuditLog& audit, AgentHealth& health) {
  const std::string previous = "sha256:" + holder.Get()->digest();
  auto reloaded = AgentPolicy::LoadFile(path, known_rpcs);
  AuditEntry e;
  e.identity = "agent:sighup";
  e.role = "agent";
  e.rpc = "ReloadPolicy";
  e.target = path.string();
  if (!reloaded.ok()) {
    const std::string reason = "policy reload failed: " + reloaded.status().message() +
                               "; the previous policy (" + previous + ") stays in force";
    health.SetDegraded(kPolicyReloadCondition, reason);
    e.outcome = "refused";
    e.detail = reloaded.status().message() + " (in force: " + previous + ")";
    auto rec = audit.Append(e);
    LogEvent(spdlog::level::err, "policy_reload_rejected",
             {{"error", reloaded.status().message()},
              {"kept", previous},
              {"audit_seq", rec.ok() ? rec->seq : 0},
              {"degraded", true}});
    return reloaded.status();
  }
  const std::string digest = "sha256:" + (*reloaded)->digest();
  e.outcome = "ok";
  e.detail = digest + " (was " + previous + ")";
  auto rec = audit.Append(e);
  if (!rec.ok()) {
    const Status s = rec.status().WithContext(
        "the policy reload could not be recorded, so it "
        "did not take effect");
    health.SetDegraded(kPolicyReloadCondition, s.message());
    LogEvent(spdlog::level::err, "policy_reload_not_recorded", {{"error", s.message()}});
    return s;
  }
  holder.Set(*reloaded);
  health.Clear(kPolicyReloadCondition);
  LogEvent(spdlog::level::info, "policy_reloaded",
           {{"policy_digest", digest}, {"previous", previous}, {"audit_seq", rec->seq}});
  return Status();
}

}  // namespace sextant::agent
