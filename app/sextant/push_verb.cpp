// `sextant push SPEC --to T1,T2 | --selector KEY=VALUE`: pushes a validated deployment spec to
// targets (canary first, then waves of --max-unavailable), each target re-running the
// validation prompts and returning digests; the first refusal, mismatch or failure stops the
// push and rolls back what it changed (connectors/console/push.h).
// Exit status: 0 every target runs the spec and matched, 1 the push stopped or could not
// start, 2 usage.
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "app/cli/output.h"
#include "app/cli/verb.h"
#include "app/sextant/console_common.h"
#include "connectors/console/push.h"

namespace sextant::cli {

// Shared with rollback_verb.cpp: the result table and the progress lines.
void PrintRolloutResult(const console::PushResult& r, OutputFormat format);
std::function<void(const console::PushEvent&)> RolloutProgress(bool enabled);

namespace {

std::string ShortDigest(const std::string& d) {
  std::string bare = console::BareDigest(d);
  return bare.size() > 16 ? bare.substr(0, 16) : bare;
}

Tone ToneOf(console::TargetState s) {
  switch (s) {
    case console::TargetState::kDone:
    case console::TargetState::kUnchanged:
      return Tone::kGood;
    case console::TargetState::kRolledBack:
      return Tone::kWarn;
    case console::TargetState::kRefused:
    case console::TargetState::kFailed:
      return Tone::kBad;
    default:
      return Tone::kDim;
  }
}

struct PushArgs {
  std::string spec_file;
  std::vector<std::string> to;
  std::string selector;
  int max_unavailable = 1;
  std::string canary;
  std::string state;
  std::string key;
  std::string output = "table";
  double cross_backend_agreement = 1.0;
  int deadline_s = 30;
  int validation_deadline_s = 300;
};

int Push(const PushArgs& a) {
  if (a.to.empty() == a.selector.empty()) {
    return UsageError("push", "give either --to T1,T2 or --selector KEY=VALUE");
  }
  auto format = ParseOutputFormat(a.output);
  if (!format.ok()) return UsageError("push", format.status().message());
  auto st = OpenConsoleDatabase(a.state);
  if (!st.ok()) return ReportError("push", st.status());
  rpc::PushRequest r;
  r.spec_file = a.spec_file;
  r.targets = a.to;
  r.selector = a.selector;
  r.max_unavailable = a.max_unavailable;
  r.canary = a.canary;
  r.signing_key = a.key;
  r.cross_backend_min_agreement = a.cross_backend_agreement;
  r.call_deadline = std::chrono::seconds(a.deadline_s);
  r.validation_deadline = std::chrono::seconds(a.validation_deadline_s);
  r.on_event = RolloutProgress(::isatty(STDERR_FILENO) == 1);
  auto result = rpc::PushFromStore(**st, r);
  if (!result.ok()) return ReportError("push", result.status());
  PrintRolloutResult(*result, *format);
  return result->ok ? 0 : 1;
}

void SetupPush(CLI::App& root, VerbContext& ctx) {
  auto args = std::make_shared<PushArgs>();
  auto* cmd = root.add_subcommand(
      "push",
      "Push a validated deployment spec to targets: canary first, then waves; stops and rolls "
      "back on the first refusal, mismatch or failure");
  cmd->add_option("SPEC", args->spec_file, "Deployment spec (YAML) with a passing signed report")
      ->required();
  cmd->add_option("--to", args->to, "Target names, comma separated")->delimiter(',');
  cmd->add_option("--selector", args->selector, "Targets whose labels have KEY=VALUE");
  cmd->add_option("--max-unavailable", args->max_unavailable,
                  "Targets changed at once after the canary (default 1)")
      ->check(CLI::Range(1, 10000));
  cmd->add_option("--canary", args->canary, "The target changed first (default: the first)");
  cmd->add_option("--cross-backend-agreement", args->cross_backend_agreement,
                  "Share of validation prompts whose output must match on a target of another "
                  "backend than any local report (default 1)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--deadline", args->deadline_s, "Seconds per agent call (default 30)")
      ->check(CLI::Range(1, 3600));
  cmd->add_option("--validation-deadline", args->validation_deadline_s,
                  "Seconds for a target's validation run (default 300)")
      ->check(CLI::Range(1, 86400));
  cmd->add_option("--state", args->state, "Console state directory (holds console.db)");
  cmd->add_option("--key", args->key,
                  "The console's signing key (default: the console config dir)");
  cmd->add_option("-o,--output", args->output, "table or json")
      ->check(CLI::IsMember({"table", "json"}));
  cmd->callback([args, &ctx] { ctx.exit_code = Push(*args); });
}

}  // namespace

std::function<void(const console::PushEvent&)> RolloutProgress(bool enabled) {
  if (!enabled) return nullptr;
  return [](const console::PushEvent& e) {
    std::fprintf(stderr, "  %-20s %-12s %s\n", e.target.c_str(),
                 std::string(console::TargetStateName(e.state)).c_str(), e.message.c_str());
    std::fflush(stderr);
  };
}

void PrintRolloutResult(const console::PushResult& r, OutputFormat format) {
  if (format == OutputFormat::kJson) {
    std::cout << console::ToJson(r).dump(2) << "\n";
    return;
  }
  std::cout << r.kind << " " << r.deployment << "  " << r.spec_digest << "\n";
  if (!r.local_output_digest.empty()) {
    std::cout << "local output digest " << r.local_output_digest << "\n";
  }
  OutputTable t;
  t.columns = {"target", "state", "generation", "backend", "output_digest", "comparison", "error"};
  for (const auto& o : r.targets) {
    t.AddRow({o.target, std::string(console::TargetStateName(o.state)),
              std::to_string(o.previous_generation) + " -> " + std::to_string(o.generation),
              o.backend, ShortDigest(o.output_digest), o.comparison, o.error},
             ToneOf(o.state));
  }
  PrintTable(t, format, std::cout, ColourWanted(stdout));
  if (r.no_op) {
    std::cout << "no-op: every target already runs " << r.spec_digest << "\n";
  } else if (r.ok) {
    std::cout << "OK: " << r.targets.size() << " target(s) run " << r.spec_digest << "\n";
  } else {
    std::cout << "STOPPED: " << r.stopped_because << "\n";
  }
}

SEXTANT_REGISTER_VERB(push, SetupPush);

}  // namespace sextant::cli
