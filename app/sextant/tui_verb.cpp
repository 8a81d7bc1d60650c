// `sextant tui`: the terminal UI for on-call operators (fleet, deployments, alerts, audit, cost)
// over the console state; see app/sextant/tui_launch.h.
#include <CLI/CLI.hpp>

#include <memory>

#include "app/cli/verb.h"
#include "app/sextant/tui_launch.h"

namespace sextant::cli {
namespace {

void SetupTui(CLI::App& root, VerbContext& ctx) {
  auto args = std::make_shared<TuiOptions>();
  auto* cmd = root.add_subcommand("tui", "Terminal UI: fleet, deployments, alerts, audit, cost");
  cmd->add_option("--state", args->state, "Console state directory (default: XDG data dir)");
  cmd->add_flag("--readonly", args->readonly, "Offer no action that changes the fleet");
  cmd->add_option("--stale-after", args->stale_after_s,
                  "Seconds without a report before a target shows as stale (30)");
  cmd->add_option("--interval-ms", args->metrics_interval_ms,
                  "How often agents stream metrics, in milliseconds (2000)");
  cmd->add_option("--refresh-ms", args->refresh_ms,
                  "How often the screen re-reads the store (1000)");
  cmd->add_option("--view", args->view, "First view: fleet, deploy, alerts, audit or cost")
      ->check(CLI::IsMember({"fleet", "deploy", "alerts", "audit", "cost"}));
  cmd->callback([args, &ctx] { ctx.exit_code = RunTuiOnState(*args); });
}

}  // namespace

SEXTANT_REGISTER_VERB(tui, SetupTui);

}  // namespace sextant::cli
