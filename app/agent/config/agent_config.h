// AgentConfig: the agent's configuration file (agent.yaml, default
// /etc/sextant-agent/agent.yaml). Strict: unknown keys and wrongly typed values are errors
// naming file:line:column; relative paths are resolved against the file's directory.
//
//   name: pool-a                          # defaults to the host name
//   grpc:
//     listen: 0.0.0.0:7443
//     ca: /etc/sextant-agent/tls/ca.pem   # CA that signs client certificates
//     cert: /etc/sextant-agent/tls/server.pem
//     key: /etc/sextant-agent/tls/server.key
//   http:
//     listen: 0.0.0.0:8080                # OpenAI-compatible API and /metrics
//     cert: ""                            # optional TLS for the HTTP listener
//     key: ""
//   policy: /etc/sextant-agent/policy.yaml
//   state_dir: /var/lib/sextant-agent
//   model_store: /var/lib/sextant-agent/models   # a path or file:// URI
//   encryption_at_rest: false                    # declared by the operator (volume encryption)
//   console_keys:                                # Ed25519 public keys (PEM) of trusted consoles
//     - /etc/sextant-agent/console-keys/acme.pem #   (`sextant reports key`); non-empty: every
//                                                #   apply needs a passing report signed by one
//   cloud:                                       # overrides instance metadata when present
//     provider: aws
//     account: "123456789012"
//     region: eu-west-1
//     zone: eu-west-1a
//     instance_type: g5.xlarge
//     spot: false
//   limits:
//     max_queue: 64            # HTTP requests waiting per deployment (429 beyond)
//     max_batch: 16
//     shutdown_grace_ms: 10000
//     max_stream_ms: 3600000   # longest a watch stream may stay open
//     imds_timeout_ms: 300
//
// Thread-safety: a parsed AgentConfig is a value.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "app/agent/state/sources.h"
#include "engine/base/status.h"

namespace sextant::agent {

inline constexpr char kDefaultAgentConfigPath[] = "/etc/sextant-agent/agent.yaml";
inline constexpr char kDefaultAgentStateDir[] = "/var/lib/sextant-agent";
inline constexpr int kDefaultGrpcPort = 7443;
inline constexpr int kDefaultHttpPort = 8080;

struct AgentLimits {
  int max_queue = 64;
  int max_batch = 16;
  int shutdown_grace_ms = 10000;
  int64_t max_stream_ms = 3600000;
  int imds_timeout_ms = 300;
};

struct AgentConfig {
  std::string name;
  std::string grpc_listen = "0.0.0.0:7443";
  std::filesystem::path grpc_ca;
  std::filesystem::path grpc_cert;
  std::filesystem::path grpc_key;
  std::string http_listen = "0.0.0.0:8080";
  std::filesystem::path http_cert;
  std::filesystem::path http_key;
  std::filesystem::path policy;
  std::filesystem::path state_dir = kDefaultAgentStateDir;
  std::filesystem::path model_store;
  bool encryption_at_rest = false;
  std::vector<std::filesystem::path> console_keys;  // PEM files; relative to the config's dir
  std::optional<CloudContextInfo> cloud;            // set when the file has a cloud: section
  AgentLimits limits;

  // Parses YAML text; source names it in errors; base_dir resolves relative paths.
  static Result<AgentConfig> Parse(const std::string& text, const std::string& source,
                                   const std::filesystem::path& base_dir);
  static Result<AgentConfig> LoadFile(const std::filesystem::path& path);
};

// Splits "host:port" ("[::1]:7443" too); error names the field.
Result<std::pair<std::string, int>> SplitHostPort(const std::string& address,
                                                  const std::string& field);

}  // namespace sextant::agent
