// `sextant demo`: the whole story on one machine. A CA and identities, three real agents on
// 127.0.0.1 declaring the cloud contexts aws/eu-west-1, gcp/us-central1 and on-prem, the example
// spec validated on the embedded engine (signed report), the identical deployment pushed to the
// three agents (each checks its own copy of the model and re-runs the validation prompts), then
// the fleet, the output digests, cost and compliance: in the desktop console where a display
// exists, in the terminal UI with --tui, as a text summary, or as JSON with --headless -o json.
// Every agent is stopped before the program exits (Ctrl-C too); --keep keeps them running, with
// the state directory, until Ctrl-C.
// Exit status: 0 when every target runs the deployment with the local output digest, 1
// otherwise, 2 for usage errors.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "app/cli/verb.h"
#include "app/common/paths.h"
#include "app/console/compliance/pack.h"
#include "app/console/cost/cost_model.h"
#include "app/sextant/console_common.h"
#include "app/sextant/demo_fleet.h"
#include "app/sextant/tui_launch.h"
#include "connectors/console/fleet_connector.h"
#include "connectors/console/push.h"
#if defined(SEXTANT_WITH_GUI)
#include "app/sextant/gui_launch.h"
#endif

namespace sextant::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct DemoArgs {
  bool headless = false;
  std::string output = "table";
  bool tui = false;
  std::string screenshots;
  bool keep = false;
  std::string state;
  std::string model;
  std::string agent_binary;
  std::string spec;
  std::string key;
};

double Seconds(Clock::duration d) {
  return std::round(std::chrono::duration<double>(d).count() * 1000.0) / 1000.0;
}

double Money(double v) { return std::round(v * 10000.0) / 10000.0; }

// Signals end the demo cleanly from any point: a thread takes SIGINT, SIGTERM and SIGHUP
// (blocked in every other thread, including gRPC's, which inherit the mask), stops the agents
// and exits. Agents start with an empty mask (demo_fleet.cpp).
class SignalGuard {
 public:
  explicit SignalGuard(demo::DemoFleet* fleet) : fleet_(fleet) {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGHUP);
    sigaddset(&set_, SIGUSR1);  // our own "stop watching"
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
    thread_ = std::thread([this] {
      int sig = 0;
      while (sigwait(&set_, &sig) != 0) {
      }
      if (sig == SIGUSR1) return;
      if (waiting_.load()) {  // --keep: the main thread is waiting for exactly this
        received_ = sig;
        return;
      }
      std::cerr << "\nsextant demo: " << (sig == SIGINT ? "interrupted" : "terminated")
                << ", stopping the agents\n";
      fleet_->Stop();
      std::_Exit(128 + sig);
    });
  }
  ~SignalGuard() {
    if (thread_.joinable()) {
      pthread_kill(thread_.native_handle(), SIGUSR1);
      thread_.join();
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  // Blocks until SIGINT, SIGTERM or SIGHUP; returns it.
  int WaitForSignal() {
    waiting_ = true;
    thread_.join();
    return received_;
  }

 private:
  demo::DemoFleet* fleet_;
  sigset_t set_{}, old_{};
  std::thread thread_;
  std::atomic<bool> waiting_{false};
  int received_ = 0;
};

nlohmann::json CostSummary(console::ConsoleDatabase& st) {
  nlohmann::json out = nlohmann::json::object();
  auto prices = FindResourceDir("prices");
  if (!prices.ok()) return {{"error", prices.status().message()}};
  auto catalog = console::PriceCatalog::LoadDir(*prices);
  if (!catalog.ok()) return {{"error", catalog.status().message()}};
  auto targets = st.targets().List();
  auto facts = st.facts().List();
  auto gpus = st.telemetry().ListGpus();
  if (!targets.ok() || !facts.ok() || !gpus.ok()) {
    return {{"error", "cannot read the console store"}};
  }
  const auto infos = console::TargetsFromStore(*targets, *facts, *gpus);
  const console::TimeMs since = console::NowMs() - 3'600'000;
  auto usage = st.telemetry().HourlyUsage(since);
  if (!usage.ok()) return {{"error", usage.status().message()}};
  const auto report = console::ComputeCost(*usage, infos, *catalog, console::GroupBy::kTarget);
  nlohmann::json lines = nlohmann::json::array();
  for (const auto& info : infos) {
    nlohmann::json line = {{"target", info.name},
                           {"provider", info.pricing.provider},
                           {"region", info.pricing.region},
                           {"instance_type", info.pricing.instance_type}};
    auto rate = catalog->Rate(info.pricing);
    if (rate.ok()) {
      line["usd_per_gpu_hour"] = Money(rate->usd_per_gpu_hour);
      line["gpu_model"] = rate->gpu_model;
      line["price_source"] = rate->origin;
    } else {
      line["usd_per_gpu_hour"] = nullptr;
      line["unpriced"] = rate.status().message();
    }
    for (const auto& l : report.lines) {
      if (l.key != info.name) continue;
      line["gpu_hours"] = l.gpu_hours_provisioned;
      line["provisioned_usd"] = Money(l.provisioned_usd);
      line["allocated_usd"] = Money(l.allocated_usd);
      line["idle_usd"] = Money(l.idle_usd);
      line["generated_tokens"] = l.generated_tokens;
      line["usd_per_million_tokens"] =
          l.usd_per_million_tokens ? nlohmann::json(Money(*l.usd_per_million_tokens)) : nullptr;
    }
    lines.push_back(line);
  }
  out["window"] = "1h";
  out["targets"] = lines;
  out["total"] = {{"gpu_hours", report.total.gpu_hours_provisioned},
                  {"provisioned_usd", Money(report.total.provisioned_usd)},
                  {"allocated_usd", Money(report.total.allocated_usd)},
                  {"idle_usd", Money(report.total.idle_usd)},
                  {"generated_tokens", report.total.generated_tokens}};
  out["unpriced"] = report.unpriced;
  return out;
}

nlohmann::json ComplianceSummary(console::ConsoleDatabase& st) {
  auto dir = FindResourceDir("policies");
  if (!dir.ok()) return {{"error", dir.status().message()}};
  auto packs = console::LoadPacks(*dir);
  if (!packs.ok()) return {{"error", packs.status().message()}};
  console::EvaluationInput in;
  in.now = console::NowMs();
  auto targets = st.targets().List();
  auto facts = st.facts().List();
  auto reports = console::LoadValidationRecords(st);
  if (!targets.ok() || !facts.ok() || !reports.ok()) {
    return {{"error", "cannot read the console store"}};
  }
  for (const auto& t : *targets) in.targets.push_back(t.name);
  in.facts = std::move(facts).value();
  in.reports = std::move(reports).value();
  nlohmann::json pack_names = nlohmann::json::array();
  std::map<std::string, nlohmann::json> per_target;
  for (const auto& t : in.targets) {
    per_target[t] = {{"target", t},
                     {"pass", 0},
                     {"fail", 0},
                     {"warn", 0},
                     {"unknown", 0},
                     {"verdict", "pass"},
                     {"failed_rules", nlohmann::json::array()}};
  }
  for (const auto& pack : *packs) {
    pack_names.push_back(pack.name);
    for (const auto& f : console::Evaluate(pack, in)) {
      auto it = per_target.find(f.target);
      if (it == per_target.end()) continue;
      auto& t = it->second;
      const std::string v(console::VerdictName(f.verdict));
      t[v] = t[v].get<int>() + 1;
      if (f.verdict == console::Verdict::kFail) {
        t["verdict"] = "fail";
        t["failed_rules"].push_back(
            {{"pack", f.pack}, {"rule", f.rule_id}, {"message", f.message}});
      } else if (f.verdict != console::Verdict::kPass && t["verdict"] == "pass") {
        t["verdict"] = v;
      }
    }
  }
  nlohmann::json out = {{"packs", pack_names}, {"targets", nlohmann::json::array()}};
  for (auto& [name, t] : per_target) out["targets"].push_back(t);
  return out;
}

void PrintText(const nlohmann::json& s) {
  std::cout << "\nSextant demo: one deployment, validated here, identical on three clouds\n\n";
  const auto& m = s["model"];
  std::cout << "model       " << m["description"].get<std::string>() << "\n"
            << "            sha256 " << m["sha256"].get<std::string>() << "\n";
  const auto& d = s["deployment"];
  std::cout << "deployment  " << d["name"].get<std::string>() << "  spec digest "
            << d["spec_digest"].get<std::string>() << "\n"
            << "validated   on the embedded engine (" << d["backend"].get<std::string>() << ", "
            << d["device"].get<std::string>()
            << "): " << (d["passed"].get<bool>() ? "passed" : "FAILED")
            << ", signed report stored\n"
            << "            output digest " << d["output_digest"].get<std::string>() << "\n\n";

  std::cout << std::left << std::setw(18) << "target" << std::setw(17) << "cloud" << std::setw(17)
            << "endpoint" << std::setw(12) << "rollout" << std::setw(10) << "backend"
            << "output digest\n";
  for (const auto& t : s["targets"]) {
    std::string digest = t.value("output_digest", std::string());
    const bool same = t.value("matches_local", false);
    std::cout << std::left << std::setw(18) << t["name"].get<std::string>() << std::setw(17)
              << t["cloud_context"].get<std::string>() << std::setw(17)
              << t["endpoint"].get<std::string>() << std::setw(12)
              << t.value("rollout", std::string("-")) << std::setw(10)
              << t.value("backend", std::string("-"))
              << (digest.empty() ? std::string("-") : digest.substr(0, 16) + "...")
              << (digest.empty() ? ""
                  : same         ? "  = local"
                                 : "  DIFFERS from local")
              << "\n";
    if (t.contains("error") && !t["error"].get<std::string>().empty()) {
      std::cout << "                  " << t["error"].get<std::string>() << "\n";
    }
  }
  const auto& push = s["push"];
  std::cout << "\npush        " << (push.value("ok", false) ? "ok" : "FAILED");
  if (push.contains("stopped_because") && !push["stopped_because"].get<std::string>().empty()) {
    std::cout << ": " << push["stopped_because"].get<std::string>();
  }
  std::cout << "\n            "
            << (s["identical"].get<bool>()
                    ? "every target reproduces the local greedy output exactly"
                    : "NOT every target reproduces the local output")
            << "\n\n";

  const auto& c = s["cost"];
  std::cout << "cost (last hour, price catalogs in resources/prices)\n";
  if (c.contains("error")) {
    std::cout << "  " << c["error"].get<std::string>() << "\n";
  } else {
    for (const auto& l : c["targets"]) {
      std::cout << "  " << std::left << std::setw(18) << l["target"].get<std::string>();
      if (l["usd_per_gpu_hour"].is_null()) {
        std::cout << "unpriced: " << l.value("unpriced", std::string()) << "\n";
      } else {
        std::cout << "$" << l["usd_per_gpu_hour"].get<double>() << " per GPU-hour ("
                  << l.value("gpu_model", std::string()) << " on "
                  << l["instance_type"].get<std::string>() << "), " << l.value("gpu_hours", 0.0)
                  << " GPU-hours so far: $" << l.value("provisioned_usd", 0.0) << "\n";
      }
    }
    std::cout << "  total             $" << c["total"]["provisioned_usd"].get<double>()
              << " provisioned, $" << c["total"]["allocated_usd"].get<double>()
              << " allocated (these agents run on this machine's CPU: no GPU-hours)\n";
  }
  std::cout << "\ncompliance (policy packs in resources/policies)\n";
  const auto& co = s["compliance"];
  if (co.contains("error")) {
    std::cout << "  " << co["error"].get<std::string>() << "\n";
  } else {
    for (const auto& t : co["targets"]) {
      std::cout << "  " << std::left << std::setw(18) << t["target"].get<std::string>()
                << std::setw(6) << t["verdict"].get<std::string>() << t["pass"].get<int>()
                << " passed, " << t["fail"].get<int>() << " failed, " << t["warn"].get<int>()
                << " warnings, " << t["unknown"].get<int>() << " unknown\n";
      for (const auto& r : t["failed_rules"]) {
        std::cout << "      " << r["pack"].get<std::string>() << " " << r["rule"].get<std::string>()
                  << ": " << r["message"].get<std::string>() << "\n";
      }
    }
  }
  std::cout << "\ntook " << s["wall_seconds"].get<double>() << " s (agents "
            << s["phases"]["start_agents_s"].get<double>() << " s, local validation "
            << s["phases"]["validate_s"].get<double>() << " s, push "
            << s["phases"]["push_s"].get<double>() << " s, refresh "
            << s["phases"]["refresh_s"].get<double>() << " s)\n";
}

// What the push did, per target (the parts of console::PushResult the summary shows).
struct PushOutcome {
  struct Target {
    std::string target, state, output_digest, backend, device, comparison, error;
    int64_t generation = 0;
  };
  bool ok = false;
  bool no_op = false;
  std::string stopped_because;
  std::vector<Target> targets;
};

PushOutcome Push(demo::DemoFleet& fleet) {
  PushOutcome out;
  rpc::PushRequest req;
  req.spec_file = fleet.spec_file();
  req.targets = fleet.target_names();
  req.max_unavailable = 1;
  req.signing_key = fleet.signing_key_path();
  req.on_event = [](const console::PushEvent& e) {
    std::cerr << "demo:   " << e.target << ": " << console::TargetStateName(e.state)
              << (e.message.empty() ? "" : " (" + e.message + ")") << "\n";
  };
  auto pushed = rpc::PushFromStore(fleet.store(), req);
  if (!pushed.ok()) {
    out.stopped_because = pushed.status().message();
    return out;
  }
  out.ok = pushed->ok;
  out.no_op = pushed->no_op;
  out.stopped_because = pushed->stopped_because;
  for (const auto& t : pushed->targets) {
    out.targets.push_back({t.target, std::string(console::TargetStateName(t.state)),
                           t.output_digest, t.backend, t.device, t.comparison, t.error,
                           t.generation});
  }
  return out;
}

// Whether ShowInGui can open the desktop console.
bool GuiBuilt() {
#if defined(SEXTANT_WITH_GUI)
  return true;
#else
  return false;
#endif
}

// The desktop console on the demo's state, while the agents run; with screenshots_dir, every
// view rendered to a PNG file and closed.
int ShowInGui(const std::string& state, const std::string& screenshots_dir,
              const std::string& spec) {
#if defined(SEXTANT_WITH_GUI)
  static char arg0[] = "sextant";
  static char* argv[] = {arg0, nullptr};
  GuiLaunchOptions o;
  o.state = state;
  o.screenshots_dir = screenshots_dir;
  o.spec = spec;
  o.argc = 1;
  o.argv = argv;
  return LaunchGui(o);
#else
  (void)state;
  (void)screenshots_dir;
  (void)spec;
  std::cerr << "sextant demo: this build of sextant has no desktop console\n";
  return 2;
#endif
}

// The terminal UI on the demo's state until the user quits it.
int ShowInTui(const std::string& state) {
  TuiOptions o;
  o.state = state;
  return RunTuiOnState(o);
}

bool DisplayAvailable() {
  const char* x = std::getenv("DISPLAY");
  const char* w = std::getenv("WAYLAND_DISPLAY");
  return (x && *x) || (w && *w);
}

int Demo(const DemoArgs& a) {
  const bool json = a.output == "json";
  if (!a.screenshots.empty() && a.tui) {
    return UsageError("demo", "--screenshots and --tui exclude each other");
  }
  const auto t0 = Clock::now();
  auto fleet = std::make_unique<demo::DemoFleet>();
  SignalGuard signals(fleet.get());

  demo::DemoOptions o;
  o.state_dir = a.state;
  o.keep = a.keep;
  o.model = a.model;
  o.agent_binary = a.agent_binary;
  o.spec_template = a.spec;
  o.signing_key = a.key;
  o.on_step = [](const std::string& line) { std::cerr << "demo: " << line << "\n"; };
  if (Status s = fleet->Start(o); !s.ok()) return ReportError("demo", s);
  const auto t_started = Clock::now();

  std::cerr << "demo: validating " << fleet->spec_file().string() << " on the embedded engine\n";
  auto validated = fleet->Validate();
  if (!validated.ok()) return ReportError("demo", validated.status());
  const report::ValidationReport& local = *validated;
  const auto t_validated = Clock::now();
  if (!local.passed) {
    std::string why;
    for (const auto& f : local.failures) why += "\n  " + f;
    return ReportError("demo", Status::FailedPrecondition(
                                   "local validation did not pass, nothing to push:" + why));
  }

  // The customer admits the spec (its agents refuse any spec it did not approve).
  if (Status s = fleet->Approve(); !s.ok()) return ReportError("demo", s);
  std::cerr << "demo: pushing " << local.spec_name << " (spec " << local.spec_digest.substr(0, 12)
            << ") to " << fleet->target_names().size() << " agents\n";
  auto pushed = Push(*fleet);
  const auto t_pushed = Clock::now();

  rpc::ConnectorOptions co;
  co.call_deadline = std::chrono::milliseconds(5000);
  auto targets = fleet->store().targets().List();
  std::vector<console::Target> ours;
  if (targets.ok()) {
    for (const auto& t : *targets) {
      for (const auto& n : fleet->target_names()) {
        if (t.name == n) ours.push_back(t);
      }
    }
  }
  std::map<std::string, console::TargetStatus> status;
  for (const auto& s : rpc::RefreshAll(fleet->store(), ours, co)) status[s.target] = s;
  const auto t_refreshed = Clock::now();

  nlohmann::json summary;
  summary["model"] = {
      {"path", fleet->model().path.string()},
      {"sha256", fleet->model().sha256},
      {"synthesized", fleet->model().synthesized},
      {"name", fleet->model().synthesized ? "stories260k-like (synthesized)"
                                          : fleet->model().path.filename().string()},
      {"description", fleet->model().description}};
  summary["deployment"] = {{"name", local.spec_name},
                           {"spec_digest", local.spec_digest},
                           {"spec_file", fleet->spec_file().string()},
                           {"model_sha256", local.model_sha256},
                           {"output_digest", local.output_digest},
                           {"backend", local.backend},
                           {"device", local.device},
                           {"engine_build_id", local.engine_build_id},
                           {"passed", local.passed},
                           {"worst_ttft_ms", local.worst_ttft_ms},
                           {"tokens_per_second", local.tokens_per_second}};
  summary["push"] = {
      {"ok", pushed.ok}, {"no_op", pushed.no_op}, {"stopped_because", pushed.stopped_because}};
  bool identical = pushed.ok;
  nlohmann::json tj = nlohmann::json::array();
  for (const auto& agent : fleet->agents()) {
    nlohmann::json t = {{"name", agent.name},
                        {"cloud_context", agent.cloud_context},
                        {"provider", agent.provider},
                        {"region", agent.region},
                        {"endpoint", agent.endpoint},
                        {"http_endpoint", agent.http_endpoint},
                        {"pid", agent.pid}};
    auto st = status.find(agent.name);
    t["status"] =
        st == status.end() ? "unknown" : std::string(console::ConnStateName(st->second.state));
    if (st != status.end() && !st->second.error.empty()) t["status_error"] = st->second.error;
    std::string digest;
    for (const auto& out : pushed.targets) {
      if (out.target != agent.name) continue;
      digest = out.output_digest;
      t["rollout"] = out.state;
      t["generation"] = out.generation;
      t["backend"] = out.backend;
      t["device"] = out.device;
      t["comparison"] = out.comparison;
      if (!out.error.empty()) t["error"] = out.error;
    }
    t["output_digest"] = digest;
    t["matches_local"] = !digest.empty() && digest == local.output_digest;
    identical = identical && t["matches_local"].get<bool>();
    tj.push_back(t);
  }
  summary["targets"] = tj;
  summary["identical"] = identical;
  summary["cost"] = CostSummary(fleet->store());
  summary["compliance"] = ComplianceSummary(fleet->store());
  summary["state_dir"] = fleet->state_dir().string();
  summary["state_kept"] = !fleet->state_is_temporary();
  summary["phases"] = {{"start_agents_s", Seconds(t_started - t0)},
                       {"validate_s", Seconds(t_validated - t_started)},
                       {"push_s", Seconds(t_pushed - t_validated)},
                       {"refresh_s", Seconds(t_refreshed - t_pushed)}};
  summary["wall_seconds"] = Seconds(Clock::now() - t0);

  if (json) {
    std::cout << summary.dump(2) << "\n";
  } else {
    PrintText(summary);
  }

  const std::string state = fleet->state_dir().string();
  int view_rc = 0;
  if (!a.screenshots.empty()) {
    view_rc = ShowInGui(state, a.screenshots, fleet->spec_file().string());
  } else if (a.tui) {
    view_rc = ShowInTui(state);
  } else if (a.keep) {
    std::cerr << "\ndemo: the fleet keeps running; in another terminal:\n"
              << "  sextant fleet --state " << state << "\n"
              << "  sextant compliance --state " << state << "\n"
              << "  sextant tui --state " << state << "\n"
              << "Ctrl-C stops the agents (the state stays in " << state << ").\n";
    signals.WaitForSignal();
  } else if (!a.headless && !json && GuiBuilt() && DisplayAvailable()) {
    view_rc = ShowInGui(state, "", fleet->spec_file().string());
  } else if (!json) {
    std::cout << "\nTo look around while the agents run: sextant demo --keep (then sextant fleet "
                 "--state DIR, sextant tui --state DIR, sextant compliance --state DIR)"
              << (GuiBuilt() ? ", or sextant demo on a display for the desktop console" : "")
              << ".\n";
  }
  fleet.reset();  // stops and reaps every agent; removes a temporary state directory
  std::cerr << "demo: stopped every agent"
            << (a.keep || !a.state.empty() ? "; state kept in " + state : std::string()) << "\n";
  if (view_rc != 0) return view_rc;
  return identical ? 0 : 1;
}

void SetupDemo(CLI::App& root, VerbContext& ctx) {
  auto args = std::make_shared<DemoArgs>();
  auto* cmd = root.add_subcommand(
      "demo",
      "Start three local agents (aws/eu-west-1, gcp/us-central1, on-prem), validate the example "
      "spec here, push it, and show the fleet, output digests, cost and compliance");
  cmd->add_flag("--headless", args->headless, "No desktop console: print a summary and exit");
  cmd->add_option("-o,--output", args->output, "Summary as table (text) or json")
      ->check(CLI::IsMember({"table", "json"}));
  cmd->add_flag("--tui", args->tui, "Show the fleet in the terminal UI until you quit it");
  cmd->add_option("--screenshots", args->screenshots,
                  "Render every view of the desktop console to DIR/<view>.png and exit");
  cmd->add_flag("--keep", args->keep,
                "Keep the agents running and the state directory until Ctrl-C");
  cmd->add_option("--state", args->state,
                  "Console state directory to use (kept); default: a temporary one");
  cmd->add_option("--model", args->model,
                  "GGUF model (default: ../shared/models/stories260K.gguf, else a synthesized "
                  "model of its shape)");
  cmd->add_option("--spec", args->spec,
                  "Deployment spec to start from (default: resources/examples/stories260k.yaml)");
  cmd->add_option("--agent-binary", args->agent_binary,
                  "sextant-agent program (default: next to sextant, else $PATH)");
  cmd->add_option("--key", args->key,
                  "Report signing key (default: the console's, created when missing)");
  cmd->callback([args, &ctx] { ctx.exit_code = Demo(*args); });
}

}  // namespace

SEXTANT_REGISTER_VERB(demo, SetupDemo);

}  // namespace sextant::cli
