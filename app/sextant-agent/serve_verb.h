// `sextant-agent serve --config agent.yaml` (also `sextant-agent --config agent.yaml`): runs the
// agent until SIGTERM/SIGINT (clean shutdown within limits.shutdown_grace_ms); SIGHUP reloads
// the policy file (a malformed one is rejected with line:column and the old one stays).
// Returns the process exit status: 0 after a clean shutdown, 1 when the agent cannot start.
#pragma once

#include <string>

namespace sextant::agent {

int RunServe(const std::string& config_path);

}  // namespace sextant::agent
