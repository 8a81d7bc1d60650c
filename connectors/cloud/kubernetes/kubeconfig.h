// Kubeconfig files (the ones kubectl reads): one context resolved to what a client needs to
// speak to that cluster's API server: the server URL, the CA to trust, and the credentials (a
// bearer token, a client certificate, or an exec plugin such as `aws eks get-token`).
//
// Relative file paths are taken from the kubeconfig's folder, as kubectl does. Unsupported
// credentials (auth-provider, basic auth) and tls-server-name are errors that say so, never
// silently dropped; every error names the file and, for YAML, the line.
//
// Exec plugins: the command runs with the plugin's arguments and environment added to the
// console's own (and KUBERNETES_EXEC_INFO), for at most `timeout`; its standard output must be
// an ExecCredential whose status gives a token or a client certificate and key, with an optional
// expirationTimestamp. This runs a program named by the kubeconfig, exactly as kubectl would:
// only use kubeconfig files you trust.
//
// Thread-safety: pure functions and values; RunExecPlugin may be called from several threads.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "connectors/cloud/call_result.h"
#include "connectors/cloud/time_format.h"
#include "engine/base/status.h"

namespace sextant::cloud::kube {

struct ExecPlugin {
  std::string api_version;  // client.authentication.k8s.io/v1 or v1beta1
  std::string command;
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;
};

struct KubeContext {
  std::string context;  // the context's name
  std::string cluster;
  std::string user;
  std::string ns;      // the context's namespace, or ""
  std::string server;  // https://host:port
  std::string ca_pem;  // empty: the system CAs
  bool insecure_skip_tls_verify = false;
  std::string token;
  std::string client_cert_pem;
  std::string client_key_pem;
  std::optional<ExecPlugin> exec;
};

// The context named `context`, or the current-context when it is empty.
Result<KubeContext> LoadKubeconfig(const std::filesystem::path& file, const std::string& context);
// As LoadKubeconfig, from text; `name` is used in messages, `dir` for relative paths.
Result<KubeContext> ParseKubeconfig(std::string_view yaml, const std::string& name,
                                    const std::filesystem::path& dir, const std::string& context);

struct ExecCredentialStatus {
  std::string token;
  std::string client_cert_pem;
  std::string client_key_pem;
  std::optional<TimePoint> expiration;
};

// Runs the plugin; a CallError (api_call "kubeconfig:exec") when it cannot be run, exits
// non-zero (with the start of its standard error), times out, or prints no ExecCredential.
CallResult<ExecCredentialStatus> RunExecPlugin(const ExecPlugin& plugin, const std::string& server,
                                               std::chrono::milliseconds timeout);

// Standard base64 (padding optional, whitespace ignored); an error names the offset of a bad
// character.
Result<std::string> DecodeBase64(std::string_view text);

}  // namespace sextant::cloud::kube
