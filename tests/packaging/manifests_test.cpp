// The agent's Kubernetes manifests keep the security properties a reviewer relies on, and the
// check that says so fails when a forbidden permission is added.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "app/agent/config/agent_config.h"
#include "app/agent/policy/access_policy.h"
#include "tests/packaging/manifest_check.h"
#include "tests/support/command.h"

namespace sextant::packaging {
namespace {

namespace fs = std::filesystem;

const fs::path kK8s = fs::path(SEXTANT_SOURCE_DIR) / "packaging" / "kubernetes";

std::string Read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += s + "\n";
  return out;
}

TEST(KubernetesManifests, BasePassesEverySecurityCheck) {
  const auto violations = CheckAgentManifests(kK8s / "base");
  EXPECT_TRUE(violations.empty()) << Join(violations);
}

TEST(KubernetesManifests, AmdOverlaySwapsTheGpuResource) {
  const std::string k = Read(kK8s / "amd" / "kustomization.yaml");
  EXPECT_NE(k.find("../base"), std::string::npos);
  EXPECT_NE(k.find("amd.com~1gpu"), std::string::npos);
  EXPECT_NE(k.find("op: remove"), std::string::npos);
}

// Copies the base manifests to a scratch dir, replaces `from` by `to` in `file`, and returns the
// violations the check reports there.
std::vector<std::string> ViolationsAfter(const std::string& file, const std::string& from,
                                         const std::string& to) {
  const fs::path dir =
      fs::path(::testing::TempDir()) / ("sextant-k8s-mutant-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::copy(kK8s / "base", dir, fs::copy_options::recursive);
  std::string text = Read(dir / file);
  const auto pos = text.find(from);
  EXPECT_NE(pos, std::string::npos) << "fixture text not found in " << file << ": " << from;
  if (pos != std::string::npos) text.replace(pos, from.size(), to);
  std::ofstream(dir / file, std::ios::trunc) << text;
  return CheckAgentManifests(dir);
}

void ExpectCaught(const std::string& file, const std::string& from, const std::string& to,
                  const std::string& expected) {
  const auto v = ViolationsAfter(file, from, to);
  EXPECT_NE(Join(v).find(expected), std::string::npos)
      << "mutation '" << to << "' in " << file << " not caught; violations:\n"
      << Join(v);
}

TEST(KubernetesManifests, CheckFailsWhenAForbiddenPermissionIsAdded) {
  ExpectCaught("rbac.yaml", R"(verbs: ["get", "list", "watch"])",
               R"(verbs: ["get", "list", "watch", "*"])", "verbs has '*'");
  ExpectCaught("rbac.yaml", R"(resources: ["pods", "events"])",
               R"(resources: ["pods", "events", "secrets"])", "grants 'secrets'");
  ExpectCaught("rbac.yaml", R"(resources: ["pods", "events"])",
               R"(resources: ["pods", "pods/exec"])", "grants 'pods/exec'");
  ExpectCaught("rbac.yaml", R"(verbs: ["get", "list", "watch"])", R"(verbs: ["get", "escalate"])",
               "grants 'escalate'");
  ExpectCaught("rbac.yaml", "kind: Role\n", "kind: ClusterRole\n", "cluster-wide RBAC");
}

TEST(KubernetesManifests, CheckFailsOnWeakenedPodSecurity) {
  ExpectCaught("deployment.yaml", "allowPrivilegeEscalation: false",
               "allowPrivilegeEscalation: true", "allowPrivilegeEscalation must be false");
  ExpectCaught("deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false",
               "readOnlyRootFilesystem must be true");
  ExpectCaught("deployment.yaml", R"(drop: ["ALL"])", R"(drop: ["NET_RAW"])",
               "drop must contain ALL");
  ExpectCaught("deployment.yaml", "type: RuntimeDefault", "type: Unconfined",
               "seccompProfile.type must be RuntimeDefault");
  ExpectCaught("deployment.yaml", "serviceAccountName: sextant-agent",
               "serviceAccountName: sextant-agent\n      hostNetwork: true", "hostNetwork is true");
  ExpectCaught("deployment.yaml", "nvidia.com/gpu: 1", "cpu: \"4\"", "no nvidia.com/gpu");
}

TEST(KubernetesManifests, CheckFailsOnOpenedNetwork) {
  ExpectCaught("networkpolicy.yaml", "port: 53\n        - protocol: TCP\n          port: 53",
               "port: 53\n        - protocol: TCP\n          port: 443", "egress allows port 443");
  ExpectCaught("networkpolicy.yaml", R"(policyTypes: ["Ingress", "Egress"])",
               R"(policyTypes: ["Ingress"])", "must list Ingress and Egress");
}

TEST(KubernetesManifests, ConfigAndPolicyParseWithTheAgentsOwnParsers) {
  const fs::path config = kK8s / "base" / "config";
  auto cfg = agent::AgentConfig::LoadFile(config / "agent.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->state_dir, fs::path("/var/lib/sextant-agent"));
  // In the cluster the API listens on the pod's addresses (the Service and the probes reach it).
  EXPECT_EQ(cfg->http_listen, "0.0.0.0:8080");
  auto policy = agent::AgentPolicy::LoadFile(config / "policy.yaml");
  ASSERT_TRUE(policy.ok()) << policy.status().ToString();
  // The policy shipped for Kubernetes is the documented example, word for word.
  EXPECT_EQ(Read(config / "policy.yaml"),
            Read(fs::path(SEXTANT_SOURCE_DIR) / "resources/policies/agent-policy.example.yaml"));
  auto deb_cfg = agent::AgentConfig::LoadFile(fs::path(SEXTANT_SOURCE_DIR) /
                                              "packaging/debian/agent/agent.yaml");
  ASSERT_TRUE(deb_cfg.ok()) << deb_cfg.status().ToString();
  // On a VM it stays on loopback until the operator opens it.
  EXPECT_EQ(deb_cfg->http_listen, "127.0.0.1:8080");
  // Both shipped configs admit nothing until the customer configures its own rule (two-party
  // deployments), and answer validation only from the floor of tokens per prompt.
  for (const agent::AgentConfig* c : {&*cfg, &*deb_cfg}) {
    EXPECT_TRUE(c->admission.approval_keys.empty());
    EXPECT_TRUE(c->admission.allow_specs.empty());
    EXPECT_TRUE(c->admission.allow_models.empty());
    EXPECT_GE(c->validation.min_tokens_per_prompt, 16);
  }
}

TEST(KubernetesManifests, KustomizeRendersBothVariants) {
  if (sextant::testing::RunCommand("command -v kubectl").exit_code != 0) {
    GTEST_SKIP() << "kubectl not installed; the structural checks above still ran";
  }
  for (const char* variant : {"base", "amd"}) {
    auto r = sextant::testing::RunCommand("kubectl kustomize " + (kK8s / variant).string());
    EXPECT_EQ(r.exit_code, 0) << variant << ": " << r.output;
    EXPECT_NE(r.output.find("kind: NetworkPolicy"), std::string::npos) << r.output;
  }
}

TEST(ContainerBuild, MultiStageNonRootRuntimeWithoutQt) {
  const std::string f = Read(fs::path(SEXTANT_SOURCE_DIR) / "packaging/container/Containerfile");
  ASSERT_FALSE(f.empty());
  size_t froms = 0;
  for (size_t p = f.find("\nFROM "); p != std::string::npos; p = f.find("\nFROM ", p + 1)) ++froms;
  EXPECT_GE(froms, 2u) << "build and runtime stages";
  const std::string runtime = f.substr(f.rfind("\nFROM "));
  EXPECT_NE(runtime.find("distroless"), std::string::npos);
  EXPECT_NE(runtime.find("USER 65532"), std::string::npos);
  EXPECT_EQ(runtime.find("qt6"), std::string::npos);
  EXPECT_NE(f.find("-DSEXTANT_WITH_GUI=OFF"), std::string::npos);
}

}  // namespace
}  // namespace sextant::packaging
