// Kubeconfig contexts and the cluster's GPU nodes and agent pods, read over real HTTPS from
// StandInKubeApiServer (tests only: no Kubernetes API server can run here).
#include "connectors/cloud/kubernetes/kube_client.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/connectors/cloud/kubernetes/stand_in_kube_api.h"

namespace sextant::cloud::kube {
namespace {

using testing::StandInKubeApiServer;
using testing::TestPki;

std::string B64(const std::string& s) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int val = 0, bits = -6;
  for (unsigned char c : s) {
    val = (val << 8) + c;
    bits += 8;
    while (bits >= 0) {
      out += t[(val >> bits) & 0x3F];
      bits -= 6;
    }
  }
  if (bits > -6) out += t[((val << 8) >> (bits + 8)) & 0x3F];
  while (out.size() % 4) out += '=';
  return out;
}

TEST(Base64, DecodesAndNamesBadOffsets) {
  EXPECT_EQ(*DecodeBase64("aGVsbG8="), "hello");
  EXPECT_EQ(*DecodeBase64("aGVs\nbG8"), "hello");
  EXPECT_EQ(*DecodeBase64(B64("any bytes \x01\xff")), "any bytes \x01\xff");
  auto bad = DecodeBase64("aGV*bG8=");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("offset 3"), std::string::npos);
  EXPECT_FALSE(DecodeBase64("aG==Vs").ok());
}

const char* kConfig = R"(apiVersion: v1
kind: Config
current-context: prod
clusters:
- name: eks-prod
  cluster:
    server: https://10.0.0.1:443
    certificate-authority-data: %CA%
- name: lab
  cluster:
    server: https://lab:6443
    certificate-authority: certs/lab-ca.pem
    insecure-skip-tls-verify: true
contexts:
- name: prod
  context: {cluster: eks-prod, user: eks-user, namespace: sextant-system}
- name: lab
  context: {cluster: lab, user: lab-user}
users:
- name: eks-user
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: aws
      args: [eks, get-token, --cluster-name, prod]
      env: [{name: AWS_PROFILE, value: vendor}]
- name: lab-user
  user:
    tokenFile: lab-token
)";

TEST(Kubeconfig, ContextsClustersUsersAndRelativeFiles) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("sextant-kc-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir / "certs");
  std::ofstream(dir / "certs/lab-ca.pem") << "LAB CA PEM";
  std::ofstream(dir / "lab-token") << "lab-secret-token\n";
  std::string text = kConfig;
  text.replace(text.find("%CA%"), 4, B64("PROD CA PEM"));

  auto prod = ParseKubeconfig(text, "config", dir, "");
  ASSERT_TRUE(prod.ok()) << prod.status().ToString();
  EXPECT_EQ(prod->context, "prod");
  EXPECT_EQ(prod->server, "https://10.0.0.1:443");
  EXPECT_EQ(prod->ca_pem, "PROD CA PEM");
  EXPECT_EQ(prod->ns, "sextant-system");
  ASSERT_TRUE(prod->exec.has_value());
  EXPECT_EQ(prod->exec->command, "aws");
  EXPECT_EQ(prod->exec->args.size(), 4u);
  EXPECT_EQ(prod->exec->env[0].second, "vendor");

  auto lab = ParseKubeconfig(text, "config", dir, "lab");
  ASSERT_TRUE(lab.ok()) << lab.status().ToString();
  EXPECT_EQ(lab->ca_pem, "LAB CA PEM");
  EXPECT_TRUE(lab->insecure_skip_tls_verify);
  EXPECT_EQ(lab->token, "lab-secret-token");
  std::filesystem::remove_all(dir);
}

TEST(Kubeconfig, ErrorsNameTheFileLineAndWhatIsWrong) {
  struct Case {
    std::string yaml;
    std::string context;
    std::string want;
  } cases[] = {
      {"clusters: [", "", "config:"},
      {"current-context: c\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\nclusters:\n"
       "- name: k\n  cluster: {server: https://x}\nusers:\n- name: u\n  user:\n    exec:\n"
       "      command: x\n      env: [just-a-string]\n",
       "", "config:"},
      {"kind: Config\n", "", "no context given"},
      {"contexts: []\n", "x", "no context named \"x\""},
      {"contexts:\n- name: c\n  context: {user: u}\n", "c", "names no cluster"},
      {"contexts:\n- name: c\n  context: {cluster: k}\nclusters:\n- name: k\n  cluster: "
       "{server: ftp://x}\n",
       "c", "is not an http(s) URL"},
      {"contexts:\n- name: c\n  context: {cluster: k}\nclusters:\n- name: k\n  cluster:\n"
       "    server: https://x\n    certificate-authority-data: '*not*'\n",
       "c", "certificate-authority-data: not base64"},
      {"contexts:\n- name: c\n  context: {cluster: k, user: u}\nclusters:\n- name: k\n  cluster: "
       "{server: https://x}\nusers:\n- name: u\n  user:\n    auth-provider: {name: gcp}\n",
       "c", "config:10: user u: auth-provider is not supported"},
      {"contexts:\n- name: c\n  context: {cluster: k, user: u}\nclusters:\n- name: k\n  cluster: "
       "{server: https://x}\nusers:\n- name: u\n  user:\n    client-certificate-data: QQ==\n",
       "c", "needs its key"},
      {"contexts:\n- name: c\n  context: {cluster: k, user: u}\nclusters:\n- name: k\n  cluster: "
       "{server: https://x}\nusers:\n- name: u\n  user:\n    tokenFile: /no/such/file\n",
       "c", "cannot read /no/such/file"},
  };
  for (const auto& c : cases) {
    auto r = ParseKubeconfig(c.yaml, "config", "/tmp", c.context);
    ASSERT_FALSE(r.ok()) << c.yaml;
    EXPECT_NE(r.status().message().find(c.want), std::string::npos)
        << c.yaml << " -> " << r.status().message();
  }
}

TEST(KubeObjects, NodesWithAcceleratorsAndAgentPods) {
  auto n = ParseNode(StandInKubeApiServer::Node("gpu-1", "p5.48xlarge", "us-west-2a",
                                                "nvidia.com/gpu", 8, 7, true));
  EXPECT_EQ(n.name, "gpu-1");
  EXPECT_EQ(n.instance_type, "p5.48xlarge");
  EXPECT_EQ(n.zone, "us-west-2a");
  EXPECT_EQ(n.region, "us-west-2");
  EXPECT_TRUE(n.ready);
  ASSERT_EQ(n.gpus.size(), 1u);
  EXPECT_EQ(n.gpus[0].resource, "nvidia.com/gpu");
  EXPECT_EQ(n.gpus[0].capacity, 8);
  EXPECT_EQ(n.gpus[0].allocatable, 7);
  auto cpu =
      ParseNode(StandInKubeApiServer::Node("cpu-1", "m7i.large", "us-west-2b", "", 0, 0, false));
  EXPECT_TRUE(cpu.gpus.empty());
  EXPECT_FALSE(cpu.ready);
  auto p = ParsePod(StandInKubeApiServer::Pod("sextant-system", "agent-0", "sextant-agent", "gpu-1",
                                              false, 3, "CrashLoopBackOff"));
  EXPECT_EQ(p.ns, "sextant-system");
  EXPECT_EQ(p.node, "gpu-1");
  EXPECT_EQ(p.phase, "Pending");
  EXPECT_FALSE(p.ready);
  EXPECT_EQ(p.restarts, 3);
  EXPECT_EQ(p.reason, "CrashLoopBackOff");
  // Garbage in, empty values out: never a crash.
  EXPECT_TRUE(ParseNode(nlohmann::json::array()).name.empty());
  EXPECT_TRUE(ParsePod(nlohmann::json("x")).name.empty());
  auto odd = nlohmann::json::parse(R"({"metadata":{"name":5,"labels":[]},
      "status":{"capacity":{"nvidia.com/gpu":{}},"conditions":"Ready"},"spec":[]})");
  EXPECT_NO_THROW(ParseNode(odd));
  EXPECT_TRUE(ParseNode(odd).gpus.empty());
  auto odd_pod = nlohmann::json::parse(R"({"metadata":[],"status":{"phase":3,
      "containerStatuses":[1,{"restartCount":"x","state":{"waiting":"y"}}]}})");
  EXPECT_NO_THROW(ParsePod(odd_pod));
  EXPECT_EQ(ParsePod(odd_pod).phase, "Unknown");
}

class KubeOverTls : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(pki_.ok()) << pki_.output(); }

  void Populate(StandInKubeApiServer& api) {
    api.AddNode(StandInKubeApiServer::Node("gpu-a", "p5.48xlarge", "us-west-2a", "nvidia.com/gpu",
                                           8, 8, true));
    api.AddNode(StandInKubeApiServer::Node("gpu-b", "p5.48xlarge", "us-west-2b", "nvidia.com/gpu",
                                           8, 6, true));
    api.AddNode(
        StandInKubeApiServer::Node("mi300", "custom", "us-west-2c", "amd.com/gpu", 8, 8, false));
    api.AddNode(StandInKubeApiServer::Node("cpu", "m7i.large", "us-west-2a", "", 0, 0, true));
    api.AddNode(StandInKubeApiServer::Node("gpu-c", "g6e.xlarge", "us-west-2a", "nvidia.com/gpu", 1,
                                           1, true));
    api.AddPod(
        StandInKubeApiServer::Pod("sextant-system", "agent-0", "sextant-agent", "gpu-a", true, 0));
    api.AddPod(StandInKubeApiServer::Pod("sextant-system", "agent-1", "sextant-agent", "gpu-b",
                                         false, 4, "CrashLoopBackOff"));
    api.AddPod(StandInKubeApiServer::Pod("default", "web", "web", "cpu", true, 0));
  }

  KubeContext Context(const std::string& server) {
    KubeContext c;
    c.context = "test";
    c.server = server;
    c.ca_pem = pki_.Read("ca.pem");
    return c;
  }

  TestPki pki_;
};

TEST_F(KubeOverTls, GpuNodesAndAgentPodsWithABearerToken) {
  StandInKubeApiServer api(pki_, false);
  api.AcceptToken("vendor-token");
  Populate(api);
  KubeContext c = Context(api.Url());
  c.token = "vendor-token";
  KubeClient client(std::make_shared<CurlHttpClient>(), c);
  auto state = client.State();
  ASSERT_TRUE(state.ok()) << state.error().ToString();
  EXPECT_EQ(state->version, "v1.30.2");
  ASSERT_EQ(state->nodes.size(), 5u);  // three pages of two: `continue` followed
  int gpus = 0, allocatable = 0, gpu_nodes = 0;
  for (const auto& n : state->nodes) {
    for (const auto& g : n.gpus) {
      gpus += g.capacity;
      allocatable += g.allocatable;
    }
    gpu_nodes += n.gpus.empty() ? 0 : 1;
  }
  EXPECT_EQ(gpu_nodes, 4);
  EXPECT_EQ(gpus, 25);
  EXPECT_EQ(allocatable, 23);
  EXPECT_EQ(state->nodes[2].gpus[0].resource, "amd.com/gpu");
  EXPECT_FALSE(state->nodes[2].ready);
  ASSERT_EQ(state->agent_pods.size(), 2u);  // the web pod is not the agent's
  EXPECT_TRUE(state->agent_pods[0].ready);
  EXPECT_EQ(state->agent_pods[1].reason, "CrashLoopBackOff");
  EXPECT_GT(state->observed_at, 0);
}

TEST_F(KubeOverTls, AClientCertificateFromTheKubeconfig) {
  StandInKubeApiServer api(pki_, /*require_client_cert=*/true);
  Populate(api);
  KubeContext c = Context(api.Url());
  c.client_cert_pem = pki_.Read("client.pem");
  c.client_key_pem = pki_.Read("client.key");
  KubeClient client(std::make_shared<CurlHttpClient>(), c);
  auto nodes = client.Nodes();
  ASSERT_TRUE(nodes.ok()) << nodes.error().ToString();
  EXPECT_EQ(nodes->size(), 5u);
  // Without the certificate the TLS handshake fails.
  KubeClient anonymous(std::make_shared<CurlHttpClient>(), Context(api.Url()));
  auto refused = anonymous.Nodes();
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, "ConnectionFailed");
}

TEST_F(KubeOverTls, AServerTheKubeconfigsCaDidNotSignIsRefused) {
  StandInKubeApiServer api(pki_, false);
  KubeContext c = Context(api.Url());
  c.ca_pem = pki_.Read("other.pem");
  KubeClient client(std::make_shared<CurlHttpClient>(), c);
  auto r = client.Nodes();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "ConnectionFailed");
  EXPECT_NE(r.error().hint.find("CA"), std::string::npos);
  EXPECT_EQ(api.node_lists(), 0);
}

TEST_F(KubeOverTls, UnauthorizedAndForbiddenAreNamedWithHints) {
  StandInKubeApiServer api(pki_, false);
  api.AcceptToken("right");
  KubeContext c = Context(api.Url());
  c.token = "wrong";
  auto r = KubeClient(std::make_shared<CurlHttpClient>(), c).Nodes();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "Unauthorized");
  EXPECT_EQ(r.error().http_status, 401);
  EXPECT_EQ(r.error().api_call, "k8s:GET /api/v1/nodes");
  c.token = "right";
  api.ForbidNodes(true);
  auto f = KubeClient(std::make_shared<CurlHttpClient>(), c).Nodes();
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code, "Forbidden");
  EXPECT_NE(f.error().message.find("cannot list resource"), std::string::npos);
  EXPECT_NE(f.error().hint.find("ClusterRole"), std::string::npos);
}

// An exec plugin (a shell script standing in for `aws eks get-token`) that prints a different
// token each run, counting its runs in a file.
class ExecPluginTest : public KubeOverTls {
 protected:
  void SetUp() override {
    KubeOverTls::SetUp();
    script_ = pki_.dir() / "get-token.sh";
    std::ofstream(script_)
        << "#!/bin/sh\n"
           "n=$(cat \"$COUNT\" 2>/dev/null || echo 0); n=$((n+1)); "
           "echo $n > \"$COUNT\"\n"
           "case \"$KUBERNETES_EXEC_INFO\" in *\\\"server\\\"*) ;; *) exit 3;; esac\n"
           "echo '{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\","
           "\"kind\":\"ExecCredential\",\"status\":{\"token\":\"token-'$n'\","
           "\"expirationTimestamp\":\"2099-01-01T00:00:00Z\"}}'\n";
    std::filesystem::permissions(script_, std::filesystem::perms::owner_all);
  }
  ExecPlugin Plugin() {
    ExecPlugin p;
    p.api_version = "client.authentication.k8s.io/v1beta1";
    p.command = script_.string();
    p.env = {{"COUNT", (pki_.dir() / "count").string()}};
    return p;
  }
  std::filesystem::path script_;
};

TEST_F(ExecPluginTest, TokenFromThePluginKeptAndFetchedAgainAfterA401) {
  StandInKubeApiServer api(pki_, false);
  Populate(api);
  api.AcceptToken("token-1");
  KubeContext c = Context(api.Url());
  c.exec = Plugin();
  KubeClient client(std::make_shared<CurlHttpClient>(), c);
  ASSERT_TRUE(client.Nodes().ok());
  ASSERT_TRUE(client.AgentPods().ok());  // the token is kept: the plugin ran once
  EXPECT_EQ(api.unauthorized(), 0);
  // The server stops accepting token-1 (it expired early): one 401, the plugin runs again.
  api.AcceptToken("token-2");
  auto again = client.Nodes();
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  EXPECT_EQ(api.unauthorized(), 1);
}

TEST_F(ExecPluginTest, AFailingOrSilentPluginIsAClearError) {
  ExecPlugin failing;
  failing.command = "sh";
  failing.args = {"-c", "echo 'no credentials for profile vendor' >&2; exit 2"};
  auto r = RunExecPlugin(failing, "https://x", std::chrono::seconds(5));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "ExecFailed");
  EXPECT_NE(r.error().message.find("status 2"), std::string::npos);
  EXPECT_NE(r.error().message.find("no credentials for profile vendor"), std::string::npos);

  ExecPlugin garbage;
  garbage.command = "sh";
  garbage.args = {"-c", "echo hello"};
  EXPECT_EQ(RunExecPlugin(garbage, "https://x", std::chrono::seconds(5)).error().code,
            "MalformedResponse");

  ExecPlugin slow;
  slow.command = "sleep";
  slow.args = {"10"};
  const auto start = std::chrono::steady_clock::now();
  auto t = RunExecPlugin(slow, "https://x", std::chrono::milliseconds(300));
  EXPECT_EQ(t.error().code, "Timeout");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));

  ExecPlugin missing;
  missing.command = "/no/such/plugin";
  EXPECT_EQ(RunExecPlugin(missing, "https://x", std::chrono::seconds(5)).error().code,
            "ExecFailed");
}

}  // namespace
}  // namespace sextant::cloud::kube
