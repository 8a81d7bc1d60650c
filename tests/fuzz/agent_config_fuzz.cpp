// agent.yaml on any text: an error naming file:line:column, or a configuration within the
// documented ranges.
#include <cstdint>
#include <string>

#include "app/agent/config/agent_config.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto config = sextant::agent::AgentConfig::Parse(text, "agent.yaml", "/etc/sextant-agent");
  if (!config.ok()) {
    SEXTANT_FUZZ_CHECK(config.status().message().rfind("agent.yaml:", 0) == 0);
    return 0;
  }
  SEXTANT_FUZZ_CHECK(config->limits.max_queue >= 1);
  SEXTANT_FUZZ_CHECK(config->http_limits.max_connections_per_client >= 1);
  SEXTANT_FUZZ_CHECK(config->http_limits.max_body_bytes >= 1024);
  SEXTANT_FUZZ_CHECK(sextant::agent::SplitHostPort(config->grpc_listen, "grpc.listen").ok());
  SEXTANT_FUZZ_CHECK(sextant::agent::SplitHostPort(config->http_listen, "http.listen").ok());
  return 0;
}
