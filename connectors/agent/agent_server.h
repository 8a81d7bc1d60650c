// AgentServer: the agent's gRPC service (sextant.v1.AgentService) over mutual TLS.
//
// - The listener requires and verifies a client certificate against the configured CA
//   (REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY; gRPC's TLS stack refuses versions below
//   TLS 1.2), and refuses in the handshake a certificate that the CA's revocation list names
//   (ReloadRevocations, on SIGHUP). A failed handshake never reaches a handler: the client sees
//   UNAVAILABLE. A verified certificate without a spiffe:// URI SAN: UNAUTHENTICATED.
// - Before any handler does anything, the call is authorized against the policy in force and
//   written to the audit log (identity, role, RPC, target, outcome; caller fields capped); if
//   the record cannot be written the call fails with INTERNAL and has no effect. Denied:
//   PERMISSION_DENIED naming the role and the RPC. Refused callers are audited up to a rate
//   (denied_records_*); beyond it they get RESOURCE_EXHAUSTED without a record of their own,
//   and one record says how many were refused meanwhile. Mutating RPCs (apply, delete,
//   validation) append an outcome record naming the admitting record (intent_seq); one that
//   never got it (kill -9) is marked "interrupted" when the agent starts again.
// - ApplyDeployment is two-party: the customer's own admission rule (options.admission:
//   an approval signed by a customer key, or an allow-list) must admit the spec digest, then
//   the signed validation report (console keys), then the model's sha256 in the agent's own
//   store ("not available" whatever failed; the cause goes to the customer's log and audit
//   detail). A refused apply changes nothing (the generation stays).
// - RunValidation answers match / mismatch per prompt against the digests the caller sends,
//   never a digest of the agent's own output; bounded per caller (prompt answers per hour) and
//   refused below a floor of validation tokens per prompt.
// - Every response is walked field by field (egress_fields.h) into the egress ledger under the
//   caller; fields that declare no egress class count as payload.
// - Compliance facts are measured where they can be: mutual TLS and the TLS version by
//   loopback handshakes against this listener, encryption at rest by what the state and model
//   directories sit on; each names its source, and says "unknown" (with why) when it cannot.
// - Handlers honour the caller's deadline and cancellation; watch streams end at the deadline
//   (or max_stream_ms) and at shutdown.
//
// Header free of gRPC so that callers (the agent's main) compile quickly.
// Thread-safety: Start/Shutdown/Wait from one thread; ReloadRevocations from any; handlers run
// on gRPC's threads and use only thread-safe dependencies.
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
#include "app/agent/policy/admission.h"
#include "app/agent/state/agent_health.h"
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
  // Declared in the config; reported as the fact storage.encryption_declared, never as the
  // measured storage.*.encrypted.
  bool encryption_at_rest = false;
  // Where the agent keeps its state: its encryption at rest is observed (empty: "unknown").
  std::filesystem::path state_dir;
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
  // The customer's rule for which specs may be applied (app/agent/policy/admission.h). Nothing
  // configured: every apply is refused, saying how to configure it. A key that does not parse
  // makes Start fail.
  agent::AdmissionConfig admission;
  // RunValidation bounds: a spec whose validation.maxTokens is below the floor is refused; each
  // caller gets at most `validation_answers_burst` prompt answers at once and
  // `validation_answers_per_hour` after that.
  int min_validation_tokens = 16;
  int validation_answers_burst = 64;
  int validation_answers_per_hour = 256;
  // Refused calls (PERMISSION_DENIED, UNAUTHENTICATED) recorded per caller: this many at once,
  // then this many per minute; the rest are counted and recorded as one summary.
  int denied_records_burst = 20;
  int denied_records_per_minute = 20;
  // The CA's revocation list(s), PEM; empty: none. One that does not parse or is not signed by
  // the CA makes Start fail.
  std::string crl_pem;
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
  agent::AgentHealth* health = nullptr;           // null: the server keeps its own
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

  // Replaces the revocation list (PEM CRLs, signed by the CA). On error the previous list stays
  // in force and the health condition "revocation_list" says why until a reload succeeds.
  Status ReloadRevocations(const std::string& crl_pem);

  struct Impl;

 private:
  explicit AgentServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The method names of sextant.v1.AgentService, from the generated descriptors.
std::set<std::string> AgentRpcNames();
// Sends gRPC's own log lines (a failed TLS handshake, ...) to the agent's JSON log as events
// "grpc" with severity, file, line and message, so every line the agent writes is JSON.
void RouteGrpcLogsToJsonLog();

// The methods whose outcome is a record of its own after the record that admitted them
// (AuditLog::RecordInterrupted marks those that never got one).
std::set<std::string> AgentOutcomeRpcNames();

}  // namespace sextant::rpc
