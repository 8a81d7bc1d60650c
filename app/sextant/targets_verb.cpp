// `sextant targets add|list|rm|test`: the agents the console talks to, each with the CA that
// signed its certificate, the console's client certificate and key, and labels.
#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "app/cli/output.h"
#include "app/cli/verb.h"
#include "app/console/fleet/fleet.h"
#include "app/sextant/console_common.h"
#include "connectors/console/fleet_connector.h"
#include "engine/base/time.h"

namespace sextant::cli {
namespace {

struct TargetsArgs {
  std::string state;
  std::string output = "table";
  console::Target target;
  std::vector<std::string> labels;
  std::string name;
  int timeout_ms = 5000;
};

int Add(TargetsArgs& a) {
  for (const auto& l : a.labels) {
    const size_t eq = l.find('=');
    if (eq == std::string::npos || eq == 0) {
      return UsageError("targets", "label '" + l + "' is not key=value");
    }
    a.target.labels[l.substr(0, eq)] = l.substr(eq + 1);
  }
  for (std::string* p : {&a.target.ca_path, &a.target.cert_path, &a.target.key_path}) {
    std::error_code ec;
    if (!std::filesystem::exists(*p, ec)) {
      return ReportError("targets",
                         Status::NotFound("target " + a.target.name + ": no file " + *p));
    }
    *p = std::filesystem::absolute(*p).string();
  }
  auto st = OpenConsoleDatabase(a.state);
  if (!st.ok()) return ReportError("targets", st.status());
  if (!a.target.account.empty()) {
    auto accounts = (*st)->accounts().List();
    if (!accounts.ok()) return ReportError("targets", accounts.status());
    bool known = false;
    for (const auto& acc : *accounts) known |= acc.name == a.target.account;
    if (!known) {
      return ReportError("targets", Status::NotFound("target " + a.target.name + ": no account " +
                                                     a.target.account + " (sextant accounts add)"));
    }
  }
  Status s = (*st)->targets().Add(a.target);
  if (!s.ok()) return ReportError("targets", s);
  std::cout << "added target " << a.target.name << " (" << a.target.endpoint << ")\n";
  return 0;
}

int List(const TargetsArgs& a) {
  auto fmt = ParseOutputFormat(a.output);
  if (!fmt.ok()) return UsageError("targets", fmt.status().message());
  auto st = OpenConsoleDatabase(a.state);
  if (!st.ok()) return ReportError("targets", st.status());
  auto fleet = console::LoadFleet(**st, console::NowMs(), 30'000);
  if (!fleet.ok()) return ReportError("targets", fleet.status());
  OutputTable t;
  t.columns = {"name", "endpoint", "account", "labels", "status", "last_seen", "role"};
  for (const auto& acct : fleet->accounts) {
    for (const auto& v : acct.targets) {
      std::string labels;
      for (const auto& [k, val] : v.target.labels)
        labels += (labels.empty() ? "" : ",") + k + "=" + val;
      Tone tone = v.status.state == console::ConnState::kConnected ? Tone::kGood
                  : v.status.state == console::ConnState::kStale   ? Tone::kWarn
                  : v.status.state == console::ConnState::kError   ? Tone::kBad
                                                                   : Tone::kDim;
      t.AddRow({v.target.name, v.target.endpoint, v.target.account, labels, v.StatusText(),
                v.status.last_seen ? nlohmann::json(FormatRfc3339(v.status.last_seen))
                                   : nlohmann::json(),
                v.status.role},
               tone);
    }
  }
  PrintTable(t, *fmt, std::cout, ColourWanted(stdout));
  return 0;
}

int Remove(const TargetsArgs& a) {
  auto st = OpenConsoleDatabase(a.state);
  if (!st.ok()) return ReportError("targets", st.status());
  Status s = (*st)->targets().Remove(a.name);
  if (!s.ok()) return ReportError("targets", s);
  std::cout << "removed target " << a.name << "\n";
  return 0;
}

int Test(const TargetsArgs& a) {
  auto st = OpenConsoleDatabase(a.state);
  if (!st.ok()) return ReportError("targets", st.status());
  auto target = (*st)->targets().Get(a.name);
  if (!target.ok()) return ReportError("targets", target.status());
  auto who = rpc::TestTarget(*target, std::chrono::milliseconds(a.timeout_ms));
  if (!who.ok()) {
    return ReportError(
        "targets", who.status().WithContext("target " + a.name + " (" + target->endpoint + ")"));
  }
  std::cout << "target:   " << a.name << " (" << target->endpoint << ")\n"
            << "agent:    " << who->agent_name << " " << who->agent_version << " (build "
            << who->build_id << ")\n"
            << "identity: " << who->identity << "\n"
            << "role:     " << (who->role.empty() ? "(none)" : who->role) << "\n"
            << "rpcs:     ";
  for (size_t i = 0; i < who->allowed_rpcs.size(); ++i) {
    std::cout << (i ? ", " : "") << who->allowed_rpcs[i];
  }
  std::cout << "\n";
  return 0;
}

void SetupTargets(CLI::App& root, VerbContext& ctx) {
  auto args = std::make_shared<TargetsArgs>();
  auto* cmd = root.add_subcommand("targets", "Agent endpoints: add, list, remove, test");
  cmd->require_subcommand(1);
  auto state = [&](CLI::App* c) {
    c->add_option("--state", args->state, "Console state directory (default: XDG data dir)");
  };

  auto* add = cmd->add_subcommand("add", "Add an agent endpoint");
  add->add_option("name", args->target.name, "Name for the target")->required();
  add->add_option("--endpoint", args->target.endpoint, "host:port of the agent's gRPC listener")
      ->required();
  add->add_option("--ca", args->target.ca_path,
                  "CA certificate that signed the agent's certificate")
      ->required();
  add->add_option("--cert", args->target.cert_path, "The console's client certificate (PEM)")
      ->required();
  add->add_option("--key", args->target.key_path, "The console's client key (PEM)")->required();
  add->add_option("--account", args->target.account, "The account it runs in");
  add->add_option("--label", args->labels, "key=value (repeatable), e.g. team=ml env=prod");
  add->add_option("--server-name", args->target.server_name,
                  "TLS name to verify when it differs from the endpoint's host");
  state(add);
  add->callback([args, &ctx] { ctx.exit_code = Add(*args); });

  auto* list = cmd->add_subcommand("list", "List targets and their connection state");
  list->add_option("-o,--output", args->output, "table, json or csv");
  state(list);
  list->callback([args, &ctx] { ctx.exit_code = List(*args); });

  auto* rm = cmd->add_subcommand("rm", "Remove a target and its history");
  rm->add_option("name", args->name, "Target name")->required();
  state(rm);
  rm->callback([args, &ctx] { ctx.exit_code = Remove(*args); });

  auto* test =
      cmd->add_subcommand("test", "Connect and print the identity and role the agent sees");
  test->add_option("name", args->name, "Target name")->required();
  test->add_option("--timeout-ms", args->timeout_ms, "Deadline of each call (default 5000)");
  state(test);
  test->callback([args, &ctx] { ctx.exit_code = Test(*args); });
}

}  // namespace

SEXTANT_REGISTER_VERB(targets, SetupTargets);

}  // namespace sextant::cli
