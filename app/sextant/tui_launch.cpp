#include "app/sextant/tui_launch.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "app/common/deployment_spec.h"
#include "app/console/compliance/pack.h"
#include "app/console/cost/price_catalog.h"
#include "app/console/rollout/rollout.h"
#include "app/sextant/console_common.h"
#include "connectors/agent/agent_client.h"
#include "connectors/console/fleet_connector.h"
#include "connectors/console/push.h"

#include "ui/tui/console_actions.h"
#include "ui/tui/console_snapshot.h"
#include "ui/tui/terminal_ui.h"

namespace sextant::cli {
namespace {

using std::chrono::milliseconds;

// The RPCs each action needs on the target.
std::vector<std::string> RpcsFor(tui::ActionKind k) {
  switch (k) {
    case tui::ActionKind::kScale:
      return {"GetDeployment", "ApplyDeployment"};
    case tui::ActionKind::kRollback:
      return {"GetDeployment", "ApplyDeployment"};
    case tui::ActionKind::kRevalidate:
      return {"GetDeployment", "RunValidation"};
  }
  return {};
}

// Actions over the agents' gRPC API. What the console's role allows on each target comes from
// the agent itself (WhoAmI's allowed RPCs), asked on a thread of its own every minute, so
// Check() answers from memory.
class FleetActions : public tui::ConsoleActions {
 public:
  explicit FleetActions(console::ConsoleDatabase* store) : store_(store) {
    thread_ = std::thread([this] { RefreshRoles(); });
  }
  ~FleetActions() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  tui::ActionAvailability Check(tui::ActionKind kind, const tui::DeploymentRef& ref) override {
    std::lock_guard<std::mutex> l(mu_);
    auto it = roles_.find(ref.target);
    if (it == roles_.end()) {
      return {false,
              "the console's role on " + ref.target + " is not known yet (agent not reached)"};
    }
    for (const auto& rpc : RpcsFor(kind)) {
      if (!it->second.allowed.count(rpc)) {
        return {false, "role " + it->second.role + " may not call " + rpc + " on " + ref.target};
      }
    }
    return {true, ""};
  }

  Result<std::string> Run(tui::ActionKind kind, const tui::DeploymentRef& ref,
                          int replicas) override {
    switch (kind) {
      case tui::ActionKind::kScale:
        return Scale(ref, replicas);
      case tui::ActionKind::kRevalidate:
        return Revalidate(ref);
      case tui::ActionKind::kRollback:
        return Rollback(ref);
    }
    return Status::InvalidArgument("unknown action");
  }

 private:
  struct RoleInfo {
    std::string role;
    std::set<std::string> allowed;
  };

  Result<std::unique_ptr<rpc::AgentClient>> ClientFor(const std::string& target,
                                                      milliseconds deadline) {
    SEXTANT_ASSIGN_OR_RETURN(console::Target t, store_->targets().Get(target));
    SEXTANT_ASSIGN_OR_RETURN(auto opts, rpc::ClientOptionsFor(t, deadline));
    return rpc::AgentClient::Connect(opts);
  }

  // Scaling pins the replica count: the spec the agent holds is re-applied with
  // replicas min = max = N (a new spec digest), on the generation it was read at.
  Result<std::string> Scale(const tui::DeploymentRef& ref, int replicas) {
    SEXTANT_ASSIGN_OR_RETURN(auto client, ClientFor(ref.target, milliseconds(15000)));
    SEXTANT_ASSIGN_OR_RETURN(v1::Deployment cur, client->GetDeployment(ref.deployment));
    spec::SpecParseResult parsed = spec::ParseDeploymentSpec(cur.spec().spec_json());
    if (!parsed.ok()) {
      return Status::FailedPrecondition(
          "the spec " + ref.target + " holds does not parse: " + parsed.errors.front().ToString());
    }
    spec::DeploymentSpec s = parsed.spec;
    s.resources.replicas_min = replicas;
    s.resources.replicas_max = std::max(1, replicas);
    v1::ApplyDeploymentRequest req;
    auto* ref_out = req.mutable_spec();
    ref_out->set_name(cur.spec().name());
    ref_out->set_spec_json(spec::CanonicalJson(s));
    ref_out->set_spec_digest("sha256:" + spec::SpecDigest(s));
    ref_out->set_model_uri(cur.spec().model_uri());
    ref_out->set_model_sha256(cur.spec().model_sha256());
    req.set_if_generation(cur.generation());
    SEXTANT_ASSIGN_OR_RETURN(v1::ApplyDeploymentResponse resp, client->ApplyDeployment(req));
    return std::string(resp.changed() ? "applied" : "unchanged") + ", generation " +
           std::to_string(resp.generation()) + ", replicas " + std::to_string(replicas);
  }

  // The agent answers whether its outputs match the digests of this console's own passing
  // reports of the spec it runs (one set per backend); it never returns a digest of its own.
  Result<std::string> Revalidate(const tui::DeploymentRef& ref) {
    SEXTANT_ASSIGN_OR_RETURN(auto client, ClientFor(ref.target, milliseconds(300000)));
    SEXTANT_ASSIGN_OR_RETURN(v1::Deployment cur, client->GetDeployment(ref.deployment));
    v1::RunValidationRequest req;
    req.set_name(ref.deployment);
    req.set_generation(cur.generation());
    {
      console::ReportRepository& reports = store_->reports();
      SEXTANT_ASSIGN_OR_RETURN(auto stored,
                               reports.List(console::BareDigest(cur.spec().spec_digest())));
      std::set<std::string> backends;
      for (const auto& r : stored) {
        if (!r.passed) continue;
        auto parsed =
            report::FromJson(nlohmann::json::parse(r.signed_report.report_json, nullptr, false));
        if (!parsed.ok() || !backends.insert(parsed->backend).second) continue;
        auto* e = req.add_expected();
        e->set_backend(parsed->backend);
        for (const auto& p : parsed->prompts) e->add_prompt_output_digests(p.output_digest);
      }
    }
    if (req.expected().empty()) {
      return Status::FailedPrecondition("this console has no passing report of " +
                                        cur.spec().spec_digest().substr(0, 19) +
                                        " to compare the target's outputs with");
    }
    SEXTANT_ASSIGN_OR_RETURN(v1::RunValidationResponse r, client->RunValidation(req));
    double tps = 0;
    for (const auto& p : r.prompts()) tps += p.decode_tokens_per_second();
    if (r.prompts_size() > 0) tps /= r.prompts_size();
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f", tps);
    return std::to_string(r.prompts_size()) + " prompts on " + r.backend() +
           (r.device().empty() ? "" : " (" + r.device() + ")") + ", " +
           std::to_string(r.prompts_matching()) + "/" + std::to_string(r.prompts_size()) +
           " match the " + r.compared_with_backend() + " report" +
           (r.output_matches() ? "" : " (MISMATCH)") + ", " + buf + " tok/s";
  }

  // Rollback returns every target of the deployment's latest push to its previous generation
  // (the rollout journal in the console store knows what that was).
  Result<std::string> Rollback(const tui::DeploymentRef& ref) {
    SEXTANT_ASSIGN_OR_RETURN(console::PushResult r,
                             rpc::RollbackFromStore(*store_, ref.deployment));
    int done = 0;
    std::string failed;
    for (const auto& t : r.targets) {
      if (t.state == console::TargetState::kRolledBack || t.state == console::TargetState::kDone) {
        ++done;
      } else if (t.state == console::TargetState::kFailed) {
        failed += (failed.empty() ? "" : ", ") + t.target + ": " + t.error;
      }
    }
    if (!failed.empty()) return Status::Aborted("rollback failed on " + failed);
    return "rolled back on " + std::to_string(done) + " target(s)";
  }

  void RefreshRoles() {
    std::unique_lock<std::mutex> l(mu_);
    while (!stop_) {
      l.unlock();
      std::map<std::string, RoleInfo> found;
      auto targets = store_->targets().List();
      if (targets.ok()) {
        for (const auto& t : *targets) {
          {
            std::lock_guard<std::mutex> g(mu_);
            if (stop_) return;
          }
          auto id = rpc::TestTarget(t, milliseconds(3000));
          if (!id.ok()) continue;
          RoleInfo info;
          info.role = id->role;
          info.allowed.insert(id->allowed_rpcs.begin(), id->allowed_rpcs.end());
          found[t.name] = std::move(info);
        }
      }
      l.lock();
      for (auto& [name, info] : found) roles_[name] = std::move(info);
      // Until every target answered once, ask again soon.
      const bool all = targets.ok() && found.size() == targets->size();
      cv_.wait_for(l, all ? std::chrono::seconds(60) : std::chrono::seconds(5),
                   [this] { return stop_; });
    }
  }

  console::ConsoleDatabase* store_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                      // GUARDED_BY(mu_)
  std::map<std::string, RoleInfo> roles_;  // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace

int RunTuiOnState(const TuiOptions& o) {
  auto st = OpenConsoleDatabase(o.state);
  if (!st.ok()) return ReportError("tui", st.status());
  console::ConsoleDatabase* store = st->get();

  // Prices and policy packs: without them the cost view and compliance alerts say why.
  std::unique_ptr<console::PriceCatalog> catalog;
  std::string catalog_error;
  if (auto dir = FindResourceDir("prices"); dir.ok()) {
    auto c = console::PriceCatalog::LoadDir(*dir);
    if (c.ok()) {
      catalog = std::make_unique<console::PriceCatalog>(std::move(c).value());
    } else {
      catalog_error = c.status().message();
    }
  } else {
    catalog_error = dir.status().message();
  }
  std::vector<console::PolicyPack> packs;
  bool have_packs = false;
  if (auto dir = FindResourceDir("policies"); dir.ok()) {
    auto p = console::LoadPacks(*dir);
    if (p.ok()) {
      packs = std::move(p).value();
      have_packs = true;
    }
  }

  rpc::ConnectorOptions copts;
  copts.stale_after = milliseconds(int64_t{o.stale_after_s} * 1000);
  copts.metrics_interval_ms = o.metrics_interval_ms;
  copts.call_deadline = milliseconds(5000);
  copts.backoff_initial = milliseconds(1000);
  copts.backoff_max = milliseconds(10000);
  rpc::FleetConnector connector(store, copts);
  if (auto targets = store->targets().List(); targets.ok()) connector.Start(*targets);

  tui::SnapshotSources src;
  src.store = store;
  src.catalog = catalog.get();
  src.catalog_error = catalog_error;
  src.packs = have_packs ? &packs : nullptr;
  src.stale_after_ms = int64_t{o.stale_after_s} * 1000;
  console::TimeMs last_target_scan = console::NowMs();
  // Runs on the poller's thread only.
  auto loader = [&](bool heavy, const tui::ConsoleSnapshot* prev) {
    const console::TimeMs now = console::NowMs();
    if (now - last_target_scan > 5000) {  // targets added while the UI runs join the fleet
      last_target_scan = now;
      if (auto targets = store->targets().List(); targets.ok()) connector.Start(*targets);
    }
    return tui::LoadSnapshot(src, now, heavy, prev);
  };
  const int heavy_every = std::max(1, 10000 / std::max(100, o.refresh_ms));
  tui::SnapshotPoller poller(loader, milliseconds(std::max(100, o.refresh_ms)), heavy_every);

  std::unique_ptr<FleetActions> actions;
  if (!o.readonly) actions = std::make_unique<FleetActions>(store);

  tui::TerminalUiOptions uo;
  uo.readonly = o.readonly;
  uo.state_label = store->path().parent_path().string();
  uo.initial_view = o.view;
  const int rc = tui::RunTerminalUi(uo, poller, actions.get());
  poller.Stop();
  actions.reset();
  connector.Stop();
  return rc;
}

}  // namespace sextant::cli
