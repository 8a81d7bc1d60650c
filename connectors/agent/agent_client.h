// AgentClient: a small typed client of one agent's gRPC API (sextant.v1.AgentService) over
// mutual TLS, for the console and the tests.
//
//   AgentClientOptions o;
//   o.target = "10.0.0.5:7443";
//   o.ca_pem = ...; o.cert_pem = ...; o.key_pem = ...;   // or LoadClientIdentity(dir, stem)
//   auto client = AgentClient::Connect(o);
//   auto me = (*client)->WhoAmI();                        // Result<v1::WhoAmIResponse>
//
// Unary calls block the calling thread (never call them on a GUI thread) and carry a deadline
// (options.deadline unless one is given). Errors are sextant::Status with the gRPC code: an
// unreachable agent or a refused TLS handshake (untrusted CA, no or expired certificate) is
// UNAVAILABLE, a certificate without a spiffe ID UNAUTHENTICATED, a role without a rule
// PERMISSION_DENIED.
//
// Watch streams use gRPC's callback API: on_message runs on a gRPC thread for each message,
// then on_done once with the final status (OK, or DEADLINE_EXCEEDED / CANCELLED when the
// stream ended by deadline or Cancel() — both normal ends of a watch). The returned Watch must
// outlive the stream: its destructor cancels and waits for on_done.
//
// Thread-safety: an AgentClient is safe for concurrent calls from any number of threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "engine/base/status.h"
#include "sextant/v1/agent.pb.h"

namespace sextant::rpc {

struct AgentClientOptions {
  std::string target;  // host:port
  std::string ca_pem;  // CA that signed the agent's server certificate
  std::string cert_pem;
  std::string key_pem;
  // TLS server name to check instead of the host of target (e.g. "localhost").
  std::string server_name_override;
  std::chrono::milliseconds deadline{10000};  // default deadline of unary calls
};

// Reads <dir>/ca.pem, <dir>/<stem>.pem and <dir>/<stem>.key into options (as written by
// `sextant-agent certs init`, e.g. stem "vendor-operator").
Status LoadClientIdentity(const std::filesystem::path& dir, const std::string& stem,
                          AgentClientOptions* options);

class AgentClient {
 public:
  // Creates the channel; does not wait for a connection (the first call does).
  static Result<std::unique_ptr<AgentClient>> Connect(const AgentClientOptions& options);
  ~AgentClient();

  using Millis = std::chrono::milliseconds;

  Result<v1::WhoAmIResponse> WhoAmI(Millis deadline = Millis(0));
  Result<v1::AgentInfo> GetAgentInfo(Millis deadline = Millis(0));
  Result<v1::Inventory> GetInventory(Millis deadline = Millis(0));
  Result<v1::ApplyDeploymentResponse> ApplyDeployment(const v1::ApplyDeploymentRequest& request,
                                                      Millis deadline = Millis(0));
  Result<v1::Deployment> GetDeployment(const std::string& name, Millis deadline = Millis(0));
  Result<v1::ListDeploymentsResponse> ListDeployments(Millis deadline = Millis(0));
  Result<v1::DeleteDeploymentResponse> DeleteDeployment(const std::string& name,
                                                        int64_t if_generation = 0,
                                                        Millis deadline = Millis(0));
  // Validation runs the model: give it a generous deadline.
  Result<v1::RunValidationResponse> RunValidation(const v1::RunValidationRequest& request,
                                                  Millis deadline = Millis(0));
  Result<v1::ComplianceFacts> GetComplianceFacts(Millis deadline = Millis(0));
  Result<v1::ListAuditLogResponse> ListAuditLog(const v1::ListAuditLogRequest& request,
                                                Millis deadline = Millis(0));
  Result<v1::EgressLedger> GetEgressLedger(Millis deadline = Millis(0));

  class Watch {
   public:
    virtual ~Watch() = default;
    // Asks the stream to end; on_done follows with CANCELLED.
    virtual void Cancel() = 0;
    // Blocks until on_done has run; returns its status.
    virtual Status Wait() = 0;
  };

  // Streams run until `duration` (the call's deadline) passes or Cancel().
  std::unique_ptr<Watch> WatchInventory(int32_t interval_ms, Millis duration,
                                        std::function<void(const v1::Inventory&)> on_message,
                                        std::function<void(const Status&)> on_done = nullptr);
  std::unique_ptr<Watch> WatchMetrics(int32_t interval_ms, Millis duration,
                                      std::function<void(const v1::MetricsSnapshot&)> on_message,
                                      std::function<void(const Status&)> on_done = nullptr);

  struct Impl;

 private:
  explicit AgentClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sextant::rpc
