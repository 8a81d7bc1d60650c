// The one translation unit of the agent's gRPC server (gRPC headers are slow to compile).
#include "connectors/agent/agent_server.h"

#include <grpc/support/log.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "app/agent/config/json_log.h"
#include "app/agent/state/cpu_inventory.h"
#include "app/agent/state/model_store.h"
#include "app/common/deployment_spec.h"
#include "app/common/fact_keys.h"
#include "app/common/signing.h"
#include "connectors/agent/bind_check.h"
#include "connectors/agent/egress_fields.h"
#include "connectors/agent/identity_certs.h"
#include "connectors/agent/revocation.h"
#include "connectors/agent/transport_probe.h"
#include "connectors/grpc_status.h"
#include "connectors/inventory/storage_encryption.h"
#include "engine/base/build_info.h"
#include "engine/base/sha256.h"
#include "engine/base/time.h"
#include "sextant/v1/agent.grpc.pb.h"

namespace sextant::rpc {

namespace {

namespace v1 = ::sextant::v1;
using Clock = std::chrono::system_clock;

// RFC 3339 (UTC, seconds) of a Unix time in seconds.
std::string Rfc3339(int64_t unix_seconds) { return FormatRfc3339(unix_seconds * 1000); }

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
      .count();
}

void FillCloud(const agent::CloudContextInfo& in, v1::CloudContext* out) {
  out->set_provider(in.provider);
  out->set_account(in.account);
  out->set_region(in.region);
  out->set_zone(in.zone);
  out->set_instance_type(in.instance_type);
  out->set_instance_id(in.instance_id);
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

// A token bucket per key: `burst` tokens at once, refilled at `per_second`. Bounded: at most
// kMaxKeys keys (the full ones are forgotten first).
class Buckets {
 public:
  Buckets(double burst, double per_second) : burst_(burst), per_second_(per_second) {}

  // Takes n tokens for key: 0 when taken; otherwise the seconds until they would be there
  // (< 0 when n exceeds the burst: never).
  double Take(const std::string& key, double n) {
    if (n > burst_) return -1;
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    auto it = buckets_.find(key);
    if (it == buckets_.end()) {
      if (buckets_.size() >= kMaxKeys) Forget(now);
      it = buckets_.emplace(key, Bucket{burst_, now}).first;
    }
    Bucket& b = it->second;
    b.tokens = std::min(burst_, b.tokens + per_second_ * Seconds(now - b.at));
    b.at = now;
    if (b.tokens >= n) {
      b.tokens -= n;
      return 0;
    }
    return per_second_ > 0 ? (n - b.tokens) / per_second_ : 1e9;
  }

 private:
  static constexpr size_t kMaxKeys = 4096;
  struct Bucket {
    double tokens;
    std::chrono::steady_clock::time_point at;
  };
  static double Seconds(std::chrono::steady_clock::duration d) {
    return std::chrono::duration<double>(d).count();
  }
  void Forget(std::chrono::steady_clock::time_point now) {
    for (auto it = buckets_.begin(); it != buckets_.end();) {
      const double t =
          std::min(burst_, it->second.tokens + per_second_ * Seconds(now - it->second.at));
      it = t >= burst_ ? buckets_.erase(it) : std::next(it);
    }
    if (buckets_.size() >= kMaxKeys) buckets_.erase(buckets_.begin());
  }

  const double burst_;
  const double per_second_;
  std::mutex mu_;
  std::map<std::string, Bucket> buckets_;  // GUARDED_BY(mu_)
};

// Refused calls of one caller that were not recorded one by one (over the rate).
struct Suppressed {
  std::string role;
  int64_t count = 0;
  std::string first_time;
  std::string last_time;
  std::set<std::string> rpcs;
  std::chrono::steady_clock::time_point first;
};

// Checks every client certificate against the revocation list in force, in the handshake.
class RevocationVerifier : public grpc::experimental::ExternalCertificateVerifier {
 public:
  explicit RevocationVerifier(AgentServer::Impl* impl) : impl_(impl) {}
  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)>, grpc::Status* sync_status) override;
  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest*) override {}

 private:
  AgentServer::Impl* impl_;
};

}  // namespace

struct AgentServer::Impl {
  AgentServerOptions options;
  AgentServerDeps deps;
  agent::CpuInventorySource cpu_inventory;
  agent::StaticCloudContextSource default_cloud{agent::CloudContextInfo{}};
  agent::AgentHealth own_health;
  std::unique_ptr<AgentServiceImpl> service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  std::string bound_host = "127.0.0.1";
  int64_t started_at_unix_ms = NowUnixMs();
  std::vector<report::VerifyingKey> console_keys;  // from options.console_keys_pem
  std::unique_ptr<agent::Admission> admission;     // from options.admission
  std::unique_ptr<agent::ModelStore> model_store;  // null: options.model_store empty
  int64_t cert_not_after_unix = 0;                 // of the server certificate
  std::unique_ptr<Buckets> validation_answers;
  std::unique_ptr<Buckets> denied_records;

  std::mutex mu;
  std::condition_variable cv;
  bool shutting_down = false;  // GUARDED_BY(mu)
  std::once_flag shutdown_once;

  std::mutex revocation_mu;
  std::shared_ptr<const RevocationList> revocations;  // GUARDED_BY(revocation_mu)
  int64_t revocations_loaded_at_unix_ms = 0;          // GUARDED_BY(revocation_mu)

  std::mutex transport_mu;
  TransportFacts transport;  // GUARDED_BY(transport_mu)

  std::mutex suppressed_mu;
  std::map<std::string, Suppressed> suppressed;  // GUARDED_BY(suppressed_mu), by identity

  agent::InventorySource& inventory() { return deps.inventory ? *deps.inventory : cpu_inventory; }
  agent::CloudContextSource& cloud() { return deps.cloud ? *deps.cloud : default_cloud; }
  agent::AgentHealth& health() { return deps.health ? *deps.health : own_health; }

  std::shared_ptr<const RevocationList> Revocations() {
    std::lock_guard<std::mutex> lock(revocation_mu);
    return revocations;
  }

  // The transport facts, measured again when older than ten minutes.
  TransportFacts Transport() {
    std::lock_guard<std::mutex> lock(transport_mu);
    if (port != 0 && NowUnixMs() - transport.measured_at_unix_ms > 600000) {
      transport = ProbeTransport(bound_host, port);
    }
    return transport;
  }

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

bool RevocationVerifier::Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
                                std::function<void(grpc::Status)>, grpc::Status* sync_status) {
  auto list = impl_->Revocations();
  std::string serial;
  const grpc::string_ref pem = request->peer_cert();
  if (list && list->IsRevoked(std::string(pem.data(), pem.size()), &serial)) {
    agent::LogEvent(spdlog::level::warn, "revoked_certificate_refused",
                    {{"serial", serial}, {"uris", [&] {
                                            std::string uris;
                                            for (const auto& u : request->uri_names()) {
                                              uris += (uris.empty() ? "" : ",") +
                                                      std::string(u.data(), u.size());
                                            }
                                            return uris;
                                          }()}});
    *sync_status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                "client certificate serial " + serial + " is revoked");
    return true;
  }
  *sync_status = grpc::Status::OK;
  return true;
}

struct Caller {
  std::string identity;
  std::string role;
  bool customer_detail = false;  // the role's audit scope is "all": it may read the detail
  int64_t intent_seq = 0;        // the record that admitted the call
};

std::string BareHex(std::string digest) {
  if (digest.rfind("sha256:", 0) == 0) digest = digest.substr(7);
  std::transform(digest.begin(), digest.end(), digest.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return digest;
}

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
    resp->set_health(impl_->health().Summary());
    for (const auto& cond : impl_->health().Conditions()) {
      resp->add_degraded_reasons(cond.name + " since " + Rfc3339(cond.since_unix_ms / 1000) + ": " +
                                 cond.reason);
    }
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
    agent::ApplyRequest a;
    std::string detail;
    if (Status trust = CheckApply(*req, &a, &detail); !trust.ok()) {
      agent::LogEvent(spdlog::level::warn, "deployment_refused",
                      {{"name", audit::CapAuditField(spec.name(), 256)},
                       {"spec_digest", audit::CapAuditField(spec.spec_digest(), 256)},
                       {"by", c.identity},
                       {"error", trust.message()},
                       {"detail", detail}});
      return Finish(c, "ApplyDeployment", spec.name(), trust, detail);
    }
    a.name = spec.name();
    a.spec_json = spec.spec_json();
    a.spec_digest = spec.spec_digest();
    a.applied_by = c.identity;
    a.if_generation = req->if_generation();
    a.require_absent = req->require_absent();
    auto result = impl_->deps.state->Apply(a);
    if (!result.ok()) return Finish(c, "ApplyDeployment", spec.name(), result.status(), detail);
    resp->set_name(result->record.name);
    resp->set_generation(result->record.generation);
    resp->set_changed(result->changed);
    resp->set_spec_digest(result->record.spec_digest);
    agent::LogEvent(spdlog::level::info, "deployment_applied",
                    {{"name", a.name},
                     {"generation", result->record.generation},
                     {"changed", result->changed},
                     {"spec_digest", result->record.spec_digest},
                     {"by", c.identity},
                     {"admitted", detail}});
    const std::string outcome_detail = "generation " + std::to_string(result->record.generation) +
                                       (result->changed ? " (new)" : " (unchanged)") + " " +
                                       result->record.spec_digest + "; " + detail;
    if (auto s = Finish(c, "ApplyDeployment", spec.name(), Status(), outcome_detail); !s.ok()) {
      return grpc::Status(
          s.error_code(),
          "deployment '" + a.name + "' is at generation " +
              std::to_string(result->record.generation) +
              ", but the outcome of this apply could not be recorded: " + s.error_message());
    }
    return Reply(c, "ApplyDeployment", "control", *resp);
  }

  grpc::Status GetDeployment(grpc::ServerContext* ctx, const v1::GetDeploymentRequest* req,
                             v1::Deployment* resp) override {
    Caller c;
    if (auto s = Admit(ctx, "GetDeployment", req->name(), &c); !s.ok()) return s;
    auto rec = impl_->deps.state->Get(req->name());
    if (!rec.ok()) return ToGrpcStatus(rec.status());
    FillDeployment(c, *rec, resp);
    return Reply(c, "GetDeployment", "control", *resp);
  }

  grpc::Status ListDeployments(grpc::ServerContext* ctx, const v1::ListDeploymentsRequest*,
                               v1::ListDeploymentsResponse* resp) override {
    Caller c;
    if (auto s = Admit(ctx, "ListDeployments", "", &c); !s.ok()) return s;
    auto list = impl_->deps.state->List();
    if (!list.ok()) return ToGrpcStatus(list.status());
    for (const auto& r : *list) FillDeployment(c, r, resp->add_deployments());
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
    if (auto s = Finish(c, "DeleteDeployment", req->name(), Status(),
                        "deleted at generation " + std::to_string(last->generation));
        !s.ok()) {
      return grpc::Status(s.error_code(), "deployment '" + last->name +
                                              "' was deleted, but the outcome could not be "
                                              "recorded: " +
                                              s.error_message());
    }
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
          d->set_prefix_cache_queries_total(m.prefix_cache_queries_total);
          d->set_prefix_cache_hits_total(m.prefix_cache_hits_total);
          d->set_kv_cache_blocks_used(m.kv_cache_blocks_used);
          d->set_kv_cache_blocks_total(m.kv_cache_blocks_total);
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
    if (req->expected().empty()) {
      return Finish(c, "RunValidation", req->name(),
                    Status::InvalidArgument(
                        "expected: the output digests of your own validation report are "
                        "required; the agent answers only whether its outputs match them"));
    }
    spec::SpecParseResult parsed = spec::ParseDeploymentSpec(rec->spec_json);
    if (!parsed.ok()) {
      return Finish(
          c, "RunValidation", req->name(),
          Status::InvalidArgument("deployment '" + req->name() + "': its spec does not parse: " +
                                  parsed.errors.front().ToString()));
    }
    const int max_tokens = parsed.spec.validation.max_tokens;
    if (max_tokens < impl_->options.min_validation_tokens) {
      return Finish(c, "RunValidation", req->name(),
                    Status::FailedPrecondition(
                        "validation.maxTokens " + std::to_string(max_tokens) +
                        " is below this agent's floor of " +
                        std::to_string(impl_->options.min_validation_tokens) +
                        " tokens per prompt (validation.min_tokens_per_prompt in its config): "
                        "shorter outputs would be guessable from match answers"));
    }
    const int prompts = static_cast<int>(parsed.spec.validation.prompts.size());
    const double wait = impl_->validation_answers->Take(c.identity, prompts);
    if (wait < 0) {
      return Finish(
          c, "RunValidation", req->name(),
          Status::FailedPrecondition("the spec has " + std::to_string(prompts) +
                                     " validation prompts; this agent answers at most " +
                                     std::to_string(impl_->options.validation_answers_burst) +
                                     " at once (validation.answers_burst in its config)"));
    }
    if (wait > 0) {
      return Finish(
          c, "RunValidation", req->name(),
          Status::ResourceExhausted("validation answers for " + c.identity + " are used up (" +
                                    std::to_string(impl_->options.validation_answers_per_hour) +
                                    " prompt answers per hour, " +
                                    std::to_string(impl_->options.validation_answers_burst) +
                                    " at once); retry in " +
                                    std::to_string(static_cast<int>(wait) + 1) + " s"));
    }
    auto run = impl_->deps.validation->Run(*rec, [ctx] { return ctx->IsCancelled(); });
    if (!run.ok()) return Finish(c, "RunValidation", req->name(), run.status());
    // The expected set of the agent's own backend when the caller has one, else the first.
    const v1::ExpectedOutputs* expected = &req->expected(0);
    for (const auto& e : req->expected()) {
      if (e.backend() == run->backend) {
        expected = &e;
        break;
      }
    }
    resp->set_name(rec->name);
    resp->set_generation(rec->generation);
    resp->set_spec_digest(rec->spec_digest);
    resp->set_model_sha256(run->model_sha256);
    resp->set_engine_build_id(run->engine_build_id);
    resp->set_backend(run->backend);
    resp->set_peak_memory_bytes(run->peak_memory_bytes);
    resp->set_compared_with_backend(expected->backend());
    int matching = 0;
    for (const auto& p : run->prompts) {
      auto* out = resp->add_prompts();
      out->set_index(p.index);
      out->set_prompt_digest(p.prompt_digest);
      out->set_prompt_tokens(p.prompt_tokens);
      out->set_ttft_ms(p.ttft_ms);
      out->set_decode_tokens_per_second(p.decode_tokens_per_second);
      out->set_inter_token_ms(p.inter_token_ms);
      const bool match =
          p.index >= 0 && p.index < expected->prompt_output_digests_size() &&
          BareHex(expected->prompt_output_digests(p.index)) == BareHex(p.output_tokens_digest);
      out->set_output_matches(match);
      matching += match ? 1 : 0;
    }
    const int total = static_cast<int>(run->prompts.size());
    resp->set_prompts_matching(matching);
    resp->set_output_matches(total > 0 && matching == total &&
                             expected->prompt_output_digests_size() == total);
    resp->set_device(run->device);
    resp->set_threads(run->threads);
    const std::string detail = std::to_string(matching) + " of " + std::to_string(total) +
                               " prompts match the caller's " + expected->backend() +
                               " digests (backend " + run->backend + ")";
    if (auto s = Finish(c, "RunValidation", req->name(), Status(), detail); !s.ok()) return s;
    return Reply(c, "RunValidation", "validation-digest", *resp);
  }

  grpc::Status GetComplianceFacts(grpc::ServerContext* ctx, const v1::GetComplianceFactsRequest*,
                                  v1::ComplianceFacts* resp) override {
    Caller c;
    if (auto s = Admit(ctx, "GetComplianceFacts", "", &c); !s.ok()) return s;
    const agent::CloudContextInfo cloud = impl_->cloud().Context();
    FillCloud(cloud, resp->mutable_cloud());
    auto fact = [&](const std::string& name, const std::string& value, const std::string& ev,
                    const std::string& source) {
      auto* f = resp->add_facts();
      f->set_name(name);
      f->set_value(value);
      f->set_evidence(ev);
      f->set_source(source);
    };
    // Transport: measured against this listener.
    const TransportFacts transport = impl_->Transport();
    resp->set_mtls_required(transport.mtls_enforced == "true");
    resp->set_tls_min_version(transport.min_version);
    fact("tls.mtls_enforced", transport.mtls_enforced, transport.mtls_evidence, transport.source);
    fact("tls.min_version", transport.min_version, transport.version_evidence, transport.source);
    {
      auto list = impl_->Revocations();
      int64_t loaded = 0;
      {
        std::lock_guard<std::mutex> lock(impl_->revocation_mu);
        loaded = impl_->revocations_loaded_at_unix_ms;
      }
      fact("tls.revoked_certificates", std::to_string(list ? list->size() : 0),
           list && list->crls() > 0
               ? std::to_string(list->crls()) + " CRL(s) loaded at " + Rfc3339(loaded / 1000) +
                     (list->next_update_unix() > 0
                          ? ", next update " + Rfc3339(list->next_update_unix())
                          : std::string())
               : "no revocation list configured (grpc.crl)",
           "state: the revocation list in force, checked in every handshake");
    }
    // Audit chain (incremental) and its signed head.
    auto verify = impl_->deps.audit->Verify();
    if (!verify.ok()) return ToGrpcStatus(verify.status());
    resp->set_audit_chain_intact(verify->intact);
    resp->set_audit_records(verify->records);
    resp->set_audit_head_hash(verify->head_hash);
    if (auto cp = impl_->deps.audit->LatestCheckpoint(); cp.ok()) {
      FillCheckpoint(*cp, resp->mutable_audit_checkpoint());
    }
    fact("audit.chain_intact", verify->intact ? "true" : "false",
         verify->intact ? std::to_string(verify->records) + " records, head seq " +
                              std::to_string(verify->head_seq) + ", signed by key " +
                              verify->checkpoint_key_id.substr(0, 16)
                        : verify->reason,
         "state: the audit chain as verified at start and extended by each record since");
    fact("audit.head_hash", verify->head_hash, "seq " + std::to_string(verify->head_seq),
         "state: audit log");
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
    // Storage: observed, never taken from the config.
    const auto state_enc =
        impl_->options.state_dir.empty()
            ? inventory::EncryptionObservation{"unknown", "no state directory given", "none"}
            : inventory::ObserveEncryptionAtRest(impl_->options.state_dir);
    const auto model_enc =
        impl_->options.model_store.empty()
            ? inventory::EncryptionObservation{"unknown", "no model store configured", "none"}
            : inventory::ObserveEncryptionAtRest(impl_->model_store->root());
    resp->set_encryption_at_rest(state_enc.value == "true" && model_enc.value == "true");
    fact("storage.state_dir.encrypted", state_enc.value, state_enc.evidence, state_enc.source);
    fact("storage.model_store.encrypted", model_enc.value, model_enc.evidence, model_enc.source);
    fact("storage.encryption_declared", impl_->options.encryption_at_rest ? "true" : "false",
         "what the owner declared; the compliance packs read the measured facts above",
         "config: encryption_at_rest");
    resp->set_observed_at_unix_ms(NowUnixMs());
    fact("residency.provider", cloud.provider, "cloud context",
         "config or metadata: " + cloud.source);
    fact("residency.region", cloud.region, "cloud context", "config or metadata: " + cloud.source);
    fact("egress.payload_bytes_to_vendor", std::to_string(payload),
         "bytes of response fields that declare no egress class, sent to vendor roles, since " +
             Rfc3339(impl_->deps.egress->since_unix_ms() / 1000),
         "measured: every response walked field by field (egress ledger)");
    fact("egress.policy", "digests-and-figures",
         "the control API returns digests, match answers, figures and metadata only; prompts, "
         "outputs and model bytes never leave (payload bytes to vendor: " +
             std::to_string(payload) + ")",
         "measured: egress ledger");
    fact("policy.digest", "sha256:" + policy->digest(), policy->source(), "state: policy in force");
    fact("engine.build_id", GetBuildInfo().BuildId(), "this agent binary", "state: build");
    {
      const int64_t not_after = impl_->cert_not_after_unix;
      const int64_t days_left = (not_after - NowUnixMs() / 1000) / 86400;
      fact("tls.cert_expires_at", Rfc3339(not_after),
           std::to_string(days_left) + " days left (the agent's gRPC server certificate)",
           "measured: the listener's certificate");
      fact("tls.cert_days_left", std::to_string(days_left),
           "notAfter " + Rfc3339(not_after) + " of the agent's gRPC server certificate",
           "measured: the listener's certificate");
    }
    {
      const auto conditions = impl_->health().Conditions();
      std::string why;
      for (const auto& cond : conditions) why += (why.empty() ? "" : "; ") + cond.reason;
      fact("agent.health", conditions.empty() ? "ok" : "degraded",
           conditions.empty() ? "no degraded condition" : why, "state: agent health");
      bool reload_failed = false;
      for (const auto& cond : conditions) {
        reload_failed = reload_failed || cond.name == agent::kPolicyReloadCondition;
      }
      fact("policy.reload", reload_failed ? "failed" : "ok",
           reload_failed ? why : "the policy in force is the file's latest", "state: agent health");
    }
    {
      std::string ids;
      for (const auto& k : impl_->console_keys) ids += (ids.empty() ? "" : ",") + k.key_id();
      fact("deploy.console_keys", std::to_string(impl_->console_keys.size()),
           ids.empty() ? "no trusted console keys configured" : "key ids " + ids,
           "config: console_keys");
      fact("deploy.report_required", impl_->console_keys.empty() ? "false" : "true",
           impl_->console_keys.empty()
               ? "warning: no console_keys configured; applies need no signed validation report"
               : "applies need a passing validation report signed by a trusted console key",
           "config: console_keys");
      fact("deploy.admission", impl_->admission->configured() ? "customer-rule" : "none",
           impl_->admission->Describe(), "config: admission");
      fact("deploy.model_store_check", impl_->model_store ? "true" : "false",
           impl_->model_store ? "applies are refused unless the model's sha256 matches this "
                                "agent's own store"
                              : "no model store configured for the control API",
           "config: model_store");
      fact("validation.min_tokens_per_prompt", std::to_string(impl_->options.min_validation_tokens),
           "RunValidation refuses specs with fewer validation tokens per prompt",
           "config: validation.min_tokens_per_prompt");
      fact("validation.answers_per_hour",
           std::to_string(impl_->options.validation_answers_per_hour),
           "match answers per caller per hour (" +
               std::to_string(impl_->options.validation_answers_burst) + " at once)",
           "config: validation.answers_per_hour");
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
    for (auto r : *records) {
      if (scope != "all") r.WithholdDetail();
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
      out->set_detail(r.entry.detail);
      out->set_detail_digest(r.detail_digest);
      out->set_detail_salt(r.detail_salt);
      out->set_intent_seq(r.entry.intent_seq);
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
    if (auto cp = impl_->deps.audit->LatestCheckpoint(); cp.ok()) {
      FillCheckpoint(*cp, resp->mutable_signed_head());
    }
    if (req->anchor_seq() > 0) {
      auto at = impl_->deps.audit->HashAt(req->anchor_seq());
      if (!at.ok()) return ToGrpcStatus(at.status());
      auto* anchor = resp->mutable_anchor();
      anchor->set_seq(req->anchor_seq());
      anchor->set_present(at->has_value());
      if (at->has_value()) anchor->set_hash(**at);
    }
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
    for (const auto& row : impl_->deps.egress->FieldRows()) {
      auto* f = resp->add_fields();
      f->set_identity(row.identity);
      f->set_role(row.role);
      f->set_field(row.field);
      f->set_egress_class(row.egress_class);
      f->set_bytes(row.bytes);
      f->set_messages(row.messages);
    }
    for (const auto& [kind, bytes] : impl_->deps.egress->VendorBytesByKind()) {
      (*resp->mutable_vendor_bytes_by_kind())[kind] = bytes;
    }
    resp->set_payload_bytes_to_vendor(resp->vendor_bytes_by_kind().at("payload"));
    resp->set_since_unix_ms(impl_->deps.egress->since_unix_ms());
    return Reply(c, "GetEgressLedger", "audit", *resp);
  }

 private:
  // What the customer requires of an apply, checked before anything is durable, in this
  // order: the spec names the model the request names; the customer's admission rule admits
  // the spec digest; a report signed by a trusted console key passed for this spec and model
  // (when console keys are configured); the model is in this agent's own store with that
  // sha256 (when a store is configured). Fills `a` (model) and `detail` (for the customer's
  // record only).
  Status CheckApply(const v1::ApplyDeploymentRequest& req, agent::ApplyRequest* a,
                    std::string* detail) {
    const auto& spec = req.spec();
    SEXTANT_RETURN_IF_ERROR(agent::ValidateDeploymentName(spec.name()));
    SEXTANT_ASSIGN_OR_RETURN(std::string digest,
                             agent::NormalizeDigest(spec.spec_digest(), "spec.spec_digest"));
    if ("sha256:" + Sha256Hex(spec.spec_json()) != digest) {
      return Status::InvalidArgument("spec_digest " + digest + " is not the sha256 of spec_json");
    }
    // The digest the customer admits must name the model that runs.
    const nlohmann::json j = nlohmann::json::parse(spec.spec_json(), nullptr, false);
    const nlohmann::json model =
        j.is_object() ? j.value("model", nlohmann::json()) : nlohmann::json();
    if (!model.is_object() || !model.value("uri", nlohmann::json()).is_string() ||
        !model.value("sha256", nlohmann::json()).is_string()) {
      return Status::InvalidArgument(
          "spec_json has no model.uri and model.sha256: the spec must name its model");
    }
    a->model_uri = model["uri"].get<std::string>();
    a->model_sha256 = model["sha256"].get<std::string>();
    if (!spec.model_uri().empty() && spec.model_uri() != a->model_uri) {
      return Status::InvalidArgument("spec.model_uri '" +
                                     audit::CapAuditField(spec.model_uri(), 200) +
                                     "' is not the spec's model.uri '" + a->model_uri + "'");
    }
    if (!spec.model_sha256().empty() && BareHex(spec.model_sha256()) != BareHex(a->model_sha256)) {
      return Status::InvalidArgument("spec.model_sha256 is not the spec's model.sha256");
    }
    // 1. The customer's own rule.
    std::string notes;
    auto admitted = impl_->admission->Admit(digest, a->model_sha256, &notes);
    if (!admitted.ok()) {
      *detail = notes;
      return admitted.status();
    }
    *detail = "admitted: " + admitted->rule;
    // 2. The vendor's signed report, when the customer asks for one.
    if (!impl_->console_keys.empty()) {
      if (req.signed_report_json().empty()) {
        return Status::PermissionDenied(
            "report signature not from a trusted console key: the apply carries no signed "
            "validation report, and this agent requires one");
      }
      const nlohmann::json rj = nlohmann::json::parse(req.signed_report_json(), nullptr, false);
      if (rj.is_discarded() || !rj.is_object()) {
        return Status::InvalidArgument("signed_report_json: not a JSON object");
      }
      auto signed_report = report::SignedReportFromJson(rj);
      if (!signed_report.ok()) {
        return signed_report.status().WithContext("signed_report_json");
      }
      Result<report::ValidationReport> verified = Status::PermissionDenied(
          "report signature not from a trusted console key (key id " +
          audit::CapAuditField(signed_report->key_id, 80) + " is not one of this agent's " +
          std::to_string(impl_->console_keys.size()) + ")");
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
      if ("sha256:" + verified->spec_digest != digest) {
        return Status::FailedPrecondition("report is for spec sha256:" + verified->spec_digest +
                                          ", not " + digest);
      }
      if (BareHex(a->model_sha256) != verified->model_sha256) {
        return Status::FailedPrecondition("report is for model sha256:" + verified->model_sha256 +
                                          ", not sha256:" + BareHex(a->model_sha256));
      }
    }
    // 3. The model in this agent's own store: one answer whatever failed.
    if (impl_->model_store) {
      std::string why;
      auto verified = impl_->model_store->Verify(a->model_uri, a->model_sha256, &why);
      if (!verified.ok()) {
        *detail += "; " + (why.empty() ? verified.status().message() : why);
        return verified.status();
      }
    }
    return Status();
  }

  // A refused caller: recorded while within its rate; beyond it, counted and refused with
  // RESOURCE_EXHAUSTED (the count is recorded as one summary record later). Returns OK when
  // the refusal was recorded (the caller then returns its own refusal).
  grpc::Status RecordRefusal(const std::string& identity, const std::string& role, const char* rpc,
                             const std::string& target, const std::string& outcome,
                             const std::string& detail) {
    if (impl_->denied_records->Take(identity, 1) != 0) {
      std::lock_guard<std::mutex> lock(impl_->suppressed_mu);
      Suppressed& s = impl_->suppressed[identity];
      if (s.count == 0) {
        s.first = std::chrono::steady_clock::now();
        s.first_time = audit::NowRfc3339Ms();
      }
      s.role = role;
      ++s.count;
      s.last_time = audit::NowRfc3339Ms();
      if (s.rpcs.size() < 16) s.rpcs.insert(rpc);
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "too many refused calls from " + audit::CapAuditField(identity, 256) +
                              ": " + rpc + " refused, and not recorded one by one (" +
                              std::to_string(s.count) + " so far; they are counted)");
    }
    FlushSuppressed(identity);
    auto rec = impl_->deps.audit->Append({identity, role, rpc, target, outcome, detail});
    if (!rec.ok()) return AuditFailure(rec.status());
    return grpc::Status::OK;
  }

  // Writes the summary record of refused calls not recorded one by one: for `identity` when
  // given, and for every caller whose oldest such call is a minute old.
  void FlushSuppressed(const std::string& identity) {
    std::vector<std::pair<std::string, Suppressed>> due;
    {
      std::lock_guard<std::mutex> lock(impl_->suppressed_mu);
      const auto now = std::chrono::steady_clock::now();
      for (auto it = impl_->suppressed.begin(); it != impl_->suppressed.end();) {
        if (it->first == identity || now - it->second.first > std::chrono::seconds(60)) {
          due.emplace_back(it->first, it->second);
          it = impl_->suppressed.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (const auto& [who, s] : due) {
      std::string rpcs;
      for (const auto& r : s.rpcs) rpcs += (rpcs.empty() ? "" : ",") + r;
      auto rec = impl_->deps.audit->Append(
          {who, s.role, rpcs, "", "denied (rate-limited)",
           std::to_string(s.count) + " further refused calls from " + s.first_time + " to " +
               s.last_time +
               " were refused without a record each (over the rate of refusals "
               "recorded per caller)"});
      if (!rec.ok()) {
        agent::LogEvent(spdlog::level::err, "audit_append_failed",
                        {{"error", rec.status().message()}, {"suppressed", s.count}});
      }
    }
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
    FlushSuppressed("");
    // A certificate revoked after its connection was made: refused on every call from then on
    // (new connections are refused in the handshake).
    if (auth) {
      auto list = impl_->Revocations();
      for (const auto& pem : auth->FindPropertyValues("x509_pem_cert")) {
        std::string serial;
        if (list && list->IsRevoked(std::string(pem.data(), pem.size()), &serial)) {
          const std::string who = identity.empty() ? "serial:" + serial : identity;
          if (auto s =
                  RecordRefusal(who, "", rpc, target, "revoked", "certificate serial " + serial);
              !s.ok()) {
            return s;
          }
          return grpc::Status(
              grpc::StatusCode::UNAUTHENTICATED,
              "client certificate serial " + serial + " is revoked; " + rpc + " refused");
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
      agent::LogEvent(spdlog::level::warn, "unauthenticated_call",
                      {{"rpc", rpc}, {"cn", audit::CapAuditField(cn, 256)}});
      if (auto s =
              RecordRefusal("unauthenticated:cn=" + cn, "", rpc, target, "unauthenticated", "");
          !s.ok()) {
        return s;
      }
      return grpc::Status(
          grpc::StatusCode::UNAUTHENTICATED,
          std::string("client certificate has no spiffe:// URI SAN; ") + rpc + " refused");
    }
    auto policy = impl_->deps.policy->Get();
    const agent::Decision d = policy->Decide(identity, rpc);
    if (!d.allowed) {
      agent::LogEvent(spdlog::level::warn, "permission_denied",
                      {{"rpc", rpc}, {"identity", identity}, {"role", d.role}});
      if (auto s = RecordRefusal(identity, d.role, rpc, target, "denied", ""); !s.ok()) return s;
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, d.message);
    }
    auto rec = impl_->deps.audit->Append({identity, d.role, rpc, target, "allowed"});
    if (!rec.ok()) return AuditFailure(rec.status());
    if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "call cancelled");
    if (ctx->deadline() <= Clock::now()) {
      return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                          std::string("deadline passed before ") + rpc + " started");
    }
    caller->identity = std::move(identity);
    caller->role = d.role;
    const agent::RoleRule* rule = policy->Role(d.role);
    caller->customer_detail = rule && rule->audit_scope == "all";
    caller->intent_seq = rec->seq;
    return grpc::Status::OK;
  }

  grpc::Status AuditFailure(const Status& s) {
    agent::LogEvent(spdlog::level::err, "audit_append_failed", {{"error", s.message()}});
    return grpc::Status(
        grpc::StatusCode::INTERNAL,
        "the call was not made: its audit record could not be written: " + s.message());
  }

  // The outcome record of a mutating call (naming the record that admitted it); returns the
  // call's status, or INTERNAL when the call succeeded but its outcome could not be recorded.
  grpc::Status Finish(const Caller& c, const char* rpc, const std::string& target,
                      const Status& status, const std::string& detail = "") {
    const grpc::Status g = ToGrpcStatus(status);
    audit::AuditEntry e{c.identity, c.role, rpc, target,
                        status.ok() ? std::string("ok") : "error: " + CodeName(g.error_code())};
    e.detail =
        status.ok() ? detail : status.message() + (detail.empty() ? "" : " (" + detail + ")");
    e.intent_seq = c.intent_seq;
    auto rec = impl_->deps.audit->Append(e);
    if (!rec.ok()) {
      agent::LogEvent(spdlog::level::err, "audit_append_failed",
                      {{"rpc", rpc}, {"error", rec.status().message()}});
      if (status.ok()) {
        return grpc::Status(grpc::StatusCode::INTERNAL,
                            "the outcome record could not be written: " + rec.status().message());
      }
    }
    return g;
  }

  grpc::Status Reply(const Caller& c, const char* rpc, const char* kind,
                     const google::protobuf::Message& msg) {
    impl_->deps.egress->RecordResponse(c.identity, c.role, rpc, kind,
                                       static_cast<int64_t>(msg.ByteSizeLong()),
                                       MeasureEgress(msg));
    return grpc::Status::OK;
  }

  template <typename W, typename M>
  bool WriteCounted(const Caller& c, const char* rpc, W* writer, const M& msg) {
    if (!writer->Write(msg)) return false;
    impl_->deps.egress->RecordResponse(c.identity, c.role, rpc, "telemetry",
                                       static_cast<int64_t>(msg.ByteSizeLong()),
                                       MeasureEgress(msg));
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

  void FillCheckpoint(const audit::AuditCheckpoint& cp, v1::AuditCheckpoint* out) {
    out->set_seq(cp.seq);
    out->set_hash(cp.hash);
    out->set_time(cp.time);
    out->set_key_id(cp.key_id);
    out->set_signature(cp.signature);
    out->set_public_key(ToHex(impl_->deps.audit->checkpoint_key().raw()));
  }

  void FillDeployment(const Caller& c, const agent::DeploymentRecord& r, v1::Deployment* out) {
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
    // A failed model (missing, another digest, unreadable) reads the same to whoever may not
    // read the customer's detail: no oracle of the store.
    st->set_reason(s->phase == agent::DeploymentPhase::kFailed && !c.customer_detail
                       ? std::string(agent::kModelNotAvailable)
                       : s->reason);
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
  SEXTANT_ASSIGN_OR_RETURN(impl->admission, agent::Admission::Create(options.admission));
  if (!options.model_store.empty()) {
    impl->model_store = std::make_unique<agent::ModelStore>(options.model_store);
  }
  auto not_after = NotAfterUnixOfPem(options.cert_pem);
  if (!not_after.ok()) return not_after.status().WithContext("server certificate");
  impl->cert_not_after_unix = *not_after;
  impl->validation_answers =
      std::make_unique<Buckets>(std::max(1, options.validation_answers_burst),
                                std::max(0, options.validation_answers_per_hour) / 3600.0);
  impl->denied_records =
      std::make_unique<Buckets>(std::max(1, options.denied_records_burst),
                                std::max(0, options.denied_records_per_minute) / 60.0);
  {
    auto list = RevocationList::Parse(options.crl_pem, options.ca_pem);
    if (!list.ok()) return list.status().WithContext("revocation list (grpc.crl)");
    impl->revocations = *list;
    impl->revocations_loaded_at_unix_ms = NowUnixMs();
  }
  if (auto host = options.listen.substr(0, options.listen.rfind(':')); !host.empty()) {
    impl->bound_host = host;
  }

  // Mutual TLS: the client's certificate is required and verified against the CA in the
  // handshake, then checked against the revocation list in force (RevocationVerifier).
  auto provider = std::make_shared<grpc::experimental::StaticDataCertificateProvider>(
      options.ca_pem,
      std::vector<grpc::experimental::IdentityKeyCertPair>{{options.key_pem, options.cert_pem}});
  grpc::experimental::TlsServerCredentialsOptions tls(provider);
  tls.watch_root_certs();
  tls.watch_identity_key_cert_pairs();
  tls.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  tls.set_certificate_verifier(
      grpc::experimental::ExternalCertificateVerifier::Create<RevocationVerifier>(impl.get()));
  grpc::ServerBuilder builder;
  // Never share the port with another process: gRPC turns SO_REUSEPORT on by default, which
  // would let a second agent bind the same address and take half the connections.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(options.listen, grpc::experimental::TlsServerCredentials(tls),
                           &impl->port);
  builder.RegisterService(impl->service.get());
  // Bounded: a request (a spec and its report) is far below this.
  builder.SetMaxReceiveMessageSize(4 * 1024 * 1024);
  grpc::ResourceQuota quota("sextant-agent");
  quota.SetMaxThreads(256);
  builder.SetResourceQuota(quota);
  impl->server = builder.BuildAndStart();
  if (!impl->server || impl->port == 0) {
    return Status::Unavailable("grpc listener: cannot bind " + options.listen + ": " +
                               ExplainBindFailure(options.listen));
  }
  {
    std::lock_guard<std::mutex> lock(impl->transport_mu);
    impl->transport = ProbeTransport(impl->bound_host, impl->port);
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

Status AgentServer::ReloadRevocations(const std::string& crl_pem) {
  auto list = RevocationList::Parse(crl_pem, impl_->options.ca_pem);
  if (!list.ok()) {
    const Status s = list.status().WithContext("revocation list reload");
    impl_->health().SetDegraded(agent::kRevocationListCondition,
                                s.message() + "; the previous list stays in force");
    return s;
  }
  {
    std::lock_guard<std::mutex> lock(impl_->revocation_mu);
    impl_->revocations = *list;
    impl_->revocations_loaded_at_unix_ms = NowUnixMs();
  }
  impl_->health().Clear(agent::kRevocationListCondition);
  return Status();
}

namespace {

void GrpcLogToJson(gpr_log_func_args* args) {
  const auto level = args->severity == GPR_LOG_SEVERITY_ERROR  ? spdlog::level::warn
                     : args->severity == GPR_LOG_SEVERITY_INFO ? spdlog::level::info
                                                               : spdlog::level::debug;
  agent::LogEvent(level, "grpc",
                  {{"file", args->file ? args->file : ""},
                   {"line", args->line},
                   {"message", args->message ? args->message : ""}});
}

}  // namespace

void RouteGrpcLogsToJsonLog() { gpr_set_log_function(GrpcLogToJson); }

std::set<std::string> AgentOutcomeRpcNames() {
  return {"ApplyDeployment", "DeleteDeployment", "RunValidation"};
}

std::set<std::string> AgentRpcNames() {
  std::set<std::string> names;
  const auto* service = v1::WhoAmIRequest::descriptor()->file()->FindServiceByName("AgentService");
  for (int i = 0; service && i < service->method_count(); ++i) {
    names.insert(service->method(i)->name());
  }
  return names;
}

}  // namespace sextant::rpc
