// StandInKubeApiServer: a stand-in for a Kubernetes API server, for tests only (no Kubernetes
// API server can run on the machines the tests run on). It speaks what the console reads of
// the real API over real HTTPS on 127.0.0.1: /version, /api/v1/nodes and /api/v1/pods (with
// labelSelector equality, and limit/continue pages of two items so paging is exercised), as
// v1 NodeList/PodList JSON, and refuses requests without the expected bearer token (401) or
// client certificate (TLS), answering errors as v1 Status objects.
//
// TestPki makes the certificates with the openssl command line: a CA, a server certificate for
// 127.0.0.1 and a client certificate.
#pragma once

#include <httplib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/command.h"

namespace sextant::testing {

class TestPki {
 public:
  TestPki() {
    namespace fs = std::filesystem;
    static std::atomic<int> counter{0};
    dir_ = fs::temp_directory_path() /
           ("sextant-kube-pki-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
    fs::create_directories(dir_);
    const std::string d = dir_.string();
    const std::string script =
        "set -e; cd '" + d +
        "'; "
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
        "-subj /CN=stand-in-ca -keyout ca.key -out ca.pem "
        "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign "
        ">/dev/null; "
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=kube-api "
        "-keyout server.key -out server.csr >/dev/null; "
        "printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext; "
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
        "-extfile server.ext -out server.pem >/dev/null; "
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=sextant-console "
        "-keyout client.key -out client.csr >/dev/null; "
        "printf 'extendedKeyUsage=clientAuth\\n' > client.ext; "
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
        "-extfile client.ext -out client.pem >/dev/null; "
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
        "-subj /CN=other-ca -keyout other.key -out other.pem >/dev/null";
    result_ = RunCommand("bash -c \"" + Escape(script) + "\"");
  }
  ~TestPki() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  bool ok() const { return result_.exit_code == 0; }
  const std::string& output() const { return result_.output; }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  std::string Read(const std::string& name) const {
    std::ifstream in(dir_ / name);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  static std::string Escape(const std::string& s) {
    std::string out;
    for (char c : s) {
      if (c == '"' || c == '\\' || c == '$' || c == '`') out += '\\';
      out += c;
    }
    return out;
  }
  std::filesystem::path dir_;
  CommandResult result_;
};

class StandInKubeApiServer {
 public:
  // With `client_ca` non-empty the server requires a client certificate signed by it.
  StandInKubeApiServer(const TestPki& pki, bool require_client_cert)
      : server_(pki.Path("server.pem").c_str(), pki.Path("server.key").c_str(),
                require_client_cert ? pki.Path("ca.pem").c_str() : nullptr) {
    server_.Get("/version", [this](const httplib::Request& req, httplib::Response& res) {
      if (!Authorized(req, res)) return;
      res.set_content(R"({"major":"1","minor":"30","gitVersion":"v1.30.2"})", "application/json");
    });
    server_.Get("/api/v1/nodes", [this](const httplib::Request& req, httplib::Response& res) {
      if (!Authorized(req, res)) return;
      if (forbid_nodes_) {
        Fail(res, 403, "Forbidden",
             "nodes is forbidden: User \"sextant\" cannot list resource \"nodes\"");
        return;
      }
      ++node_lists_;
      Page(req, res, "NodeList", nodes_);
    });
    server_.Get("/api/v1/pods", [this](const httplib::Request& req, httplib::Response& res) {
      if (!Authorized(req, res)) return;
      Page(req, res, "PodList", Selected(req));
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~StandInKubeApiServer() {
    server_.stop();
    thread_.join();
  }

  std::string Url() const { return "https://127.0.0.1:" + std::to_string(port_); }
  void AcceptToken(std::string token) { token_ = std::move(token); }
  void ForbidNodes(bool f) { forbid_nodes_ = f; }
  void AddNode(nlohmann::json n) { nodes_.push_back(std::move(n)); }
  void AddPod(nlohmann::json p) { pods_.push_back(std::move(p)); }
  int node_lists() const { return node_lists_; }
  int unauthorized() const { return unauthorized_; }

  static nlohmann::json Node(const std::string& name, const std::string& instance_type,
                             const std::string& zone, const std::string& gpu_resource, int gpus,
                             int allocatable, bool ready) {
    nlohmann::json capacity = {{"cpu", "192"}, {"memory", "2097152Mi"}};
    nlohmann::json alloc = {{"cpu", "191"}, {"memory", "2000000Mi"}};
    if (!gpu_resource.empty()) {
      capacity[gpu_resource] = std::to_string(gpus);
      alloc[gpu_resource] = std::to_string(allocatable);
    }
    return {{"kind", "Node"},
            {"apiVersion", "v1"},
            {"metadata",
             {{"name", name},
              {"labels",
               {{"node.kubernetes.io/instance-type", instance_type},
                {"topology.kubernetes.io/zone", zone},
                {"topology.kubernetes.io/region", zone.substr(0, zone.size() - 1)},
                {"kubernetes.io/os", "linux"}}}}},
            {"spec", nlohmann::json::object()},
            {"status",
             {{"capacity", capacity},
              {"allocatable", alloc},
              {"conditions",
               {{{"type", "MemoryPressure"}, {"status", "False"}},
                {{"type", "Ready"}, {"status", ready ? "True" : "False"}}}}}}};
  }

  static nlohmann::json Pod(const std::string& ns, const std::string& name, const std::string& app,
                            const std::string& node, bool ready, int restarts,
                            const std::string& waiting_reason = "") {
    nlohmann::json state =
        waiting_reason.empty()
            ? nlohmann::json{{"running", {{"startedAt", "2026-01-01T00:00:00Z"}}}}
            : nlohmann::json{{"waiting", {{"reason", waiting_reason}}}};
    return {{"kind", "Pod"},
            {"metadata",
             {{"name", name}, {"namespace", ns}, {"labels", {{"app.kubernetes.io/name", app}}}}},
            {"spec", {{"nodeName", node}}},
            {"status",
             {{"phase", ready ? "Running" : "Pending"},
              {"conditions", {{{"type", "Ready"}, {"status", ready ? "True" : "False"}}}},
              {"containerStatuses",
               {{{"name", "agent"}, {"restartCount", restarts}, {"state", state}}}}}}};
  }

 private:
  bool Authorized(const httplib::Request& req, httplib::Response& res) {
    if (token_.empty()) return true;
    if (req.get_header_value("Authorization") == "Bearer " + token_) return true;
    ++unauthorized_;
    Fail(res, 401, "Unauthorized", "Unauthorized");
    return false;
  }
  static void Fail(httplib::Response& res, int code, const std::string& reason,
                   const std::string& message) {
    res.status = code;
    res.set_content(nlohmann::json{{"kind", "Status"},
                                   {"apiVersion", "v1"},
                                   {"status", "Failure"},
                                   {"message", message},
                                   {"reason", reason},
                                   {"code", code}}
                        .dump(),
                    "application/json");
  }
  std::vector<nlohmann::json> Selected(const httplib::Request& req) const {
    const std::string selector = req.get_param_value("labelSelector");
    const size_t eq = selector.find('=');
    std::vector<nlohmann::json> out;
    for (const auto& p : pods_) {
      if (eq != std::string::npos) {
        const auto labels = p["metadata"].value("labels", nlohmann::json::object());
        if (labels.value(selector.substr(0, eq), "") != selector.substr(eq + 1)) continue;
      }
      out.push_back(p);
    }
    return out;
  }
  // Two items per page whatever the limit, so clients must follow `continue`.
  static void Page(const httplib::Request& req, httplib::Response& res, const std::string& kind,
                   const std::vector<nlohmann::json>& all) {
    size_t start = 0;
    if (req.has_param("continue")) start = std::stoul(req.get_param_value("continue"));
    nlohmann::json items = nlohmann::json::array();
    for (size_t i = start; i < all.size() && i < start + 2; ++i) items.push_back(all[i]);
    nlohmann::json meta = {{"resourceVersion", "1"}};
    if (start + 2 < all.size()) meta["continue"] = std::to_string(start + 2);
    res.set_content(
        nlohmann::json{{"kind", kind}, {"apiVersion", "v1"}, {"metadata", meta}, {"items", items}}
            .dump(),
        "application/json");
  }

  httplib::SSLServer server_;
  std::thread thread_;
  int port_ = 0;
  std::string token_;
  bool forbid_nodes_ = false;
  std::vector<nlohmann::json> nodes_;
  std::vector<nlohmann::json> pods_;
  std::atomic<int> node_lists_{0};
  std::atomic<int> unauthorized_{0};
};

}  // namespace sextant::testing
