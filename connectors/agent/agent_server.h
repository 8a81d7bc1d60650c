// AgentServer: the agent's gRPC service (sextant.v1.AgentService) over mutual TLS.
//
// - The listener requires and verifies a client certificate against the configured CA
//   (GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY; gRPC's TLS stack refuses
//   versions below TLS 1.2). A failed handshake never reaches a handler: the client sees
//   UNAVAILABLE. A verified certificate without a spiffe:// URI SAN: UNAUTHENTICATED.
// - Before any handler does anything, the call is authorized against the policy in force and
//   written to the audit log (identity, role, RPC, target, outcome); if the record cannot be
//   written the call fails with INTERNAL and has no effect. Denied: PERMISSION_DENIED naming
//   the role and the RPC. Mutating RPCs append a second record with their result.
// - ApplyDeployment checks trust before the change is durable: the signed validation report
//   against the customer's console keys, then the model's sha256 in the agent's own store.
//   A refused apply changes nothing (the generation stays).
// - Every response's serialized size is counted in the egress ledger under the caller.
// - Handlers honour the caller's deadline and cancellation; watch streams end at the deadline
//   (or max_stream_ms) and at shutdown.
//
// Header free of gRPC so that callers (the agent's main) compile quickly.
// Thread-safety: Start/Shutdown/Wait from one thread; handlers run on gRPC's threads and use
// only thread-safe dependencies.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "app/agent/audit/audit_log.h"
#include "app/agent/audit/egress_ledger.h"
#include "app/agent/policy/access_policy.h"
#include "app/agent/state/desired_state.h"
#include "app/agent/state/sources.h"
#include "engine/base/status.h"

namespace sextant::rpc {

struct AgentServerOptions {
  std::string listen = "127.0.0.1:0";  // host:port; port 0 picks a free one
  std::string ca_pem;                  // trusted CA(s) for client certificates
  std::string cert_pem;                // server certificate chain
  std::string key_pem;                 // server private key
  std::string agent_name;
  bool encryption_at_rest = false;  // declared in the config; reported as a fact
  int64_t max_stream_ms = 3600000;  // longest a watch stream stays open
  // Ed25519 public keys (PEM) of the consoles the customer trusts (config `console_keys:`).
  // Non-empty: ApplyDeployment requires a signed validation report that verifies under one of
  // them, passed, for the request's spec digest and model sha256. Empty: the report is
  // optional (reported as the fact deploy.report_required=false). A key that does not parse
  // makes Start fail.
  std::vector<std::string> console_keys_pem;
  // The agent's own model store (a directory or file:// URI). Non-empty: ApplyDeployment
  // refuses, before anything is durable, a model that is not in it or whose sha256 differs
  // from the request's. Empty: no store check (control-API tests without models only).
  std::filesystem::path model_store;
};

// Borrowed; each must outlive the server. Optional ones may be null.
struct AgentServerDeps {
  agent::DesiredState* state = nullptr;           // required
  agent::AuditLog* audit = nullptr;               // required
  agent::PolicyHolder* policy = nullptr;          // required
  agent::EgressLedger* egress = nullptr;          // required
  agent::InventorySource* inventory = nullptr;    // null: the CPU from /proc
  agent::CloudContextSource* cloud = nullptr;     // null: "on-prem"
  agent::DeploymentObserver* observer = nullptr;  // null: status Pending, no metrics
  agent::ValidationRunner* validation = nullptr;  // null: RunValidation is UNIMPLEMENTED
};

class AgentServer {
 public:
  static Result<std::unique_ptr<AgentServer>> Start(const AgentServerOptions& options,
                                                    const AgentServerDeps& deps);
  ~AgentServer();  // shuts down with no grace if still running

  // The bound port (useful with port 0).
  int port() const;
  // Stops accepting calls, ends watch streams, lets in-flight calls finish within grace, then
  // cancels what remains. Idempotent.
  void Shutdown(std::chrono::milliseconds grace);
  // Blocks until the server has shut down.
  void Wait();

  struct Impl;

 private:
  explicit AgentServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The method names of sextant.v1.AgentService, from the generated descriptors.
std::set<std::string> AgentRpcNames();

}  // namespace sextant::rpc
