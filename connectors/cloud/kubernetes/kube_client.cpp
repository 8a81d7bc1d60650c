#include "connectors/cloud/kubernetes/kube_client.h"

#include <set>

#include "connectors/cloud/aws/sigv4.h"
#include "connectors/cloud/json_fields.h"

namespace sextant::cloud::kube {

namespace cc = console::cloud;

namespace {

using Query = std::vector<std::pair<std::string, std::string>>;

constexpr const char* kGpuResources[] = {"nvidia.com/gpu", "amd.com/gpu"};

std::string Label(const nlohmann::json& labels, std::initializer_list<const char*> keys) {
  if (!labels.is_object()) return "";
  for (const char* k : keys) {
    auto it = labels.find(k);
    if (it != labels.end() && it->is_string()) return it->get<std::string>();
  }
  return "";
}

// A resource quantity as Kubernetes writes counts ("8", or "8k" in principle); accelerators are
// whole numbers.
int64_t Quantity(const nlohmann::json& q) {
  if (q.is_number_integer()) return q.get<int64_t>();
  if (!q.is_string()) return 0;
  const std::string s = q.get<std::string>();
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (end == s.c_str()) return 0;
  if (*end == 'k') return v * 1000;
  return v;
}

std::string HintFor(int status, const std::string& path) {
  if (status == 401) {
    return "the API server did not accept the credentials (expired token or certificate?): "
           "refresh the kubeconfig's credentials";
  }
  if (status == 403) {
    const std::string what = path.find("/nodes") != std::string::npos ? "list nodes" : "list pods";
    return "the kubeconfig's identity may not " + what +
           ": bind it to a ClusterRole with get/list on nodes and pods";
  }
  return "";
}

}  // namespace

cc::KubeNode ParseNode(const nlohmann::json& node) {
  cc::KubeNode n;
  const nlohmann::json& meta = JsonObject(node, "metadata");
  const nlohmann::json& labels = JsonObject(meta, "labels");
  n.name = JsonString(meta, "name");
  n.instance_type =
      Label(labels, {"node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type"});
  n.zone = Label(labels, {"topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone"});
  n.region =
      Label(labels, {"topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region"});
  n.gpu_product = Label(labels, {"nvidia.com/gpu.product", "amd.com/gpu.product-name"});
  n.unschedulable = JsonBool(JsonObject(node, "spec"), "unschedulable");
  const nlohmann::json& status = JsonObject(node, "status");
  const nlohmann::json& capacity = JsonObject(status, "capacity");
  const nlohmann::json& allocatable = JsonObject(status, "allocatable");
  for (const char* r : kGpuResources) {
    const int64_t cap = Quantity(JsonField(capacity, r));
    if (cap <= 0) continue;
    n.gpus.push_back({r, cap, Quantity(JsonField(allocatable, r))});
  }
  for (const auto& c : JsonArray(status, "conditions")) {
    if (JsonString(c, "type") == "Ready") n.ready = JsonString(c, "status") == "True";
  }
  return n;
}

cc::KubePod ParsePod(const nlohmann::json& pod) {
  cc::KubePod p;
  const nlohmann::json& meta = JsonObject(pod, "metadata");
  p.ns = JsonString(meta, "namespace");
  p.name = JsonString(meta, "name");
  p.node = JsonString(JsonObject(pod, "spec"), "nodeName");
  const nlohmann::json& status = JsonObject(pod, "status");
  p.phase = JsonString(status, "phase", "Unknown");
  for (const auto& c : JsonArray(status, "conditions")) {
    if (JsonString(c, "type") == "Ready") p.ready = JsonString(c, "status") == "True";
  }
  for (const auto& cs : JsonArray(status, "containerStatuses")) {
    p.restarts += static_cast<int>(JsonInt(cs, "restartCount"));
    const nlohmann::json& state = JsonObject(cs, "state");
    for (const char* s : {"waiting", "terminated"}) {
      if (p.reason.empty()) p.reason = JsonString(JsonObject(state, s), "reason");
    }
  }
  if (p.reason.empty() && !p.ready) p.reason = JsonString(status, "reason");
  return p;
}

KubeClient::KubeClient(std::shared_ptr<HttpClient> http, KubeContext context,
                       KubeClientOptions options)
    : http_(std::move(http)), context_(std::move(context)), options_(std::move(options)) {
  if (!options_.now) options_.now = [] { return std::chrono::system_clock::now(); };
}

CallResult<bool> KubeClient::Authenticate(HttpRequest* req) {
  req->tls.ca_pem = context_.ca_pem;
  req->tls.verify_peer = !context_.insecure_skip_tls_verify;
  req->tls.client_cert_pem = context_.client_cert_pem;
  req->tls.client_key_pem = context_.client_key_pem;
  std::string token = context_.token;
  if (context_.exec) {
    std::lock_guard<std::mutex> lock(mu_);
    const bool stale = !exec_credentials_ ||
                       (exec_credentials_->expiration &&
                        *exec_credentials_->expiration - std::chrono::minutes(1) <= options_.now());
    if (stale) {
      auto got = RunExecPlugin(*context_.exec, context_.server, options_.exec_timeout);
      if (!got.ok()) return got.error();
      exec_credentials_ = *got;
    }
    if (!exec_credentials_->token.empty()) token = exec_credentials_->token;
    if (!exec_credentials_->client_cert_pem.empty()) {
      req->tls.client_cert_pem = exec_credentials_->client_cert_pem;
      req->tls.client_key_pem = exec_credentials_->client_key_pem;
    }
  }
  if (!token.empty()) req->headers.emplace_back("Authorization", "Bearer " + token);
  return true;
}

CallResult<nlohmann::json> KubeClient::Get(const std::string& path, const Query& query) {
  std::string url = context_.server;
  while (!url.empty() && url.back() == '/') url.pop_back();
  url += path;
  std::string q;
  for (const auto& [k, v] : query) {
    q += (q.empty() ? "?" : "&") + aws::UriEncode(k) + "=" + aws::UriEncode(v);
  }
  url += q;
  const std::string api_call = "k8s:GET " + path;
  for (int attempt = 0; attempt < 2; ++attempt) {
    HttpRequest req;
    req.url = url;
    req.timeout = options_.timeout;
    req.headers = {{"Accept", "application/json"}};
    auto auth = Authenticate(&req);
    if (!auth.ok()) return auth.error();
    auto resp = http_->Send(req);
    CallError e;
    e.api_call = api_call;
    if (!resp.ok()) {
      e.code =
          resp.status().code() == StatusCode::kDeadlineExceeded ? "Timeout" : "ConnectionFailed";
      e.message = resp.status().message();
      e.hint = "check that " + context_.server +
               " is reachable from here and its CA is the "
               "kubeconfig's";
      return e;
    }
    nlohmann::json body = nlohmann::json::parse(resp->body, nullptr, false);
    if (resp->status == 200) {
      if (!body.is_object()) {
        e.code = "MalformedResponse";
        e.message = "the answer is not a JSON object";
        e.http_status = 200;
        return e;
      }
      return body;
    }
    if (resp->status == 401 && context_.exec && attempt == 0) {
      std::lock_guard<std::mutex> lock(mu_);
      exec_credentials_.reset();  // the plugin's token was refused: ask it again, once
      continue;
    }
    e.http_status = resp->status;
    if (JsonString(body, "kind") == "Status") {
      e.code = JsonString(body, "reason");
      e.message = JsonString(body, "message");
    }
    if (e.code.empty()) e.code = "HTTP" + std::to_string(resp->status);
    e.hint = HintFor(resp->status, path);
    return e;
  }
  CallError e;  // unreachable: the loop returns
  e.api_call = api_call;
  e.code = "Unauthorized";
  return e;
}

CallResult<std::vector<nlohmann::json>> KubeClient::List(const std::string& path,
                                                         const Query& query) {
  std::vector<nlohmann::json> items;
  std::string token;
  std::set<std::string> seen;
  for (int page = 0; page < 100; ++page) {
    Query q = query;
    q.emplace_back("limit", "500");
    if (!token.empty()) q.emplace_back("continue", token);
    auto j = Get(path, q);
    if (!j.ok()) return j.error();
    auto it = j->find("items");
    if (it == j->end() || !it->is_array()) {
      CallError e;
      e.api_call = "k8s:GET " + path;
      e.code = "MalformedResponse";
      e.message = "the list has no items array";
      return e;
    }
    for (const auto& item : *it) items.push_back(item);
    token = JsonString(JsonObject(*j, "metadata"), "continue");
    if (token.empty()) return items;
    if (!seen.insert(token).second) {
      CallError e;
      e.api_call = "k8s:GET " + path;
      e.code = "MalformedResponse";
      e.message = "the continue token repeats";
      return e;
    }
  }
  CallError e;
  e.api_call = "k8s:GET " + path;
  e.code = "MalformedResponse";
  e.message = "more than 100 pages";
  return e;
}

CallResult<std::string> KubeClient::Version() {
  auto j = Get("/version", {});
  if (!j.ok()) return j.error();
  return JsonString(*j, "gitVersion");
}

CallResult<std::vector<cc::KubeNode>> KubeClient::Nodes() {
  auto items = List("/api/v1/nodes", {});
  if (!items.ok()) return items.error();
  std::vector<cc::KubeNode> out;
  for (const auto& i : *items) out.push_back(ParseNode(i));
  return out;
}

CallResult<std::vector<cc::KubePod>> KubeClient::AgentPods() {
  const std::string path =
      options_.agent_namespace.empty()
          ? "/api/v1/pods"
          : "/api/v1/namespaces/" + aws::UriEncode(options_.agent_namespace) + "/pods";
  auto items = List(path, {{"labelSelector", options_.agent_selector}});
  if (!items.ok()) return items.error();
  std::vector<cc::KubePod> out;
  for (const auto& i : *items) out.push_back(ParsePod(i));
  return out;
}

CallResult<cc::KubeClusterState> KubeClient::State() {
  cc::KubeClusterState s;
  s.context = context_.context;
  s.server = context_.server;
  auto v = Version();
  if (v.ok()) s.version = *v;
  auto nodes = Nodes();
  if (!nodes.ok()) return nodes.error();
  s.nodes = std::move(*nodes);
  auto pods = AgentPods();
  if (!pods.ok()) return pods.error();
  s.agent_pods = std::move(*pods);
  s.observed_at = ToUnixMs(options_.now());
  return s;
}

}  // namespace sextant::cloud::kube
