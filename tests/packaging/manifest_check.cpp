#include "tests/packaging/manifest_check.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <set>

namespace sextant::packaging {
namespace {

namespace fs = std::filesystem;

struct Doc {
  std::string file;
  YAML::Node node;
  std::string Where() const {
    return file + ": " + node["kind"].as<std::string>("?") + "/" +
           node["metadata"]["name"].as<std::string>("?");
  }
};

std::vector<std::string> Strings(const YAML::Node& seq) {
  std::vector<std::string> out;
  if (seq && seq.IsSequence()) {
    for (const auto& n : seq) out.push_back(n.as<std::string>(""));
  }
  return out;
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

void CheckRbac(const Doc& d, std::vector<std::string>* out) {
  const std::string kind = d.node["kind"].as<std::string>("");
  if (kind == "ClusterRole" || kind == "ClusterRoleBinding") {
    out->push_back(d.Where() + ": cluster-wide RBAC is not allowed (use a namespaced Role)");
    return;
  }
  if (kind != "Role") return;
  static const std::set<std::string> kForbiddenResources = {
      "secrets", "pods/exec", "pods/attach", "pods/portforward", "serviceaccounts/token"};
  static const std::set<std::string> kForbiddenVerbs = {"escalate", "bind", "impersonate"};
  const YAML::Node rules = d.node["rules"];
  for (std::size_t i = 0; rules && i < rules.size(); ++i) {
    const std::string at = d.Where() + ": rules[" + std::to_string(i) + "]";
    for (const char* field : {"apiGroups", "resources", "verbs", "resourceNames"}) {
      if (Contains(Strings(rules[i][field]), "*")) out->push_back(at + "." + field + " has '*'");
    }
    for (const auto& r : Strings(rules[i]["resources"])) {
      if (kForbiddenResources.count(r)) out->push_back(at + ".resources grants '" + r + "'");
    }
    for (const auto& v : Strings(rules[i]["verbs"])) {
      if (kForbiddenVerbs.count(v)) out->push_back(at + ".verbs grants '" + v + "'");
    }
  }
}

void CheckPod(const Doc& d, std::vector<std::string>* out) {
  const std::string kind = d.node["kind"].as<std::string>("");
  if (kind != "Deployment" && kind != "DaemonSet" && kind != "StatefulSet") return;
  const YAML::Node spec = d.node["spec"]["template"]["spec"];
  const std::string at = d.Where() + ": spec.template.spec";
  if (!spec) {
    out->push_back(at + " missing");
    return;
  }
  for (const char* host : {"hostNetwork", "hostPID", "hostIPC"}) {
    if (spec[host].as<bool>(false)) out->push_back(at + "." + host + " is true");
  }
  const YAML::Node psc = spec["securityContext"];
  if (!psc["runAsNonRoot"].as<bool>(false)) {
    out->push_back(at + ".securityContext.runAsNonRoot must be true");
  }
  if (psc["seccompProfile"]["type"].as<std::string>("") != "RuntimeDefault") {
    out->push_back(at + ".securityContext.seccompProfile.type must be RuntimeDefault");
  }
  bool tls_from_secret = false;
  for (const auto& v : spec["volumes"]) {
    const std::string name = v["name"].as<std::string>("?");
    if (v["hostPath"]) out->push_back(at + ".volumes[" + name + "] uses hostPath");
    if (name == "tls" && v["secret"]["secretName"]) tls_from_secret = true;
  }
  if (!tls_from_secret) out->push_back(at + ".volumes: TLS material must come from a Secret");
  const YAML::Node containers = spec["containers"];
  if (!containers || containers.size() == 0) out->push_back(at + ".containers is empty");
  for (std::size_t i = 0; containers && i < containers.size(); ++i) {
    const YAML::Node c = containers[i];
    const std::string cat = at + ".containers[" + c["name"].as<std::string>("?") + "]";
    const YAML::Node sc = c["securityContext"];
    if (sc["allowPrivilegeEscalation"].as<bool>(true)) {
      out->push_back(cat + ".securityContext.allowPrivilegeEscalation must be false");
    }
    if (!sc["readOnlyRootFilesystem"].as<bool>(false)) {
      out->push_back(cat + ".securityContext.readOnlyRootFilesystem must be true");
    }
    if (sc["privileged"].as<bool>(false)) out->push_back(cat + ".securityContext.privileged");
    if (!Contains(Strings(sc["capabilities"]["drop"]), "ALL")) {
      out->push_back(cat + ".securityContext.capabilities.drop must contain ALL");
    }
    if (sc["capabilities"]["add"] && sc["capabilities"]["add"].size() > 0) {
      out->push_back(cat + ".securityContext.capabilities.add must be empty");
    }
    const YAML::Node limits = c["resources"]["limits"];
    if (!limits["nvidia.com/gpu"] && !limits["amd.com/gpu"]) {
      out->push_back(cat + ".resources.limits has no nvidia.com/gpu or amd.com/gpu");
    }
  }
}

bool CheckNetworkPolicy(const Doc& d, std::vector<std::string>* out) {
  if (d.node["kind"].as<std::string>("") != "NetworkPolicy") return false;
  const YAML::Node spec = d.node["spec"];
  const std::string at = d.Where() + ": spec";
  const auto types = Strings(spec["policyTypes"]);
  if (!Contains(types, "Ingress") || !Contains(types, "Egress")) {
    out->push_back(at + ".policyTypes must list Ingress and Egress (default deny both ways)");
  }
  for (const auto& rule : spec["ingress"]) {
    if (!rule["ports"]) out->push_back(at + ".ingress: a rule without ports opens every port");
    for (const auto& p : rule["ports"]) {
      const int port = p["port"].as<int>(-1);
      if (port != 7443 && port != 8080) {
        out->push_back(at + ".ingress allows port " + std::to_string(port));
      }
    }
  }
  for (const auto& rule : spec["egress"]) {
    if (!rule["ports"]) out->push_back(at + ".egress: a rule without ports opens every port");
    for (const auto& p : rule["ports"]) {
      const int port = p["port"].as<int>(-1);
      if (port != 53) out->push_back(at + ".egress allows port " + std::to_string(port));
    }
  }
  return true;
}

}  // namespace

std::vector<std::string> CheckAgentManifests(const fs::path& dir) {
  std::vector<std::string> out;
  std::vector<Doc> docs;
  std::error_code ec;
  for (const auto& entry : fs::recursive_directory_iterator(dir, ec)) {
    if (!entry.is_regular_file() || entry.path().extension() != ".yaml") continue;
    if (entry.path().filename() == "kustomization.yaml") continue;
    if (entry.path().parent_path().filename() == "config") continue;  // configMapGenerator input
    try {
      for (const auto& node : YAML::LoadAllFromFile(entry.path().string())) {
        if (node && node.IsMap()) docs.push_back({entry.path().lexically_relative(dir), node});
      }
    } catch (const YAML::Exception& e) {
      out.push_back(entry.path().string() + ": not valid YAML: " + e.what());
    }
  }
  if (ec) out.push_back(dir.string() + ": " + ec.message());
  bool have_netpol = false, have_pod = false, restricted_ns = false;
  for (const auto& d : docs) {
    CheckRbac(d, &out);
    CheckPod(d, &out);
    have_netpol |= CheckNetworkPolicy(d, &out);
    const std::string kind = d.node["kind"].as<std::string>("");
    have_pod |= kind == "Deployment" || kind == "DaemonSet";
    if (kind == "Namespace" &&
        d.node["metadata"]["labels"]["pod-security.kubernetes.io/enforce"].as<std::string>("") ==
            "restricted") {
      restricted_ns = true;
    }
  }
  if (!have_pod) out.push_back(dir.string() + ": no Deployment or DaemonSet for the agent");
  if (!have_netpol) out.push_back(dir.string() + ": no NetworkPolicy for the agent");
  if (!restricted_ns) {
    out.push_back(dir.string() + ": no Namespace enforcing the restricted Pod Security Standard");
  }
  return out;
}

}  // namespace sextant::packaging
