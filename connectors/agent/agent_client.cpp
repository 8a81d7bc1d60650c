// The one translation unit of the agent client that includes gRPC.
#include "connectors/agent/agent_client.h"

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <mutex>

#include "connectors/agent/identity_certs.h"
#include "connectors/grpc_status.h"
#include "sextant/v1/agent.grpc.pb.h"

namespace sextant::rpc {

struct AgentClient::Impl {
  AgentClientOptions options;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::AgentService::Stub> stub;

  void Prepare(grpc::ClientContext* ctx, Millis deadline) const {
    const Millis d = deadline.count() > 0 ? deadline : options.deadline;
    ctx->set_deadline(std::chrono::system_clock::now() + d);
  }

  template <typename Req, typename Resp, typename Method>
  Result<Resp> Unary(Method method, const Req& req, Millis deadline) {
    grpc::ClientContext ctx;
    Prepare(&ctx, deadline);
    Resp resp;
    const grpc::Status s = (stub.get()->*method)(&ctx, req, &resp);
    if (!s.ok()) return FromGrpcStatus(s);
    return resp;
  }
};

namespace {

template <typename Req, typename M>
class WatchReactor final : public grpc::ClientReadReactor<M>, public AgentClient::Watch {
 public:
  WatchReactor(std::function<void(const M&)> on_message, std::function<void(const Status&)> on_done)
      : on_message_(std::move(on_message)), on_done_(std::move(on_done)) {}

  ~WatchReactor() override {
    Cancel();
    (void)Wait();
  }

  grpc::ClientContext* context() { return &ctx_; }
  // The request must stay alive until the call has started; it lives here.
  Req* request() { return &req_; }

  void Begin() {
    this->StartRead(&msg_);
    this->StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    if (on_message_) on_message_(msg_);
    this->StartRead(&msg_);
  }

  void OnDone(const grpc::Status& s) override {
    const Status status = FromGrpcStatus(s);
    if (on_done_) on_done_(status);
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    status_ = status;
    cv_.notify_all();
  }

  void Cancel() override { ctx_.TryCancel(); }

  Status Wait() override {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_; });
    return status_;
  }

 private:
  grpc::ClientContext ctx_;
  Req req_;
  M msg_;
  std::function<void(const M&)> on_message_;
  std::function<void(const Status&)> on_done_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;  // GUARDED_BY(mu_)
  Status status_;      // GUARDED_BY(mu_)
};

}  // namespace

Status LoadClientIdentity(const std::filesystem::path& dir, const std::string& stem,
                          AgentClientOptions* options) {
  SEXTANT_ASSIGN_OR_RETURN(options->ca_pem, ReadTextFile(dir / "ca.pem"));
  SEXTANT_ASSIGN_OR_RETURN(options->cert_pem, ReadTextFile(dir / (stem + ".pem")));
  SEXTANT_ASSIGN_OR_RETURN(options->key_pem, ReadTextFile(dir / (stem + ".key")));
  return Status();
}

AgentClient::AgentClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AgentClient::~AgentClient() = default;

Result<std::unique_ptr<AgentClient>> AgentClient::Connect(const AgentClientOptions& options) {
  if (options.target.empty()) return Status::InvalidArgument("agent target (host:port) is empty");
  if (options.ca_pem.empty()) {
    return Status::InvalidArgument("a CA certificate is needed to verify the agent");
  }
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = options.ca_pem;
  ssl.pem_cert_chain = options.cert_pem;
  ssl.pem_private_key = options.key_pem;
  grpc::ChannelArguments args;
  if (!options.server_name_override.empty()) {
    args.SetSslTargetNameOverride(options.server_name_override);
  }
  // Retry soon after a refused handshake rather than backing off for seconds. The minimum is
  // also how long gRPC lets one connection attempt (TCP, then TLS) take: at 200 ms a busy host
  // fails healthy connections ("tcp handshaker shutdown"), so it stays at seconds.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 5000);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->channel = grpc::CreateCustomChannel(options.target, grpc::SslCredentials(ssl), args);
  impl->stub = v1::AgentService::NewStub(impl->channel);
  return std::unique_ptr<AgentClient>(new AgentClient(std::move(impl)));
}

Result<v1::WhoAmIResponse> AgentClient::WhoAmI(Millis deadline) {
  return impl_->Unary<v1::WhoAmIRequest, v1::WhoAmIResponse>(&v1::AgentService::Stub::WhoAmI,
                                                             v1::WhoAmIRequest(), deadline);
}

Result<v1::AgentInfo> AgentClient::GetAgentInfo(Millis deadline) {
  return impl_->Unary<v1::GetAgentInfoRequest, v1::AgentInfo>(&v1::AgentService::Stub::GetAgentInfo,
                                                              v1::GetAgentInfoRequest(), deadline);
}

Result<v1::Inventory> AgentClient::GetInventory(Millis deadline) {
  return impl_->Unary<v1::GetInventoryRequest, v1::Inventory>(&v1::AgentService::Stub::GetInventory,
                                                              v1::GetInventoryRequest(), deadline);
}

Result<v1::ApplyDeploymentResponse> AgentClient::ApplyDeployment(
    const v1::ApplyDeploymentRequest& request, Millis deadline) {
  return impl_->Unary<v1::ApplyDeploymentRequest, v1::ApplyDeploymentResponse>(
      &v1::AgentService::Stub::ApplyDeployment, request, deadline);
}

Result<v1::Deployment> AgentClient::GetDeployment(const std::string& name, Millis deadline) {
  v1::GetDeploymentRequest req;
  req.set_name(name);
  return impl_->Unary<v1::GetDeploymentRequest, v1::Deployment>(
      &v1::AgentService::Stub::GetDeployment, req, deadline);
}

Result<v1::ListDeploymentsResponse> AgentClient::ListDeployments(Millis deadline) {
  return impl_->Unary<v1::ListDeploymentsRequest, v1::ListDeploymentsResponse>(
      &v1::AgentService::Stub::ListDeployments, v1::ListDeploymentsRequest(), deadline);
}

Result<v1::DeleteDeploymentResponse> AgentClient::DeleteDeployment(const std::string& name,
                                                                   int64_t if_generation,
                                                                   Millis deadline) {
  v1::DeleteDeploymentRequest req;
  req.set_name(name);
  req.set_if_generation(if_generation);
  return impl_->Unary<v1::DeleteDeploymentRequest, v1::DeleteDeploymentResponse>(
      &v1::AgentService::Stub::DeleteDeployment, req, deadline);
}

Result<v1::RunValidationResponse> AgentClient::RunValidation(
    const v1::RunValidationRequest& request, Millis deadline) {
  return impl_->Unary<v1::RunValidationRequest, v1::RunValidationResponse>(
      &v1::AgentService::Stub::RunValidation, request, deadline);
}

Result<v1::ComplianceFacts> AgentClient::GetComplianceFacts(Millis deadline) {
  return impl_->Unary<v1::GetComplianceFactsRequest, v1::ComplianceFacts>(
      &v1::AgentService::Stub::GetComplianceFacts, v1::GetComplianceFactsRequest(), deadline);
}

Result<v1::ListAuditLogResponse> AgentClient::ListAuditLog(const v1::ListAuditLogRequest& request,
                                                           Millis deadline) {
  return impl_->Unary<v1::ListAuditLogRequest, v1::ListAuditLogResponse>(
      &v1::AgentService::Stub::ListAuditLog, request, deadline);
}

Result<v1::EgressLedger> AgentClient::GetEgressLedger(Millis deadline) {
  return impl_->Unary<v1::GetEgressLedgerRequest, v1::EgressLedger>(
      &v1::AgentService::Stub::GetEgressLedger, v1::GetEgressLedgerRequest(), deadline);
}

std::unique_ptr<AgentClient::Watch> AgentClient::WatchInventory(
    int32_t interval_ms, Millis duration, std::function<void(const v1::Inventory&)> on_message,
    std::function<void(const Status&)> on_done) {
  auto reactor = std::make_unique<WatchReactor<v1::WatchInventoryRequest, v1::Inventory>>(
      std::move(on_message), std::move(on_done));
  reactor->context()->set_deadline(std::chrono::system_clock::now() + duration);
  reactor->request()->set_interval_ms(interval_ms);
  impl_->stub->async()->WatchInventory(reactor->context(), reactor->request(), reactor.get());
  reactor->Begin();
  return reactor;
}

std::unique_ptr<AgentClient::Watch> AgentClient::WatchMetrics(
    int32_t interval_ms, Millis duration,
    std::function<void(const v1::MetricsSnapshot&)> on_message,
    std::function<void(const Status&)> on_done) {
  auto reactor = std::make_unique<WatchReactor<v1::WatchMetricsRequest, v1::MetricsSnapshot>>(
      std::move(on_message), std::move(on_done));
  reactor->context()->set_deadline(std::chrono::system_clock::now() + duration);
  reactor->request()->set_interval_ms(interval_ms);
  impl_->stub->async()->WatchMetrics(reactor->context(), reactor->request(), reactor.get());
  reactor->Begin();
  return reactor;
}

}  // namespace sextant::rpc
