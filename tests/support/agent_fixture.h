// What a test that runs real agents in-process (the agent's gRPC service over mutual TLS on
// 127.0.0.1) needs around them: the vendor-operator policy, inventory and cloud sources that report
// fixed values, a test PKI with the console's client certificate, and spec digests.
// Thread-safety: the sources may be read from any thread (they return copies of fixed values).
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

#include "app/agentstate/sources.h"
#include "app/store/console_store.h"
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
    copy.observed_at_unix_ms = store::NowMs();
    return copy;
  }

 private:
  agent::InventoryInfo inv_;
};

// An AWS p5.48xlarge in account 123456789012 and `region`, as set in the agent's config.
class FixedCloud : public agent::CloudContextSource {
 public:
  explicit FixedCloud(std::string region) : region_(std::move(region)) {}
  agent::CloudContextInfo Context() override {
    agent::CloudContextInfo c;
    c.provider = "aws";
    c.account = "123456789012";
    c.region = region_;
    c.instance_type = "p5.48xlarge";
    c.source = "config";
    return c;
  }

 private:
  std::string region_;
};

// A CA, the agents' server certificate (localhost, 127.0.0.1) and the console's client identity
// spiffe://example.org/vendor/console, whose files go to dir/{ca.pem,console.pem,console.key}.
struct TestPki {
  agent::CertAndKey ca;
  agent::CertAndKey server;
};

inline Result<TestPki> MakeTestPki(const std::filesystem::path& dir) {
  TestPki pki;
  SEXTANT_ASSIGN_OR_RETURN(pki.ca, agent::CreateCa("test CA", 86400));
  agent::CertRequest srv;
  srv.common_name = "agent";
  srv.dns_sans = {"localhost"};
  srv.ip_sans = {"127.0.0.1"};
  srv.server = true;
  SEXTANT_ASSIGN_OR_RETURN(pki.server, agent::IssueCert(pki.ca, srv));
  agent::CertRequest cli;
  cli.common_name = "console";
  cli.uri_sans = {"spiffe://example.org/vendor/console"};
  cli.client = true;
  SEXTANT_ASSIGN_OR_RETURN(agent::CertAndKey console, agent::IssueCert(pki.ca, cli));
  SEXTANT_RETURN_IF_ERROR(agent::WriteTextFile(dir / "ca.pem", pki.ca.cert_pem, false));
  SEXTANT_RETURN_IF_ERROR(agent::WriteTextFile(dir / "console.pem", console.cert_pem, false));
  SEXTANT_RETURN_IF_ERROR(agent::WriteTextFile(dir / "console.key", console.key_pem, true));
  return pki;
}

}  // namespace sextant::test_agents
