// KubeClient: what the console reads from a Kubernetes cluster through its API server (plain
// HTTPS and JSON): the server's version, the nodes with their accelerator capacity and
// allocatable count (nvidia.com/gpu, amd.com/gpu), instance type, zone and region labels and
// readiness, and the state of the Sextant agent's pods (label app.kubernetes.io/name=
// sextant-agent, every namespace unless one is given).
//
// Lists are read page by page (limit/continue, at most 100 pages). Credentials from an exec
// plugin are kept until a minute before they expire and fetched again after a 401.
//
// Failures are CallErrors named "k8s:GET <path>", with the API server's Status reason as the
// code ("Forbidden", "Unauthorized") and a hint (the RBAC the console's identity needs).
//
// Thread-safety: calls may be made from several threads at once.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "app/console/cloud/cloud_types.h"
#include "connectors/cloud/call_result.h"
#include "connectors/cloud/http_client.h"
#include "connectors/cloud/kubernetes/kubeconfig.h"

namespace sextant::cloud::kube {

struct KubeClientOptions {
  std::chrono::milliseconds timeout{15'000};
  std::string agent_selector = "app.kubernetes.io/name=sextant-agent";
  std::string agent_namespace;  // "" for every namespace
  std::chrono::milliseconds exec_timeout{30'000};
  std::function<TimePoint()> now;  // default: system clock
};

class KubeClient {
 public:
  KubeClient(std::shared_ptr<HttpClient> http, KubeContext context, KubeClientOptions options = {});

  CallResult<std::string> Version();
  CallResult<std::vector<console::cloud::KubeNode>> Nodes();
  CallResult<std::vector<console::cloud::KubePod>> AgentPods();
  // Version (left empty when /version cannot be read), nodes and agent pods.
  CallResult<console::cloud::KubeClusterState> State();

  const KubeContext& context() const { return context_; }

 private:
  CallResult<nlohmann::json> Get(const std::string& path,
                                 const std::vector<std::pair<std::string, std::string>>& query);
  CallResult<std::vector<nlohmann::json>> List(
      const std::string& path, const std::vector<std::pair<std::string, std::string>>& query);
  // The request's TLS options and Authorization header, running the exec plugin when its
  // credentials are missing or about to expire.
  CallResult<bool> Authenticate(HttpRequest* req);

  const std::shared_ptr<HttpClient> http_;
  const KubeContext context_;
  KubeClientOptions options_;
  std::mutex mu_;
  std::optional<ExecCredentialStatus> exec_credentials_;  // GUARDED_BY(mu_)
};

// Parsers of the API's objects, exposed for tests: a v1 Node and a v1 Pod.
console::cloud::KubeNode ParseNode(const nlohmann::json& node);
console::cloud::KubePod ParsePod(const nlohmann::json& pod);

}  // namespace sextant::cloud::kube
