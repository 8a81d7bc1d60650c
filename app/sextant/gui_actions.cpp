#include "app/sextant/gui_actions.h"

#include <algorithm>
#include <deque>

#include "app/common/deployment_spec.h"
#include "app/common/signing.h"
#include "app/common/validation_runner.h"
#include "app/console/rollout/rollout.h"
#include "connectors/agent/agent_client.h"
#include "connectors/console/push.h"

namespace sextant::cli {

namespace {

ui::PushProgress FromEvent(const console::PushEvent& e) {
  return {e.target, std::string(console::TargetStateName(e.state)), e.message};
}

ui::PushOutcome FromResult(const console::PushResult& r) {
  ui::PushOutcome o;
  o.ok = r.ok;
  o.no_op = r.no_op;
  o.deployment = r.deployment;
  o.stopped_because = r.stopped_because;
  for (const auto& t : r.targets) {
    std::string message = t.error;
    if (message.empty() && !t.comparison.empty()) message = t.comparison;
    o.targets.push_back({t.target, std::string(console::TargetStateName(t.state)), message,
                         t.generation, t.previous_generation});
  }
  return o;
}

}  // namespace

ConnectorConsoleActions::ConnectorConsoleActions(console::ConsoleDatabase* store,
                                                 rpc::FleetConnector* connector,
                                                 GuiActionOptions options)
    : store_(store), connector_(connector), options_(std::move(options)) {}

Result<ui::TargetTestResult> ConnectorConsoleActions::TestTarget(const std::string& target) {
  SEXTANT_ASSIGN_OR_RETURN(console::Target t, store_->targets().Get(target));
  SEXTANT_ASSIGN_OR_RETURN(rpc::TargetIdentity id, rpc::TestTarget(t, options_.call_deadline));
  ui::TargetTestResult r;
  r.identity = id.identity;
  r.role = id.role;
  r.allowed_rpcs = id.allowed_rpcs;
  r.agent_name = id.agent_name;
  r.agent_version = id.agent_version;
  return r;
}

Status ConnectorConsoleActions::AddTarget(const console::Target& target) {
  SEXTANT_RETURN_IF_ERROR(store_->targets().Add(target));
  if (connector_ != nullptr) {
    SEXTANT_ASSIGN_OR_RETURN(console::Target stored, store_->targets().Get(target.name));
    std::lock_guard<std::mutex> lock(connector_mu_);
    connector_->Start({stored});
  }
  return Status();
}

Status ConnectorConsoleActions::RemoveTarget(const std::string& target) {
  if (connector_ == nullptr) return store_->targets().Remove(target);
  // The connector has no per-target stop: stop all, remove, restart the rest.
  std::lock_guard<std::mutex> lock(connector_mu_);
  connector_->Stop();
  Status removed = store_->targets().Remove(target);
  auto rest = store_->targets().List();
  if (rest.ok()) connector_->Start(*rest);
  if (!removed.ok()) return removed;
  return rest.ok() ? Status() : rest.status();
}

Result<ui::AuditFetch> ConnectorConsoleActions::FetchAudit(const std::string& target,
                                                           int max_records) {
  SEXTANT_ASSIGN_OR_RETURN(console::Target t, store_->targets().Get(target));
  SEXTANT_ASSIGN_OR_RETURN(rpc::AgentClientOptions o,
                           rpc::ClientOptionsFor(t, options_.call_deadline));
  SEXTANT_ASSIGN_OR_RETURN(auto client, rpc::AgentClient::Connect(o));
  ui::AuditFetch fetch;
  fetch.target = target;
  std::deque<ui::AuditRow> rows;
  v1::ListAuditLogRequest req;
  req.set_page_size(1000);
  // Pages run oldest to newest; only the newest max_records are kept.
  for (int page = 0; page < 10000; ++page) {
    SEXTANT_ASSIGN_OR_RETURN(v1::ListAuditLogResponse resp, client->ListAuditLog(req));
    for (const auto& r : resp.records()) {
      rows.push_back({target, r.seq(), r.time(), r.identity(), r.role(), r.rpc(), r.target(),
                      r.outcome(), r.hash()});
      if (static_cast<int>(rows.size()) > max_records) rows.pop_front();
    }
    fetch.chain_verified = resp.head().verified();
    fetch.head_seq = resp.head().seq();
    fetch.first_broken_seq = resp.head().first_broken_seq();
    fetch.broken_reason = resp.head().broken_reason();
    fetch.scope = resp.scope();
    if (resp.next_after_seq() == 0 || resp.records_size() == 0) break;
    req.set_after_seq(resp.next_after_seq());
  }
  fetch.records.assign(rows.begin(), rows.end());
  return fetch;
}

Result<ui::ValidationOutcome> ConnectorConsoleActions::Validate(
    const std::string& spec_file, const std::string& model_dir,
    const std::function<void(std::string_view stage, double fraction)>& progress,
    const std::atomic<bool>& cancel) {
  SEXTANT_ASSIGN_OR_RETURN(spec::DeploymentSpec spec, spec::LoadDeploymentSpec(spec_file));
  SEXTANT_ASSIGN_OR_RETURN(std::filesystem::path key_path,
                           options_.signing_key.empty()
                               ? report::DefaultSigningKeyPath()
                               : Result<std::filesystem::path>(options_.signing_key));
  SEXTANT_ASSIGN_OR_RETURN(report::SigningKey key, report::SigningKey::LoadOrCreate(key_path));
  if (cancel.load()) return Status::Cancelled("validation cancelled before it started");

  validate::ValidateOptions vo;
  vo.model_dir = model_dir;
  vo.on_progress = [&progress](std::string_view stage, double f) {
    if (progress) progress(stage, f);
  };
  // Polled per chunk of the sha256, per step of the load and per token: the engine stops.
  vo.cancelled = [&cancel] { return cancel.load(); };
  SEXTANT_ASSIGN_OR_RETURN(validate::ValidationRun run, validate::RunValidation(spec, vo));
  // A cancel that lands after the last token still stores nothing.
  if (cancel.load()) return Status::Cancelled("validation cancelled; no report was stored");

  SEXTANT_ASSIGN_OR_RETURN(report::SignedReport signed_report, report::SignReport(run.report, key));
  console::ReportRepository& reports = store_->reports();
  SEXTANT_ASSIGN_OR_RETURN(int64_t id, reports.Add(run.report, signed_report));

  const report::ValidationReport& r = run.report;
  ui::ValidationOutcome o;
  o.report_id = id;
  o.passed = r.passed;
  o.spec_name = r.spec_name;
  o.spec_digest = r.spec_digest;
  o.model_sha256 = r.model_sha256;
  o.backend = r.backend;
  o.device = r.device;
  o.output_digest = r.output_digest;
  o.worst_ttft_ms = r.worst_ttft_ms;
  o.tokens_per_second = r.tokens_per_second;
  o.failures = r.failures;
  for (const auto& p : r.prompts) {
    o.prompts.push_back(
        {p.index, p.generated_tokens, p.ttft_ms, p.tokens_per_second, p.output_digest});
  }
  return o;
}

Result<ui::PushOutcome> ConnectorConsoleActions::Push(
    const ui::PushArgs& args, const std::function<void(const ui::PushProgress&)>& progress,
    const std::atomic<bool>& cancel) {
  if (cancel.load()) return Status::Cancelled("push cancelled before it started");
  rpc::PushRequest req;
  req.spec_file = args.spec_file;
  req.targets = args.targets;
  req.canary = args.canary;
  req.max_unavailable = args.max_unavailable;
  req.signing_key = options_.signing_key;
  req.on_event = [&progress](const console::PushEvent& e) {
    if (progress) progress(FromEvent(e));
  };
  SEXTANT_ASSIGN_OR_RETURN(console::PushResult result, rpc::PushFromStore(*store_, req));
  return FromResult(result);
}

Result<ui::PushOutcome> ConnectorConsoleActions::Rollback(
    const std::string& deployment, const std::function<void(const ui::PushProgress&)>& progress) {
  rpc::RollbackRequest req;
  req.on_event = [&progress](const console::PushEvent& e) {
    if (progress) progress(FromEvent(e));
  };
  SEXTANT_ASSIGN_OR_RETURN(console::PushResult result,
                           rpc::RollbackFromStore(*store_, deployment, req));
  return FromResult(result);
}

}  // namespace sextant::cli
