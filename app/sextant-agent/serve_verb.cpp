// `sextant-agent serve`: wires the agent together (config, policy, state, audit log, gRPC
// control API) and runs until SIGTERM. See serve_verb.h.
#include "app/sextant-agent/serve_verb.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>

#include "app/agent/audit/audit_batcher.h"
#include "app/agent/audit/audit_log.h"
#include "app/agent/audit/egress_ledger.h"
#include "app/agent/config/agent_config.h"
#include "app/agent/config/json_log.h"
#include "app/agent/metrics/registry.h"
#include "app/agent/policy/access_policy.h"
#include "app/agent/policy/policy_reload.h"
#include "app/agent/replicas/replica_manager.h"
#include "app/agent/replicas/serving_metrics.h"
#include "app/agent/scaling/autoscaler.h"
#include "app/agent/state/agent_health.h"
#include "app/agent/state/api_keys.h"
#include "app/agent/state/desired_state.h"
#include "app/agent/state/engine_validation_runner.h"
#include "app/cli/verb.h"
#include "app/common/paths.h"
#include "connectors/agent/agent_server.h"
#include "connectors/agent/identity_certs.h"
#include "connectors/http/inference_server.h"
#include "connectors/inventory/cloud_context.h"
#include "connectors/inventory/gpu_inventory.h"
#include "engine/base/build_info.h"

namespace sextant::agent {

namespace {

int Fail(const std::string& event, const Status& s) {
  LogEvent(spdlog::level::critical, event, {{"error", s.ToString()}});
  std::cerr << "sextant-agent: " << s.message() << "\n";
  return 1;
}

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "agent";
  return buf;
}

// Writes text to path atomically (temp file + rename), so readers never see half a file.
Status WriteAtomically(const std::filesystem::path& path, const std::string& text) {
  const auto tmp = path.string() + ".tmp";
  SEXTANT_RETURN_IF_ERROR(rpc::WriteTextFile(tmp, text, false));
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Status::Unavailable("cannot write " + path.string() + ": " + ec.message());
  return Status();
}

}  // namespace

int RunServe(const std::string& config_path) {
  InitJsonLogging();
  rpc::RouteGrpcLogsToJsonLog();
  // Signals are taken synchronously by this thread (sigwait); every thread started from here
  // on inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto config = AgentConfig::LoadFile(config_path);
  if (!config.ok()) return Fail("config_invalid", config.status());
  const AgentConfig& cfg = *config;
  if (cfg.policy.empty()) {
    return Fail("config_invalid",
                Status::InvalidArgument(config_path + ": 'policy' (the policy file) is required"));
  }
  if (cfg.grpc_ca.empty() || cfg.grpc_cert.empty() || cfg.grpc_key.empty()) {
    return Fail("config_invalid",
                Status::InvalidArgument(config_path +
                                        ": grpc.ca, grpc.cert and grpc.key are required (mutual "
                                        "TLS is mandatory)"));
  }
  if (Status s = EnsurePrivateDir(cfg.state_dir); !s.ok()) return Fail("state_dir", s);

  const std::set<std::string> rpcs = rpc::AgentRpcNames();
  auto policy = AgentPolicy::LoadFile(cfg.policy, rpcs);
  if (!policy.ok()) return Fail("policy_invalid", policy.status());
  PolicyHolder policy_holder(*policy);

  auto state = DesiredState::Open(cfg.state_dir);
  if (!state.ok()) return Fail("state_open", state.status());
  auto audit = AuditLog::Open(cfg.state_dir);
  if (!audit.ok()) return Fail("audit_open", audit.status());
  // Opening verified the whole chain and its signed checkpoints.
  auto chain = (*audit)->Verify();
  if (!chain.ok()) return Fail("audit_open", chain.status());
  agent::Registry registry;
  AgentHealth health(&registry);
  if (!chain->intact) {
    // The agent keeps running (refusing would hand an attacker a kill switch) but says so
    // loudly, in its health, its compliance facts and a record of the log itself.
    LogEvent(spdlog::level::critical, "audit_chain_broken",
             {{"first_broken_seq", chain->first_broken_seq}, {"reason", chain->reason}});
    health.SetDegraded(kAuditChainCondition, "audit chain broken: " + chain->reason);
    (void)(*audit)->Append({"agent:start", "agent", "VerifyAuditLog", "", "broken", chain->reason});
  }
  // Calls admitted before a crash whose outcome was never recorded.
  {
    auto marked =
        (*audit)->RecordInterrupted(rpc::AgentOutcomeRpcNames(), [&](const AuditRecord& r) {
          std::string now = "the agent stopped before the outcome of record " +
                            std::to_string(r.seq) + " was recorded";
          if (r.entry.rpc == "ApplyDeployment" || r.entry.rpc == "DeleteDeployment") {
            auto d = (*state)->Get(r.entry.target);
            now += d.ok() ? "; deployment '" + d->name + "' is now at generation " +
                                std::to_string(d->generation) + " (" + d->spec_digest +
                                ", applied by " + d->applied_by + ")"
                          : "; deployment '" + r.entry.target + "' does not exist now";
          }
          return now;
        });
    if (!marked.ok()) return Fail("audit_open", marked.status());
    if (*marked > 0) LogEvent(spdlog::level::warn, "audit_interrupted_calls", {{"count", *marked}});
  }
  auto egress = EgressLedger::Open(cfg.state_dir);
  if (!egress.ok()) return Fail("egress_open", egress.status());
  rpc::AgentServerOptions opts;
  opts.listen = cfg.grpc_listen;
  opts.agent_name = cfg.name.empty() ? HostName() : cfg.name;
  const auto grace = std::chrono::milliseconds(cfg.limits.shutdown_grace_ms);

  // Inventory (NVML / ROCm SMI through dlopen, else the CPU), cloud context (config, else
  // instance metadata with short timeouts, else on-prem), metrics for /metrics.
  agent::ServingMetrics serving(registry);
  inventory::DeviceInventory inventory({.node_name = opts.agent_name});
  auto device_metrics = inventory::ExportDeviceMetrics(inventory, registry);
  inventory::CloudContextProbe cloud(
      {.override_context = cfg.cloud,
       .timeout = std::chrono::milliseconds(cfg.limits.imds_timeout_ms)});
  opts.encryption_at_rest = cfg.encryption_at_rest;
  for (const auto& key_file : cfg.console_keys) {
    auto pem = rpc::ReadTextFile(key_file);
    if (!pem.ok()) return Fail("console_keys", pem.status());
    opts.console_keys_pem.push_back(*pem);
  }
  opts.max_stream_ms = cfg.limits.max_stream_ms;
  opts.state_dir = cfg.state_dir;
  for (const auto& key_file : cfg.admission.approval_keys) {
    auto pem = rpc::ReadTextFile(key_file);
    if (!pem.ok()) return Fail("admission", pem.status());
    opts.admission.approval_keys_pem.push_back(*pem);
  }
  opts.admission.approvals_file = cfg.admission.approvals;
  opts.admission.allowed_spec_digests = {cfg.admission.allow_specs.begin(),
                                         cfg.admission.allow_specs.end()};
  opts.admission.allowed_model_sha256 = {cfg.admission.allow_models.begin(),
                                         cfg.admission.allow_models.end()};
  opts.min_validation_tokens = cfg.validation.min_tokens_per_prompt;
  opts.validation_answers_burst = cfg.validation.answers_burst;
  opts.validation_answers_per_hour = cfg.validation.answers_per_hour;
  opts.denied_records_burst = cfg.limits.denied_records_burst;
  opts.denied_records_per_minute = cfg.limits.denied_records_per_minute;
  if (!cfg.grpc_crl.empty()) {
    auto crl = rpc::ReadTextFile(cfg.grpc_crl);
    if (!crl.ok()) return Fail("tls_files", crl.status());
    opts.crl_pem = *crl;
  }
  for (auto [path, out] :
       {std::pair{&cfg.grpc_ca, &opts.ca_pem}, std::pair{&cfg.grpc_cert, &opts.cert_pem},
        std::pair{&cfg.grpc_key, &opts.key_pem}}) {
    auto text = rpc::ReadTextFile(*path);
    if (!text.ok()) return Fail("tls_files", text.status());
    *out = *text;
  }
  rpc::AgentServerDeps deps;
  deps.state = state->get();
  deps.audit = audit->get();
  deps.policy = &policy_holder;
  deps.egress = egress->get();
  deps.inventory = &inventory;
  deps.cloud = &cloud;
  deps.health = &health;

  auto deployments = (*state)->List();
  if (!deployments.ok()) return Fail("state_open", deployments.status());

  // Replicas follow the desired state: restored now (static stability: no control plane
  // needed), then every durable change.
  const std::filesystem::path model_store =
      cfg.model_store.empty() ? cfg.state_dir / "models" : cfg.model_store;
  EngineValidationRunner validation(model_store);
  opts.model_store = model_store;
  deps.validation = &validation;
  agent::ReplicaManager manager({.model_store = model_store,
                                 .max_queue = cfg.limits.max_queue,
                                 .max_batch_cap = cfg.limits.max_batch,
                                 .drain_grace = grace,
                                 .inventory = &inventory,
                                 .audit = audit->get()},
                                &serving);
  const int subscription =
      (*state)->Subscribe([&manager](const DeploymentChange& c) { manager.OnChange(c); });
  for (const auto& record : *deployments) manager.ApplyRecord(record);
  deps.observer = &manager;
  // Scaling follows the specs' scaling sections locally, with or without a console.
  agent::Autoscaler autoscaler(manager);
  autoscaler.Start();

  // The inference API: keys from the state (another process adds and revokes them), every call
  // audited through one batching writer.
  auto api_keys = ApiKeyStore::Open(cfg.state_dir);
  if (!api_keys.ok()) return Fail("api_keys_open", api_keys.status());
  AuditBatcher inference_audit(**audit);
  auto http_addr = SplitHostPort(cfg.http_listen, "http.listen");
  if (!http_addr.ok()) return Fail("config_invalid", http_addr.status());
  http::InferenceServerOptions http_options;
  {
    http::HttpServerOptions& l = http_options.listener;
    const HttpLimits& hl = cfg.http_limits;
    l.host = http_addr->first;
    l.port = http_addr->second;
    l.tls_cert = cfg.http_cert;
    l.tls_key = cfg.http_key;
    l.tls_client_ca = cfg.http_client_ca;
    l.max_connections = hl.max_connections;
    l.max_connections_per_client = hl.max_connections_per_client;
    l.header_timeout = std::chrono::milliseconds(hl.header_timeout_ms);
    l.idle_timeout = std::chrono::milliseconds(hl.idle_timeout_ms);
    l.body_timeout = std::chrono::milliseconds(hl.body_timeout_ms);
    l.write_timeout = std::chrono::milliseconds(hl.write_timeout_ms);
    l.max_body_bytes = static_cast<size_t>(hl.max_body_bytes);
    l.max_decoded_body_bytes = static_cast<size_t>(hl.max_body_bytes);
    l.workers = hl.workers;
    http_options.json.max_depth = hl.max_json_depth;
    http_options.json.max_values = static_cast<size_t>(hl.max_json_values);
    http_options.metrics_need_key = cfg.http_metrics_need_key;
  }
  http::InferenceServer http_server(http_options, {.replicas = &manager,
                                                   .keys = api_keys->get(),
                                                   .audit = &inference_audit,
                                                   .metrics = &serving,
                                                   .registry = &registry});
  if (Status s = http_server.Start(); !s.ok()) return Fail("http_listen", s);

  auto server = rpc::AgentServer::Start(opts, deps);
  if (!server.ok()) return Fail("grpc_listen", server.status());
  auto host = SplitHostPort(cfg.grpc_listen, "grpc.listen");
  const std::string bound =
      (host.ok() ? host->first : "0.0.0.0") + ":" + std::to_string((*server)->port());
  // Where the listeners are, for scripts and tests that configured port 0 (http.addr first: a
  // reader that sees grpc.addr finds both).
  const std::string http_bound = http_addr->first + ":" + std::to_string(http_server.port());
  if (Status s = WriteAtomically(cfg.state_dir / "http.addr", http_bound + "\n"); !s.ok()) {
    LogEvent(spdlog::level::warn, "addr_file", {{"error", s.message()}});
  }
  if (Status s = WriteAtomically(cfg.state_dir / "grpc.addr", bound + "\n"); !s.ok()) {
    LogEvent(spdlog::level::warn, "addr_file", {{"error", s.message()}});
  }
  LogEvent(
      spdlog::level::info, "started",
      {{"version", GetBuildInfo().version},
       {"build_id", GetBuildInfo().BuildId()},
       {"grpc", bound},
       {"http", http_bound},
       {"state_dir", cfg.state_dir.string()},
       {"policy", cfg.policy.string()},
       {"policy_digest", "sha256:" + (*policy)->digest()},
       {"deployments_restored", deployments->size()},
       {"audit_records", chain->records},
       {"audit_key", chain->checkpoint_key_id},
       {"admission",
        opts.admission.approval_keys_pem.empty() && opts.admission.allowed_spec_digests.empty() &&
                opts.admission.allowed_model_sha256.empty()
            ? std::string("nothing configured: every apply is refused; ") + kAdmissionHowTo
            : "configured"}});

  while (true) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      // The policy, then the revocation list: each recorded, each failing closed (the old one
      // stays in force, the agent says it is degraded until a reload succeeds).
      (void)ReloadPolicy(cfg.policy, rpcs, policy_holder, **audit, health);
      if (!cfg.grpc_crl.empty()) {
        auto crl = rpc::ReadTextFile(cfg.grpc_crl);
        Status s = crl.ok() ? (*server)->ReloadRevocations(*crl) : crl.status();
        if (!crl.ok()) {
          health.SetDegraded(kRevocationListCondition,
                             s.message() + "; the previous list stays in force");
        }
        (void)(*audit)->Append({"agent:sighup", "agent", "ReloadRevocations", cfg.grpc_crl.string(),
                                s.ok() ? "ok" : "refused",
                                s.ok() ? std::string("revocation list reloaded") : s.message()});
        LogEvent(s.ok() ? spdlog::level::info : spdlog::level::err,
                 s.ok() ? "revocations_reloaded" : "revocations_reload_rejected",
                 {{"crl", cfg.grpc_crl.string()}, {"error", s.ok() ? "" : s.message()}});
      }
      continue;
    }
    LogEvent(spdlog::level::info, "stopping",
             {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"},
              {"grace_ms", cfg.limits.shutdown_grace_ms}});
    break;
  }
  http_server.Shutdown(grace);
  inference_audit.Stop();
  (*server)->Shutdown(grace);
  (*server)->Wait();
  (*state)->Unsubscribe(subscription);
  autoscaler.Stop();
  manager.Shutdown(grace);
  LogEvent(spdlog::level::info, "stopped");
  return 0;
}

}  // namespace sextant::agent

namespace sextant::cli {
namespace {

void SetupServe(CLI::App& root, VerbContext& ctx) {
  auto config = std::make_shared<std::string>(agent::kDefaultAgentConfigPath);
  CLI::App* serve = root.add_subcommand(
      "serve", "Run the agent: gRPC control API over mutual TLS, state, audit log");
  serve->add_option("--config", *config, "Agent configuration file (YAML)")->capture_default_str();
  serve->callback([config, &ctx] { ctx.exit_code = agent::RunServe(*config); });
}

}  // namespace

SEXTANT_REGISTER_VERB(serve, SetupServe);

}  // namespace sextant::cli
