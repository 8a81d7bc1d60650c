// `sextant rollback DEPLOYMENT`: returns every target of the deployment's latest push to its
// previous generation (connectors/console/push.h). Exit status: 0 every target is back, 1 a
// target could not be restored or there is nothing to roll back, 2 usage.
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <memory>
#include <string>

#include "app/cli/output.h"
#include "app/cli/verb.h"
#include "app/sextant/console_common.h"
#include "connectors/console/push.h"

namespace sextant::cli {

void PrintRolloutResult(const console::PushResult& r, OutputFormat format);
std::function<void(const console::PushEvent&)> RolloutProgress(bool enabled);

namespace {

struct RollbackArgs {
  std::string deployment;
  std::string state;
  std::string output = "table";
  int deadline_s = 30;
  int max_unavailable = 4;
};

int Rollback(const RollbackArgs& a) {
  auto format = ParseOutputFormat(a.output);
  if (!format.ok()) return UsageError("rollback", format.status().message());
  auto st = OpenConsoleDatabase(a.state);
  if (!st.ok()) return ReportError("rollback", st.status());
  rpc::RollbackRequest r;
  r.call_deadline = std::chrono::seconds(a.deadline_s);
  r.max_unavailable = a.max_unavailable;
  r.on_event = RolloutProgress(::isatty(STDERR_FILENO) == 1);
  auto result = rpc::RollbackFromStore(**st, a.deployment, r);
  if (!result.ok()) return ReportError("rollback", result.status());
  PrintRolloutResult(*result, *format);
  return result->ok ? 0 : 1;
}

void SetupRollback(CLI::App& root, VerbContext& ctx) {
  auto args = std::make_shared<RollbackArgs>();
  auto* cmd = root.add_subcommand(
      "rollback", "Return every target of a deployment's latest push to its previous generation");
  cmd->add_option("DEPLOYMENT", args->deployment, "Deployment name")->required();
  cmd->add_option("--max-unavailable", args->max_unavailable,
                  "Targets restored at once (default 4)")
      ->check(CLI::Range(1, 10000));
  cmd->add_option("--deadline", args->deadline_s, "Seconds per agent call (default 30)")
      ->check(CLI::Range(1, 3600));
  cmd->add_option("--state", args->state, "Console state directory (holds console.db)");
  cmd->add_option("-o,--output", args->output, "table or json")
      ->check(CLI::IsMember({"table", "json"}));
  cmd->callback([args, &ctx] { ctx.exit_code = Rollback(*args); });
}

}  // namespace
SEXTANT_REGISTER_VERB(rollback, SetupRollback);

}  // namespace sextant::cli
