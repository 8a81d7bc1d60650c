// The one translation unit of the agent's gRPC server (gRPC headers are slow to compile).
#include "connectors/agent/agent_server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <thread>

#include "app/agent/config/json_log.h"
#include "app/agent/state/cpu_inventory.h"
#include "app/agent/state/model_store.h"
#include "app/common/signing.h"
#include "connectors/agent/bind_check.h"
#include "connectors/agent/identity_certs.h"
#include "connectors/grpc_status.h"
#include "engine/base/build_info.h"
#include "sextant/v1/agent.grpc.pb.h"

namespace sextant::rpc {

namespace {

namespace v1 = ::sextant::v1;
using Clock = std::chrono::system_clock;

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
      .count();
}

std::string Rfc3339(int64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void FillCloud(const agent::CloudContextInfo& in, v1::CloudContext* out) {
  out->set_provider(in.provider);
  out->set_account(in.account);
  out->set_region(in.region);
  out->set_zone(in.zone);
  out->set_instance_type(in.instance_type);
  out->set_spot(in.spot);
  out->set_source(in.source);
}

void FillDevice(const agent::DeviceInfo& in, v1::Device* out) {
  out->set_id(in.id);
  out->set_kind(in.kind);
  out->set_model(in.model);
  out->set_uuid(in.uuid);
  out->set_memory_total_bytes(in.memory_total_bytes);
  out->set_memory_used_bytes(in.memory_used_bytes);
  out->set_utilization(in.utilization);
  out->set_temperature_c(in.temperature_c);
  out->set_power_w(in.power_w);
  out->set_cores(in.cores);
  out->set_driver(in.driver);
}

void FillInventory(const agent::InventoryInfo& in, v1::Inventory* out) {
  out->set_node(in.node);
  out->set_source(in.source);
  out->set_observed_at_unix_ms(in.observed_at_unix_ms);
  for (const auto& d : in.devices) FillDevice(d, out->add_devices());
}

void FillHistogram(const agent::HistogramInfo& in, v1::Histogram* out) {
  for (double b : in.upper_bounds) out->add_upper_bounds(b);
  for (int64_t c : in.counts) out->add_counts(c);
  out->set_sum(in.sum);
  out->set_count(in.count);
}

void FillSpecRef(const agent::DeploymentRecord& r, v1::DeploymentSpecRef* out) {
  out->set_name(r.name);
  out->set_spec_json(r.spec_json);
  out->set_spec_digest(r.spec_digest);
  out->set_model_uri(r.model_uri);
  out->set_model_sha256(r.model_sha256);
}

std::string CodeName(grpc::StatusCode code) {
  return std::string(StatusCodeName(static_cast<StatusCode>(code)));
}

class AgentServiceImpl;

}  // namespace

struct AgentServer::Impl {
  AgentServerOptions options;
  AgentServerDeps deps;
  agent::CpuInventorySource cpu_inventory;
  agent::StaticCloudContextSource default_cloud{agent::CloudContextInfo{}};
  std::unique_ptr<AgentServiceImpl> service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  int64_t started_at_unix_ms = NowUnixMs();
  std::vector<report::VerifyingKey> console_keys;  // from options.console_keys_pem
  std::unique_ptr<agent::ModelStore> model_store;  // null: options.model_store empty
  int64_t cert_not_after_unix = 0;                 // of the server certificate

  std::mutex mu;
  std::condition_variable cv;
  bool shutting_down = false;  // GUARDED_BY(mu)
  std::once_flag shutdown_once;

  agent::InventorySource& inventory() { return deps.inventory ? *deps.inventory : cpu_inventory; }
  agent::CloudContextSource& cloud() { return deps.cloud ? *deps.cloud : default_cloud; }

  // Sleeps until `until`, shutdown, or cancellation (polled). Returns false when the stream
  // must end (shutdown or cancellation).
  bool WaitUntil(grpc::ServerContext* ctx, Clock::time_point until) {
    std::unique_lock<std::mutex> lock(mu);
    while (!shutting_down && !ctx->IsCancelled()) {
      const auto now = Clock::now();
      if (now >= until) return true;
      cv.wait_for(lock, std::min<Clock::duration>(until - now, std::chrono::milliseconds(200)));
    }
    return false;
  }
};

namespace {

struct Caller {
  std::string identity;
  std::string role;
};

class AgentServiceImpl final : public v1::AgentService::Service {
 public:
  explicit AgentServiceImpl(AgentServer::Impl* impl) : impl_(impl) {}

  grpc::Status WhoAmI(grpc::ServerContext* ctx, const v1::WhoAmIRequest*,
                      v1::WhoAmIResponse* resp) override {
    Caller c;
    if (auto s = Admit(ctx, "WhoAmI", "", &c); !s.ok()) return s;
    resp->set_identity(c.identity);
    resp->set_role(c.role);
    auto policy = impl_->deps.policy->Get();
    if (const agent::RoleRule* rule = policy->Role(c.role)) {
      for (const auto& r : rule->rpcs) resp->add_allowed_rpcs(r);
      resp->set_audit_scope(rule->audit_scope);
    }
    return Reply(c, "WhoAmI", "identity", *resp);
  }

  grpc::Status GetAgentInfo(grpc::ServerContext* ctx, const v1::GetAgentInfoRequest*,
                            v1::AgentInfo* resp) override {
    Caller c;
    if (auto s = Admit(ctx, "GetAgentInfo", "", &c); !s.ok()) return s;
    const BuildInfo& info = GetBuildInfo();
    resp->set_version(info.version);
    resp->set_build_id(info.BuildId());
    for (const auto& b : info.backends) resp->add_backends(b);
    FillCloud(impl_->cloud().Context(), resp->mutable_cloud());
    resp->set_agent_name(impl_->options.agent_name);
    resp->set_started_at_unix_ms(impl_->started_at_unix_ms);
    resp->set_policy_digest("sha256:" + impl_->deps.policy->Get()->digest());
    resp->set_policy_loaded_at_unix_ms(impl_->deps.policy->loaded_at_unix_ms());
    return Reply(c, "GetAgentInfo", "telemetry", *resp);
  }

  grpc::Status GetInventory(grpc::ServerContext* ctx, const v1::GetInventoryRequest*,
                            v1::Inventory* resp) override {
    Caller c;
    if (auto s = Admit(ctx, "GetInventory", "", &c); !s.ok()) return s;
    FillInventory(impl_->inventory().Snapshot(), resp);
    return Reply(c, "GetInventory", "telemetry", *resp);
  }

  grpc::Status WatchInventory(grpc::ServerContext* ctx, const v1::WatchInventoryRequest* req,
                              grpc::ServerWriter<v1::Inventory>* writer) override {
    Caller c;
    if (auto s = Admit(ctx, "WatchInventory", "", &c); !s.ok()) return s;
    return Watch(ctx, c, "WatchInventory", req->interval_ms(), [&]() {
      v1::Inventory inv;
      FillInventory(impl_->inventory().Snapshot(), &inv);
      return WriteCounted(c, "WatchInventory", writer, inv);
    });
  }

  grpc::Status ApplyDeployment(grpc::ServerContext* ctx, const v1::ApplyDeploymentRequest* req,
                               v1::ApplyDeploymentResponse* resp) override {
    Caller c;
    const auto& spec = req->spec();
    if (auto s = Admit(ctx, "ApplyDeployment", spec.name(), &c); !s.ok()) return s;
    if (Status trust = CheckApplyTrust(*req); !trust.ok()) {
      agent::LogEvent(spdlog::level::warn, "deployment_refused",
                      {{"name", spec.name()},
                       {"spec_digest", spec.spec_digest()},
                       {"by", c.identity},
                       {"error", trust.message()}});
      return Finish(c, "ApplyDeployment", spec.name(), trust);
    }
    agent::ApplyRequest a;
    a.name = spec.name();
    a.spec_json = spec.spec_json();
    a.spec_digest = spec.spec_digest();
    a.model_uri = spec.model_uri();
    a.model_sha256 = spec.model_sha256();
    a.applied_by = c.identity;
    a.if_generation = req->if_generation();
    a.require_absent = req->require_absent();
    auto result = impl_->deps.state->Apply(a);
    if (!result.ok()) return Finish(c, "ApplyDeployment", spec.name(), result.status());
    resp->set_name(result->record.name);
    resp->set_generation(result->record.generation);
    resp->set_changed(result->changed);
    resp->set_spec_digest(result->record.spec_digest);
    agent::LogEvent(spdlog::level::info, "deployment_applied",
                    {{"name", a.name},
                     {"generation", result->record.generation},
                     {"changed", result->changed},
                     {"spec_digest", result->record.spec_digest},
                     {"by", c.identity}});
    (void)Finish(c, "ApplyDeployment", spec.name(), Status());
    return Reply(c, "ApplyDeployment", "control", *resp);
  }

  grpc::Status GetDeployment(grpc::ServerContext* ctx, const v1::GetDeploymentRequest* req,
                             v1::Deployment* resp) override {
    Caller c;
    if (auto s = Admit(ctx, "GetDeployment", req->name(), &c); !s.ok()) return s;
    auto rec = impl_->deps.state->Get(req->name());
    if (!rec.ok()) return ToGrpcStatus(rec.status());
    FillDeployment(*rec, resp);
    return Reply(c, "GetDeployment", "control", *resp);
  }

  grpc::Status ListDeployments(grpc::ServerContext* ctx, const v1::ListDeploymentsRequest*,
                               v1::ListDeploymentsResponse* resp) override {
    Caller c;
    if (auto s = Admit(ctx, "ListDeployments", "", &c); !s.ok()) return s;
    auto list = impl_->deps.state->List();
    if (!list.ok()) return ToGrpcStatus(list.status());
    for (const auto& r : *list) FillDeployment(r, resp->add_deployments());
    return Reply(c, "ListDeployments", "control", *resp);
  }

  grpc::Status DeleteDeployment(grpc::ServerContext* ctx, const v1::DeleteDeploymentRequest* req,
                                v1::DeleteDeploymentResponse* resp) override {
    Caller c;
    if (auto s = Admit(ctx, "DeleteDeployment", req->name(), &c); !s.ok()) return s;
    auto last = impl_->deps.state->Delete(req->name(), req->if_generation());
    if (!last.ok()) return Finish(c, "DeleteDeployment", req->name(), last.status());
    resp->set_name(last->name);
    resp->set_last_generation(last->generation);
    agent::LogEvent(spdlog::level::info, "deployment_deleted",
                    {{"name", last->name}, {"generation", last->generation}, {"by", c.identity}});
    (void)Finish(c, "DeleteDeployment", req->name(), Status());
    return Reply(c, "DeleteDeployment", "control", *resp);
  }

  grpc::Status WatchMetrics(grpc::ServerContext* ctx, const v1::WatchMetricsRequest* req,
                            grpc::ServerWriter<v1::MetricsSnapshot>* writer) override {
    Caller c;
    if (auto s = Admit(ctx, "WatchMetrics", "", &c); !s.ok()) return s;
    int64_t last_event_ms = 0;  // the newest scaling event this stream has sent
    return Watch(ctx, c, "WatchMetrics", req->interval_ms(), [&]() {
      v1::MetricsSnapshot snap;
      snap.set_observed_at_unix_ms(NowUnixMs());
      if (impl_->deps.observer) {
        for (const auto& m : impl_->deps.observer->Metrics()) {
          auto* d = snap.add_deployments();
          d->set_name(m.name);
          d->set_requests_total(m.requests_total);
          d->set_prompt_tokens_total(m.prompt_tokens_total);
          d->set_generated_tokens_total(m.generated_tokens_total);
          d->set_queue_depth(m.queue_depth);
          d->set_kv_cache_use(m.kv_cache_use);
          d->set_tokens_per_second(m.tokens_per_second);
          FillHistogram(m.ttft_seconds, d->mutable_ttft_seconds());
          FillHistogram(m.inter_token_seconds, d->mutable_inter_token_seconds());
          d->set_replicas_ready(m.replicas_ready);
          d->set_rejected_total(m.rejected_total);
          d->set_replicas_desired(m.replicas_desired);
          d->set_replicas_pending(m.replicas_pending);
          d->set_pending_reason(m.pending_reason);
          d->set_in_flight(m.in_flight);
        }
        // Scaling decisions since the previous snapshot of this stream (the first snapshot
        // carries what the observer still keeps).
        for (const auto& e : impl_->deps.observer->ScalingEventsSince(last_event_ms)) {
          auto* out = snap.add_scaling_events();
          out->set_deployment(e.deployment);
          out->set_from_replicas(e.from_replicas);
          out->set_to_replicas(e.to_replicas);
          out->set_reason(e.reason);
          out->set_at_unix_ms(e.at_unix_ms);
          out->set_queue_depth(e.queue_depth);
          out->set_in_flight(e.in_flight);
          last_event_ms = std::max(last_event_ms, e.at_unix_ms);
        }
      }
      for (const auto& dev : impl_->inventory().Snapshot().devices) {
        FillDevice(dev, snap.add_devices());
      }
      return WriteCounted(c, "WatchMetrics", writer, snap);
    });
  }

  grpc::Status RunValidation(grpc::ServerContext* ctx, const v1::RunValidationRequest* req,
                             v1::RunValidationResponse* resp) override {
    Caller c;
    if (auto s = Admit(ctx, "RunValidation", req->name(), &c); !s.ok()) return s;
    auto rec = impl_->deps.state->Get(req->name());
    if (!rec.ok()) return Finish(c, "RunValidation", req->name(), rec.status());
    if (req->generation() != 0 && req->generation() != rec->generation) {
      return Finish(
          c, "RunValidation", req->name(),
          Status::FailedPrecondition("deployment '" + req->name() + "' is at generation " +
                                     std::to_string(rec->generation) + ", not " +
                                     std::to_string(req->generation())));
    }
    if (!impl_->deps.validation) {
      return Finish(c, "RunValidation", req->name(),
                    Status::Unimplemented("this agent has no validation runner: it cannot run "
                                          "validation prompts"));
    }
    auto run = impl_->deps.validation->Run(*rec, [ctx] { return ctx->IsCancelled(); });
    if (!run.ok()) return Finish(c, "RunValidation", req->name(), run.status());
    resp->set_name(rec->name);
    resp->set_generation(rec->generation);
    resp->set_spec_digest(rec->spec_digest);
    resp->set_model_sha256(run->model_sha256);
    resp->set_engine_build_id(run->engine_build_id);
    resp->set_backend(run->backend);
    resp->set_peak_memory_bytes(run->peak_memory_bytes);
    for (const auto& p : run->prompts) {
      auto* out = resp->add_prompts();
      out->set_index(p.index);
      out->set_prompt_digest(p.prompt_digest);
      out->set_output_tokens_digest(p.output_tokens_digest);
      out->set_prompt_tokens(p.prompt_tokens);
      out->set_generated_tokens(p.generated_tokens);
      out->set_ttft_ms(p.ttft_ms);
      out->set_decode_tokens_per_second(p.decode_tokens_per_second);
      out->set_stopped_at_eos(p.stopped_at_eos);
      out->set_inter_token_ms(p.inter_token_ms);
    }
    resp->set_output_digest(run->output_digest);
    resp->set_device(run->device);
    resp->set_threads(run->threads);
    (void)Finish(c, "RunValidation", req->name(), Status());
    return Reply(c, "RunValidation", "validation-digest", *resp);
  }

  grpc::Status GetComplianceFacts(grpc::ServerContext* ctx, const v1::GetComplianceFactsRequest*,
                                  v1::ComplianceFacts* resp) override {
    Caller c;
    if (auto s = Admit(ctx, "GetComplianceFacts", "", &c); !s.ok()) return s;
    const agent::CloudContextInfo cloud = impl_->cloud().Context();
    FillCloud(cloud, resp->mutable_cloud());
    resp->set_mtls_required(true);
    resp->set_tls_min_version("TLS1.2");
    auto verify = impl_->deps.audit->Verify();
    if (!verify.ok()) return ToGrpcStatus(verify.status());
    resp->set_audit_chain_intact(verify->intact);
    resp->set_audit_records(verify->records);
    resp->set_audit_head_hash(verify->head_hash);
    auto policy = impl_->deps.policy->Get();
    resp->set_policy_digest("sha256:" + policy->digest());
    for (const auto& id : policy->identities()) {
      if (id.role.rfind("vendor", 0) != 0) continue;
      auto* scope = resp->add_vendor_scope();
      scope->set_identity_pattern(id.match + (id.prefix && id.match.back() != '/' ? "*" : ""));
      scope->set_role(id.role);
      if (const agent::RoleRule* rule = policy->Role(id.role)) {
        for (const auto& r : rule->rpcs) scope->add_rpcs(r);
      }
    }
    resp->set_engine_build_id(GetBuildInfo().BuildId());
    auto list = impl_->deps.state->List();
    if (!list.ok()) return ToGrpcStatus(list.status());
    for (const auto& r : *list) {
      auto* d = resp->add_deployments();
      d->set_name(r.name);
      d->set_generation(r.generation);
      d->set_spec_digest(r.spec_digest);
      d->set_model_sha256(r.model_sha256);
    }
    const auto vendor = impl_->deps.egress->VendorBytesByKind();
    const int64_t payload = vendor.count("payload") ? vendor.at("payload") : 0;
    resp->set_payload_bytes_to_vendor(payload);
    resp->set_encryption_at_rest(impl_->options.encryption_at_rest);
    resp->set_observed_at_unix_ms(NowUnixMs());
    auto fact = [&](const std::string& name, const std::string& value, const std::string& ev) {
      auto* f = resp->add_facts();
      f->set_name(name);
      f->set_value(value);
      f->set_evidence(ev);
    };
    fact("transport.mtls", "true", "listener requires and verifies client certificates");
    fact("transport.tls_min_version", "TLS1.2", "gRPC TLS stack minimum");
    fact("audit.chain_intact", verify->intact ? "true" : "false",
         verify->intact ? "verified " + std::to_string(verify->records) + " records"
                        : verify->reason);
    fact("audit.head_hash", verify->head_hash, "seq " + std::to_string(verify->head_seq));
    fact("residency.provider", cloud.provider, "cloud context source: " + cloud.source);
    fact("residency.region", cloud.region, "cloud context source: " + cloud.source);
    fact("storage.encryption_at_rest", impl_->options.encryption_at_rest ? "true" : "false",
         "declared in the agent config");
    fact("egress.payload_bytes_to_vendor", std::to_string(payload),
         "egress ledger since " + std::to_string(impl_->deps.egress->since_unix_ms()));
    fact("policy.digest", "sha256:" + policy->digest(), policy->source());
    fact("engine.build_id", GetBuildInfo().BuildId(), "this agent binary");
    {
      const int64_t not_after = impl_->cert_not_after_unix;
      const int64_t days_left = (not_after - NowUnixMs() / 1000) / 86400;
      fact("tls.cert_expires_at", Rfc3339(not_after),
           std::to_string(days_left) + " days left (the agent's gRPC server certificate)");
      fact("tls.cert_days_left", std::to_string(days_left),
           "notAfter " + Rfc3339(not_after) + " of the agent's gRPC server certificate");
    }
    fact("model_store.encrypted", impl_->options.encryption_at_rest ? "true" : "false",
         "encryption_at_rest declared in the agent config (model store and state volume)");
    fact("egress.policy", "digests-and-figures",
         "the control API returns digests, figures and metadata only; prompts, outputs and "
         "model bytes never leave (payload bytes to vendor: " +
             std::to_string(payload) + ")");
    {
      std::string ids;
      for (const auto& k : impl_->console_keys) ids += (ids.empty() ? "" : ",") + k.key_id();
      fact("deploy.console_keys", std::to_string(impl_->console_keys.size()),
           ids.empty() ? "no trusted console keys configured" : "key ids " + ids);
      fact("deploy.report_required", impl_->console_keys.empty() ? "false" : "true",
           impl_->console_keys.empty()
               ? "warning: no console_keys configured; applies need no signed validation report"
               : "applies need a passing validation report signed by a trusted console key");
      fact("deploy.model_store_check", impl_->model_store ? "true" : "false",
           impl_->model_store ? "applies are refused unless the model's sha256 matches this "
                                "agent's own store"
                              : "no model store configured for the control API");
    }
    return Reply(c, "GetComplianceFacts", "compliance", *resp);
  }

  grpc::Status ListAuditLog(grpc::ServerContext* ctx, const v1::ListAuditLogRequest* req,
                            v1::ListAuditLogResponse* resp) override {
    Caller c;
    if (auto s = Admit(ctx, "ListAuditLog", req->identity(), &c); !s.ok()) return s;
    auto policy = impl_->deps.policy->Get();
    const agent::RoleRule* rule = policy->Role(c.role);
    const std::string scope = rule ? rule->audit_scope : "own";
    agent::AuditQuery q;
    q.after_seq = std::max<int64_t>(0, req->after_seq());
    q.limit = req->page_size() <= 0 ? 100 : std::min(req->page_size(), 1000);
    q.rpc = req->rpc();
    q.identity = req->identity();
    if (scope != "all") {
      if (!q.identity.empty() && q.identity != c.identity) {
        return grpc::Status(
            grpc::StatusCode::PERMISSION_DENIED,
            "role " + c.role + " may read only its own audit records (" + c.identity + ")");
      }
      q.identity = c.identity;
    }
    auto records = impl_->deps.audit->Query(q);
    if (!records.ok()) return ToGrpcStatus(records.status());
    for (const auto& r : *records) {
      auto* out = resp->add_records();
      out->set_seq(r.seq);
      out->set_time(r.time);
      out->set_identity(r.entry.identity);
      out->set_role(r.entry.role);
      out->set_rpc(r.entry.rpc);
      out->set_target(r.entry.target);
      out->set_outcome(r.entry.outcome);
      out->set_prev_hash(r.prev_hash);
      out->set_hash(r.hash);
      out->set_canonical(r.Canonical());
    }
    if (static_cast<int>(records->size()) == q.limit && !records->empty()) {
      resp->set_next_after_seq(records->back().seq);
    }
    auto verify = impl_->deps.audit->Verify();
    if (!verify.ok()) return ToGrpcStatus(verify.status());
    auto* head = resp->mutable_head();
    head->set_seq(verify->head_seq);
    head->set_hash(verify->head_hash);
    head->set_verified(verify->intact);
    head->set_first_broken_seq(verify->first_broken_seq);
    head->set_broken_reason(verify->reason);
    resp->set_scope(scope);
    return Reply(c, "ListAuditLog", "audit", *resp);
  }

  grpc::Status GetEgressLedger(grpc::ServerContext* ctx, const v1::GetEgressLedgerRequest*,
                               v1::EgressLedger* resp) override {
    Caller c;
    if (auto s = Admit(ctx, "GetEgressLedger", "", &c); !s.ok()) return s;
    for (const auto& row : impl_->deps.egress->Rows()) {
      auto* e = resp->add_entries();
      e->set_identity(row.identity);
      e->set_role(row.role);
      e->set_rpc(row.rpc);
      e->set_kind(row.kind);
      e->set_messages(row.messages);
      e->set_bytes(row.bytes);
    }
    for (const auto& [kind, bytes] : impl_->deps.egress->VendorBytesByKind()) {
      (*resp->mutable_vendor_bytes_by_kind())[kind] = bytes;
    }
    resp->set_payload_bytes_to_vendor(resp->vendor_bytes_by_kind().at("payload"));
    resp->set_since_unix_ms(impl_->deps.egress->since_unix_ms());
    return Reply(c, "GetEgressLedger", "audit", *resp);
  }

 private:
  // What the customer's trust settings require of an apply, checked before anything is
  // durable: a report signed by a trusted console key that passed, for this spec and model
  // (when console keys are configured), and the model in this agent's own store with the
  // sha256 the request names (when a store is configured).
  Status CheckApplyTrust(const v1::ApplyDeploymentRequest& req) {
    const auto& spec = req.spec();
    std::string model_uri = spec.model_uri();
    std::string model_sha = spec.model_sha256();
    if (!impl_->console_keys.empty()) {
      if (req.signed_report_json().empty()) {
        return Status::PermissionDenied(
            "report signature not from a trusted console key: the apply carries no signed "
            "validation report, and this agent requires one");
      }
      const nlohmann::json j = nlohmann::json::parse(req.signed_report_json(), nullptr, false);
      if (j.is_discarded() || !j.is_object()) {
        return Status::InvalidArgument("signed_report_json: not a JSON object");
      }
      auto signed_report = report::SignedReportFromJson(j);
      if (!signed_report.ok()) {
        return signed_report.status().WithContext("signed_report_json");
      }
      Result<report::ValidationReport> verified = Status::PermissionDenied(
          "report signature not from a trusted console key (key id " + signed_report->key_id +
          " is not one of this agent's " + std::to_string(impl_->console_keys.size()) + ")");
      for (const auto& key : impl_->console_keys) {
        if (key.key_id() != signed_report->key_id) continue;
        verified = report::VerifySignedReport(*signed_report, key);
        if (!verified.ok()) {
          verified = Status::PermissionDenied("report signature not from a trusted console key: " +
                                              verified.status().message());
        }
        break;
      }
      if (!verified.ok()) return verified.status();
      if (!verified->passed) {
        std::string why;
        for (const auto& f : verified->failures) why += (why.empty() ? "" : "; ") + f;
        return Status::FailedPrecondition("report did not pass" + (why.empty() ? "" : ": " + why));
      }
      const std::string want_spec = BareHex(spec.spec_digest());
      if (verified->spec_digest != want_spec) {
        return Status::FailedPrecondition("report is for spec sha256:" + verified->spec_digest +
                                          ", not sha256:" + want_spec);
      }
      // The report names the model; the request may leave it to the spec.
      if (model_sha.empty()) model_sha = verified->model_sha256;
      if (model_uri.empty()) model_uri = verified->model_uri;
      if (BareHex(model_sha) != verified->model_sha256) {
        return Status::FailedPrecondition("report is for model sha256:" + verified->model_sha256 +
                                          ", not sha256:" + BareHex(model_sha));
      }
    }
    if (impl_->model_store) {
      if (model_uri.empty() || model_sha.empty()) {
        return Status::InvalidArgument(
            "spec.model_uri and spec.model_sha256 are required: the model is checked in this "
            "agent's store before the apply");
      }
      auto verified = impl_->model_store->Verify(model_uri, model_sha);
      if (!verified.ok()) return verified.status();
    }
    return Status();
  }

  static std::string BareHex(std::string digest) {
    if (digest.rfind("sha256:", 0) == 0) digest = digest.substr(7);
    std::transform(digest.begin(), digest.end(), digest.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    return digest;
  }

  // Identity, authorization and the audit record, before anything else happens.
  grpc::Status Admit(grpc::ServerContext* ctx, const char* rpc, const std::string& target,
                     Caller* caller) {
    std::string identity;
    const auto auth = ctx->auth_context();
    if (auth) {
      for (const auto& pem : auth->FindPropertyValues("x509_pem_cert")) {
        auto id = SpiffeIdOfPem(std::string(pem.data(), pem.size()));
        if (id.ok() && !id->empty()) {
          identity = *id;
          break;
        }
      }
    }
    if (identity.empty()) {
      std::string cn;
      if (auth) {
        for (const auto& v : auth->FindPropertyValues("x509_common_name")) {
          cn.assign(v.data(), v.size());
        }
      }
      auto rec = impl_->deps.audit->Append(
          {"unauthenticated:cn=" + cn, "", rpc, target, "unauthenticated"});
      agent::LogEvent(spdlog::level::warn, "unauthenticated_call", {{"rpc", rpc}, {"cn", cn}});
      if (!rec.ok()) return AuditFailure(rec.status());
      return grpc::Status(
          grpc::StatusCode::UNAUTHENTICATED,
          std::string("client certificate has no spiffe:// URI SAN; ") + rpc + " refused");
    }
    const agent::Decision d = impl_->deps.policy->Get()->Decide(identity, rpc);
    auto rec = impl_->deps.audit->Append(
        {identity, d.role, rpc, target, d.allowed ? "allowed" : "denied"});
    if (!rec.ok()) return AuditFailure(rec.status());
    if (!d.allowed) {
      agent::LogEvent(spdlog::level::warn, "permission_denied",
                      {{"rpc", rpc}, {"identity", identity}, {"role", d.role}});
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, d.message);
    }
    if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "call cancelled");
    if (ctx->deadline() <= Clock::now()) {
      return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                          std::string("deadline passed before ") + rpc + " started");
    }
    caller->identity = std::move(identity);
    caller->role = d.role;
    return grpc::Status::OK;
  }

  grpc::Status AuditFailure(const Status& s) {
    agent::LogEvent(spdlog::level::err, "audit_append_failed", {{"error", s.message()}});
    return grpc::Status(
        grpc::StatusCode::INTERNAL,
        "the call was not made: its audit record could not be written: " + s.message());
  }

  // The outcome record of a mutating call; returns the call's status.
  grpc::Status Finish(const Caller& c, const char* rpc, const std::string& target,
                      const Status& status) {
    const grpc::Status g = ToGrpcStatus(status);
    auto rec = impl_->deps.audit->Append(
        {c.identity, c.role, rpc, target,
         status.ok() ? std::string("ok") : "error: " + CodeName(g.error_code())});
    if (!rec.ok()) {
      agent::LogEvent(spdlog::level::err, "audit_append_failed",
                      {{"rpc", rpc}, {"error", rec.status().message()}});
    }
    return g;
  }

  grpc::Status Reply(const Caller& c, const char* rpc, const char* kind,
                     const google::protobuf::Message& msg) {
    impl_->deps.egress->Record(c.identity, c.role, rpc, kind,
                               static_cast<int64_t>(msg.ByteSizeLong()));
    return grpc::Status::OK;
  }

  template <typename W, typename M>
  bool WriteCounted(const Caller& c, const char* rpc, W* writer, const M& msg) {
    if (!writer->Write(msg)) return false;
    impl_->deps.egress->Record(c.identity, c.role, rpc, "telemetry",
                               static_cast<int64_t>(msg.ByteSizeLong()));
    return true;
  }

  template <typename Emit>
  grpc::Status Watch(grpc::ServerContext* ctx, const Caller&, const char*, int32_t interval_ms,
                     Emit emit) {
    if (interval_ms == 0) interval_ms = 5000;
    interval_ms = std::clamp(interval_ms, 250, 60000);
    const auto interval = std::chrono::milliseconds(interval_ms);
    auto end = Clock::now() + std::chrono::milliseconds(impl_->options.max_stream_ms);
    // End just before the caller's deadline so the stream closes with OK.
    const auto deadline = ctx->deadline();
    if (deadline - std::chrono::milliseconds(100) < end) {
      end = deadline - std::chrono::milliseconds(100);
    }
    while (true) {
      if (!emit()) return grpc::Status::OK;  // the client went away
      const auto next = Clock::now() + interval;
      if (next >= end) {
        impl_->WaitUntil(ctx, end);
        return grpc::Status::OK;
      }
      if (!impl_->WaitUntil(ctx, next)) {
        return ctx->IsCancelled() ? grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled")
                                  : grpc::Status::OK;
      }
    }
  }

  void FillDeployment(const agent::DeploymentRecord& r, v1::Deployment* out) {
    FillSpecRef(r, out->mutable_spec());
    out->set_generation(r.generation);
    out->set_applied_at_unix_ms(r.applied_at_unix_ms);
    out->set_applied_by(r.applied_by);
    auto* st = out->mutable_status();
    std::optional<agent::DeploymentStatusInfo> s;
    if (impl_->deps.observer) s = impl_->deps.observer->StatusOf(r.name);
    if (!s) {
      st->set_phase(v1::DEPLOYMENT_PHASE_PENDING);
      st->set_reason("no replica manager has reported on this deployment");
      return;
    }
    st->set_phase(static_cast<v1::DeploymentPhase>(static_cast<int>(s->phase)));
    st->set_reason(s->reason);
    st->set_observed_generation(s->observed_generation);
    st->set_replicas_desired(s->replicas_desired);
    st->set_replicas_ready(s->replicas_ready);
    st->set_backend(s->backend);
  }

  AgentServer::Impl* impl_;
};

}  // namespace

AgentServer::AgentServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

AgentServer::~AgentServer() {
  if (impl_ && impl_->server) {
    Shutdown(std::chrono::milliseconds(0));
    impl_->server->Wait();
  }
}

Result<std::unique_ptr<AgentServer>> AgentServer::Start(const AgentServerOptions& options,
                                                        const AgentServerDeps& deps) {
  if (!deps.state || !deps.audit || !deps.policy || !deps.egress) {
    return Status::InvalidArgument("agent server needs desired state, audit log, policy, egress");
  }
  if (options.ca_pem.empty() || options.cert_pem.empty() || options.key_pem.empty()) {
    return Status::InvalidArgument(
        "agent server needs a CA, a server certificate and its key (mutual TLS is mandatory)");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->deps = deps;
  impl->service = std::make_unique<AgentServiceImpl>(impl.get());
  for (size_t i = 0; i < options.console_keys_pem.size(); ++i) {
    auto key = report::VerifyingKey::FromPem(options.console_keys_pem[i]);
    if (!key.ok()) {
      return key.status().WithContext("console key " + std::to_string(i + 1));
    }
    impl->console_keys.push_back(*key);
  }
  if (!options.model_store.empty()) {
    impl->model_store = std::make_unique<agent::ModelStore>(options.model_store);
  }
  auto not_after = NotAfterUnixOfPem(options.cert_pem);
  if (!not_after.ok()) return not_after.status().WithContext("server certificate");
  impl->cert_not_after_unix = *not_after;

  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = options.ca_pem;
  ssl.pem_key_cert_pairs.push_back({options.key_pem, options.cert_pem});
  grpc::ServerBuilder builder;
  // Never share the port with another process: gRPC turns SO_REUSEPORT on by default, which
  // would let a second agent bind the same address and take half the connections.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(options.listen, grpc::SslServerCredentials(ssl), &impl->port);
  builder.RegisterService(impl->service.get());
  builder.SetMaxReceiveMessageSize(16 * 1024 * 1024);
  grpc::ResourceQuota quota("sextant-agent");
  quota.SetMaxThreads(256);
  builder.SetResourceQuota(quota);
  impl->server = builder.BuildAndStart();
  if (!impl->server || impl->port == 0) {
    return Status::Unavailable("grpc listener: cannot bind " + options.listen + ": " +
                               ExplainBindFailure(options.listen));
  }
  return std::unique_ptr<AgentServer>(new AgentServer(std::move(impl)));
}

int AgentServer::port() const { return impl_->port; }

void AgentServer::Shutdown(std::chrono::milliseconds grace) {
  std::call_once(impl_->shutdown_once, [&] {
    {
      std::lock_guard<std::mutex> lock(impl_->mu);
      impl_->shutting_down = true;
    }
    impl_->cv.notify_all();
    impl_->server->Shutdown(Clock::now() + grace);
  });
}

void AgentServer::Wait() { impl_->server->Wait(); }

std::set<std::string> AgentRpcNames() {
  std::set<std::string> names;
  const auto* service = v1::WhoAmIRequest::descriptor()->file()->FindServiceByName("AgentService");
  for (int i = 0; service && i < service->method_count(); ++i) {
    names.insert(service->method(i)->name());
  }
  return names;
}

}  // namespace sextant::rpc
