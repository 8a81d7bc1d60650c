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
//     crl: /etc/sextant-agent/tls/crl.pem  # optional: revoked client certificates (SIGHUP reloads)
//   http:
//     listen: 127.0.0.1:8080              # OpenAI-compatible API and /metrics; set 0.0.0.0:8080
//                                         #   (or the pod/host address) to serve other hosts
//     cert: ""                            # optional TLS for the HTTP listener
//     key: ""
//     client_ca: ""                       # with TLS: clients need a certificate signed by this CA
//     metrics: open                       # open | key (/metrics needs an API key)
//     limits:                             # bounds on what one client can make the listener hold
//       max_connections: 4096
//       max_connections_per_client: 256   # per peer address
//       header_timeout_ms: 10000          # the request head (and TLS handshake) must arrive by
//       then idle_timeout_ms: 5000             # keep-alive connections idle longer are closed
//       body_timeout_ms: 30000
//       write_timeout_ms: 30000           # a client that reads nothing for this long is dropped
//       max_body_bytes: 4194304           # as sent, and after gzip/deflate inflating
//       max_json_depth: 64
//       max_json_values: 131072
//       workers: 16                       # threads that parse and admit requests
//   policy: /etc/sextant-agent/policy.yaml
//   state_dir: /var/lib/sextant-agent
//   model_store: /var/lib/sextant-agent/models   # a path or file:// URI
//   encryption_at_rest: false                    # declared by the operator (volume encryption)
//   console_keys:                                # Ed25519 public keys (PEM) of trusted consoles
//     - /etc/sextant-agent/console-keys/acme.pem #   (`sextant reports key`); non-empty: every
//                                                #   apply needs a passing report signed by one
//   admission:                                   # which specs may be applied (two-party): none
//     approval_keys:                             #   configured = every apply is refused
//       - /etc/sextant-agent/approval-keys/security.pem  # customer approvers' Ed25519 keys
//     approvals: /etc/sextant-agent/approvals.jsonl      # `sextant-agent approve` appends here
//     allow_specs: ["sha256:..."]                # spec digests admitted without an approval
//     allow_models: ["<sha256 hex>"]             # models whose every spec is admitted
//   validation:
//     min_tokens_per_prompt: 16                  # RunValidation refuses shorter validations
//     answers_burst: 64                          # match answers a caller gets at once
//     answers_per_hour: 256                      #   and per hour after that
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
//     denied_records_burst: 20        # refused calls recorded one by one per caller, at once
//     denied_records_per_minute: 20   #   and per minute; the rest as one summary record
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
  int denied_records_burst = 20;
  int denied_records_per_minute = 20;
};

struct AdmissionSettings {
  std::vector<std::filesystem::path> approval_keys;  // PEM files
  std::filesystem::path approvals;                   // JSON lines of signed approvals
  std::vector<std::string> allow_specs;
  std::vector<std::string> allow_models;
};

struct ValidationSettings {
  int min_tokens_per_prompt = 16;
  int answers_burst = 64;
  int answers_per_hour = 256;
};

// The HTTP listener's bounds (http.limits); defaults as documented above.
struct HttpLimits {
  int max_connections = 4096;
  int max_connections_per_client = 256;
  int header_timeout_ms = 10000;
  int idle_timeout_ms = 5000;
  int body_timeout_ms = 30000;
  int write_timeout_ms = 30000;
  int64_t max_body_bytes = 4 << 20;
  int max_json_depth = 64;
  int64_t max_json_values = 131072;
  int workers = 16;
};

struct AgentConfig {
  std::string name;
  std::string grpc_listen = "0.0.0.0:7443";
  std::filesystem::path grpc_ca;
  std::filesystem::path grpc_cert;
  std::filesystem::path grpc_key;
  std::filesystem::path grpc_crl;  // empty: no revocation list
  // Loopback unless the file says otherwise: the inference API is opened to a network on purpose.
  std::string http_listen = "127.0.0.1:8080";
  std::filesystem::path http_cert;
  std::filesystem::path http_key;
  std::filesystem::path http_client_ca;
  bool http_metrics_need_key = false;
  HttpLimits http_limits;
  std::filesystem::path policy;
  std::filesystem::path state_dir = kDefaultAgentStateDir;
  std::filesystem::path model_store;
  bool encryption_at_rest = false;
  std::vector<std::filesystem::path> console_keys;  // PEM files; relative to the config's dir
  std::optional<CloudContextInfo> cloud;            // set when the file has a cloud: section
  AgentLimits limits;
  AdmissionSettings admission;
  ValidationSettings validation;

  // Parses YAML text; source names it in errors; base_dir resolves relative paths.
  static Result<AgentConfig> Parse(const std::string& text, const std::string& source,
                                   const std::filesystem::path& base_dir);
  static Result<AgentConfig> LoadFile(const std::filesystem::path& path);
};

// Splits "host:port" ("[::1]:7443" too); error names the field.
Result<std::pair<std::string, int>> SplitHostPort(const std::string& address,
                                                  const std::string& field);

}  // namespace sextant::agent
