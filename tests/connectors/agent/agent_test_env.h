// Test helper: one in-process agent over real mutual TLS on 127.0.0.1 with a CA and identities
// made by the test, a scratch state dir (desired state, audit log, egress ledger), the example
// policy, and the customer's approver (admission: approvals signed by the customer's key; a
// test that applies approves its spec first with Approve(), as the customer would). Tests
// adjust `options` / `deps` before Start().
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "app/agent/audit/audit_log.h"
#include "app/agent/audit/egress_ledger.h"
#include "app/agent/policy/access_policy.h"
#include "app/agent/state/desired_state.h"
#include "connectors/agent/agent_client.h"
#include "connectors/agent/agent_server.h"
#include "connectors/agent/identity_certs.h"
#include "tests/support/customer_approver.h"

namespace sextant::rpc::testing_env {

class AgentEnv {
 public:
  // Returns an error text (empty on success).
  std::string Init(const std::string& name) {
    dir = std::filesystem::temp_directory_path() /
          ("sextant-agentenv-" + std::to_string(::getpid()) + "-" + name);
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir / "state");
    auto c = CreateCa("test CA", 3600);
    if (!c.ok()) return c.status().ToString();
    ca = *c;
    CertRequest server;
    server.common_name = "agent";
    server.server = true;
    server.ip_sans = {"127.0.0.1"};
    server.not_after_s = 30LL * 86400;  // 30 days: the compliance facts report it
    auto s = IssueCert(ca, server);
    if (!s.ok()) return s.status().ToString();
    server_cert = *s;
    auto p = agent::AgentPolicy::LoadFile(
        std::string(SEXTANT_SOURCE_DIR) + "/resources/policies/agent-policy.example.yaml",
        AgentRpcNames());
    if (!p.ok()) return p.status().ToString();
    policy = std::make_unique<agent::PolicyHolder>(*p);
    auto st = agent::DesiredState::Open(dir / "state");
    if (!st.ok()) return st.status().ToString();
    state = std::move(*st);
    auto a = agent::AuditLog::Open(dir / "state");
    if (!a.ok()) return a.status().ToString();
    audit = std::move(*a);
    options.listen = "127.0.0.1:0";
    options.ca_pem = ca.cert_pem;
    options.cert_pem = server_cert.cert_pem;
    options.key_pem = server_cert.key_pem;
    options.agent_name = name;
    options.state_dir = dir / "state";
    if (Status init = approver.Init(dir); !init.ok()) return init.ToString();
    options.admission = approver.Admission();
    deps.state = state.get();
    deps.audit = audit.get();
    deps.policy = policy.get();
    deps.egress = &egress;
    return {};
  }

  Status Start() {
    auto srv = AgentServer::Start(options, deps);
    if (!srv.ok()) return srv.status();
    server = std::move(*srv);
    return Status();
  }

  // A client with the identity spiffe://example.org/<id> ("vendor/operator", ...).
  std::unique_ptr<AgentClient> Client(const std::string& id) {
    CertRequest r;
    r.common_name = id;
    r.client = true;
    r.uri_sans = {"spiffe://example.org/" + id};
    auto cert = IssueCert(ca, r);
    EXPECT_TRUE(cert.ok()) << cert.status().ToString();
    AgentClientOptions o;
    o.target = "127.0.0.1:" + std::to_string(server->port());
    o.ca_pem = ca.cert_pem;
    o.cert_pem = cert->cert_pem;
    o.key_pem = cert->key_pem;
    o.deadline = std::chrono::milliseconds(30000);
    auto c = AgentClient::Connect(o);
    EXPECT_TRUE(c.ok());
    return c.ok() ? std::move(*c) : nullptr;
  }

  // As the customer: admits a spec digest.
  Status Approve(const std::string& spec_digest) { return approver.Approve(spec_digest); }

  ~AgentEnv() {
    server.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  std::filesystem::path dir;
  CertAndKey ca, server_cert;
  std::unique_ptr<agent::PolicyHolder> policy;
  std::unique_ptr<agent::DesiredState> state;
  std::unique_ptr<agent::AuditLog> audit;
  agent::EgressLedger egress;
  AgentServerOptions options;
  AgentServerDeps deps;
  std::unique_ptr<AgentServer> server;
  test_agents::CustomerApprover approver;
};

}  // namespace sextant::rpc::testing_env
