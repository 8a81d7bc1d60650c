// What a test that runs real agents in-process (the agent's gRPC service over mutual TLS on
// 127.0.0.1) needs around them: the vendor-operator policy, inventory and cloud sources that report
// fixed values, a test PKI with the console's client certificate, spec digests, and one agent's
// parts (state, audit log, policy, sources, server).
// Thread-safety: the sources may be read from any thread (they return copies of fixed values); an
// InProcessAgent is set up, served and killed from the test's thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>

#include "app/agent/audit/audit_log.h"
#include "app/agent/audit/egress_ledger.h"
#include "app/agent/policy/access_policy.h"
#include "app/agent/state/desired_state.h"
#include "app/agent/state/sources.h"
#include "app/console/store/console_database.h"
#include "connectors/agent/agent_server.h"
#include "connectors/agent/identity_certs.h"
#include "engine/base/sha256.h"
#include "engine/base/status.h"

namespace sextant::test_agents {

// A vendor operator may run every RPC but the customer's egress ledger, and sees its own audit
// records; identities under spiffe://example.org/vendor/ hold that role.
inline constexpr char kVendorOperatorPolicy[] = R"yaml(
version: 1
roles:
  vendor-operator:
    rpcs: [WhoAmI, GetAgentInfo, GetInventory, WatchInventory,
           ApplyDeployment, GetDeployment, ListDeployments, DeleteDeployment,
           WatchMetrics, RunValidation, GetComplianceFacts, ListAuditLog]
    audit_scope: own
identities:
  - match: spiffe://example.org/vendor/
    role: vendor-operator
)yaml";

// sha256 of `s` as lowercase hex (spec digests, as "sha256:" + SpecDigestHex(spec)).
inline std::string SpecDigestHex(const std::string& s) {
  return Sha256Hex(std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}

// Reports `inv`, stamped with the time of each snapshot.
class FixedInventory : public agent::InventorySource {
 public:
  explicit FixedInventory(agent::InventoryInfo inv) : inv_(std::move(inv)) {}
  agent::InventoryInfo Snapshot() override {
    agent::InventoryInfo copy = inv_;
    copy.observed_at_unix_ms = console::NowMs();
    return copy;
  }

 private:
  agent::InventoryInfo inv_;
};

// An AWS p5.48xlarge (i-0123456789abcdef0) in account 123456789012 and `region`, as set in the
// agent's config.
class FixedCloud : public agent::CloudContextSource {
 public:
  explicit FixedCloud(std::string region) : region_(std::move(region)) {}
  agent::CloudContextInfo Context() override {
    agent::CloudContextInfo c;
    c.provider = "aws";
    c.account = "123456789012";
    c.region = region_;
    c.instance_type = "p5.48xlarge";
    c.instance_id = "i-0123456789abcdef0";
    c.source = "config";
    return c;
  }

 private:
  std::string region_;
};

// A CA, the agents' server certificate (localhost, 127.0.0.1) and the console's client identity
// spiffe://example.org/vendor/console, whose files go to dir/{ca.pem,console.pem,console.key}.
struct TestPki {
  rpc::CertAndKey ca;
  rpc::CertAndKey server;
};

inline Result<TestPki> MakeTestPki(const std::filesystem::path& dir) {
  TestPki pki;
  SEXTANT_ASSIGN_OR_RETURN(pki.ca, rpc::CreateCa("test CA", 86400));
  rpc::CertRequest srv;
  srv.common_name = "agent";
  srv.dns_sans = {"localhost"};
  srv.ip_sans = {"127.0.0.1"};
  srv.server = true;
  SEXTANT_ASSIGN_OR_RETURN(pki.server, rpc::IssueCert(pki.ca, srv));
  rpc::CertRequest cli;
  cli.common_name = "console";
  cli.uri_sans = {"spiffe://example.org/vendor/console"};
  cli.client = true;
  SEXTANT_ASSIGN_OR_RETURN(rpc::CertAndKey console, rpc::IssueCert(pki.ca, cli));
  SEXTANT_RETURN_IF_ERROR(rpc::WriteTextFile(dir / "ca.pem", pki.ca.cert_pem, false));
  SEXTANT_RETURN_IF_ERROR(rpc::WriteTextFile(dir / "console.pem", console.cert_pem, false));
  SEXTANT_RETURN_IF_ERROR(rpc::WriteTextFile(dir / "console.key", console.key_pem, true));
  return pki;
}

// One agent: its state and audit log under `dir`, its policy and egress ledger, the sources the
// test gives it (`Observer` is the test's own deployment observer, kept typed so the test can
// change what it reports), and its server once Serve() has run.
template <typename Observer>
struct InProcessAgent {
  std::filesystem::path dir;
  std::unique_ptr<agent::DesiredState> state;
  std::unique_ptr<agent::AuditLog> audit;
  std::unique_ptr<agent::PolicyHolder> policy;
  std::unique_ptr<agent::EgressLedger> egress;
  std::unique_ptr<agent::InventorySource> inventory;
  std::unique_ptr<agent::CloudContextSource> cloud;
  std::unique_ptr<Observer> observer;
  std::unique_ptr<rpc::AgentServer> server;
  int port = 0;  // 0: any free port on the first Serve(); later Serve() calls reuse it

  // Creates `d` and opens the state and audit log there, under policy `p`.
  Status Open(const std::filesystem::path& d, std::shared_ptr<const agent::AgentPolicy> p) {
    dir = d;
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return Status::Internal("cannot create " + dir.string() + ": " + ec.message());
    SEXTANT_ASSIGN_OR_RETURN(state, agent::DesiredState::Open(dir));
    SEXTANT_ASSIGN_OR_RETURN(audit, agent::AuditLog::Open(dir));
    policy = std::make_unique<agent::PolicyHolder>(std::move(p));
    egress = std::make_unique<agent::EgressLedger>();
    return Status();
  }

  // Serves on 127.0.0.1:port with the PKI's server certificate, named after `dir`.
  Status Serve(const TestPki& pki, bool encryption_at_rest = false) {
    rpc::AgentServerOptions o;
    o.listen = "127.0.0.1:" + std::to_string(port);
    o.ca_pem = pki.ca.cert_pem;
    o.cert_pem = pki.server.cert_pem;
    o.key_pem = pki.server.key_pem;
    o.agent_name = dir.filename().string();
    o.encryption_at_rest = encryption_at_rest;
    rpc::AgentServerDeps d;
    d.state = state.get();
    d.audit = audit.get();
    d.policy = policy.get();
    d.egress = egress.get();
    d.inventory = inventory.get();
    d.cloud = cloud.get();
    d.observer = observer.get();
    SEXTANT_ASSIGN_OR_RETURN(server, rpc::AgentServer::Start(o, d));
    port = server->port();
    return Status();
  }

  // Stops the server at once, as a crash would (the state stays on disk).
  void Kill() {
    if (server) server->Shutdown(std::chrono::milliseconds(0));
    server.reset();
  }
};

}  // namespace sextant::test_agents
