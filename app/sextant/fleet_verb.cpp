// `sextant fleet`: accounts → targets → nodes → GPUs → deployments, with utilization, memory,
// replicas, time to first token, inter-token latency, KV cache use, tokens/s and queue depth;
// stale and unreachable targets are marked. By default it first asks every target (in parallel,
// each within the deadline) and then prints from the console store; --offline prints what the store
// holds.
#include <CLI/CLI.hpp>

#include <iostream>
#include <string>

#include "app/cli/output.h"
#include "app/cli/verb.h"
#include "app/console/fleet/fleet.h"
#include "app/sextant/console_common.h"
#include "connectors/console/fleet_connector.h"

namespace sextant::cli {
namespace {

struct FleetArgs {
  std::string state;
  std::string output = "table";
  std::string by = "target";
  bool offline = false;
  int timeout_ms = 5000;
  int stale_after_s = 30;
};

int Run(const FleetArgs& a) {
  auto fmt = ParseOutputFormat(a.output);
  if (!fmt.ok()) return UsageError("fleet", fmt.status().message());
  auto by = console::ParseFleetGroupBy(a.by);
  if (!by.ok()) return UsageError("fleet", by.status().message());
  auto st = OpenConsoleDatabase(a.state);
  if (!st.ok()) return ReportError("fleet", st.status());
  if (!a.offline) {
    auto targets = (*st)->targets().List();
    if (!targets.ok()) return ReportError("fleet", targets.status());
    rpc::ConnectorOptions o;
    o.call_deadline = std::chrono::milliseconds(a.timeout_ms);
    for (const auto& s : rpc::RefreshAll(**st, *targets, o)) {
      if (s.state == console::ConnState::kError) {
        std::cerr << "sextant fleet: target " << s.target << ": " << s.error << "\n";
      }
    }
  }
  auto snap = console::LoadFleet(**st, console::NowMs(), int64_t{a.stale_after_s} * 1000);
  if (!snap.ok()) return ReportError("fleet", snap.status());
  auto rows = console::Summarize(*snap, *by);
  if (*fmt == OutputFormat::kTable) rows.push_back(console::Totals(*snap));
  OutputTable t;
  t.columns = {a.by,           "targets",      "status",        "nodes",       "gpus",
               "util_pct",     "mem_used_gib", "mem_total_gib", "deployments", "replicas",
               "ttft_p50_ms",  "ttft_p99_ms",  "itl_p50_ms",    "itl_p99_ms",  "kv_cache_pct",
               "tokens_per_s", "queue"};
  constexpr double kGiB = 1024.0 * 1024 * 1024;
  for (const auto& r : rows) {
    Tone tone = r.unreachable ? Tone::kBad : r.stale ? Tone::kWarn : Tone::kNormal;
    t.AddRow({r.key, r.targets, r.status, r.nodes, r.gpus, r.utilization * 100,
              r.memory_used_bytes / kGiB, r.memory_total_bytes / kGiB, r.deployments,
              *fmt == OutputFormat::kTable
                  ? nlohmann::json(std::to_string(r.replicas_ready) + "/" +
                                   std::to_string(r.replicas_desired))
                  : nlohmann::json({{"ready", r.replicas_ready}, {"desired", r.replicas_desired}}),
              r.ttft_p50_ms, r.ttft_p99_ms, r.itl_p50_ms, r.itl_p99_ms, r.kv_cache_use * 100,
              r.tokens_per_s, r.queue_depth},
             tone);
  }
  if (*fmt == OutputFormat::kCsv) {
    // CSV cells are flat: replicas as ready/desired text.
    for (auto& row : t.rows) {
      if (row[9].is_object()) {
        row[9] = std::to_string(row[9]["ready"].get<int>()) + "/" +
                 std::to_string(row[9]["desired"].get<int>());
      }
    }
  }
  PrintTable(t, *fmt, std::cout, ColourWanted(stdout));
  const console::FleetRow total = console::Totals(*snap);
  return total.unreachable > 0 ? 1 : 0;
}

void SetupFleet(CLI::App& root, VerbContext& ctx) {
  auto args = std::make_shared<FleetArgs>();
  auto* cmd = root.add_subcommand(
      "fleet", "The fleet: targets, nodes, GPUs and deployments, with their health");
  cmd->add_option("--by", args->by, "Group by account, target, region or gpu (default target)");
  cmd->add_option("-o,--output", args->output, "table, json or csv");
  cmd->add_option("--state", args->state, "Console state directory (default: XDG data dir)");
  cmd->add_flag("--offline", args->offline, "Print what the store holds; ask no agent");
  cmd->add_option("--timeout-ms", args->timeout_ms, "Deadline of each call to an agent (5000)");
  cmd->add_option("--stale-after", args->stale_after_s,
                  "Seconds without a report before a target shows as stale (30)");
  cmd->callback([args, &ctx] { ctx.exit_code = Run(*args); });
}

}  // namespace

SEXTANT_REGISTER_VERB(fleet, SetupFleet);

}  // namespace sextant::cli
