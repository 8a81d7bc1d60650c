// `sextant cost`: what the fleet costs, following the OpenCost model (allocated =
// max(requested, used) × rate, idle = provisioned − allocated), per deployment, target,
// account, label or day, with the cost per million generated tokens; and `sextant cost
// budget set|list|rm` for budgets per label with their warning and breach state.
#include <CLI/CLI.hpp>

#include <cmath>
#include <iostream>
#include <string>

#include "app/cli/output.h"
#include "app/cli/verb.h"
#include "app/common/paths.h"
#include "app/console/cost/cost_model.h"
#include "app/sextant/console_common.h"

namespace sextant::cli {
namespace {

struct CostArgs {
  std::string state;
  std::string output = "table";
  std::string by = "deployment";
  std::string since = "7d";
  std::string catalog;
  std::string overrides;
  console::Budget budget;
  std::string label;
};

Result<console::PriceCatalog> LoadCatalog(const CostArgs& a) {
  std::filesystem::path dir = a.catalog;
  if (dir.empty()) {
    SEXTANT_ASSIGN_OR_RETURN(dir, FindResourceDir("prices"));
  }
  SEXTANT_ASSIGN_OR_RETURN(console::PriceCatalog c, console::PriceCatalog::LoadDir(dir));
  std::string overrides = a.overrides;
  if (overrides.empty()) {
    auto cfg = DefaultConsoleConfigDir();
    std::error_code ec;
    if (cfg.ok() && std::filesystem::exists(*cfg / "price-overrides.csv", ec)) {
      overrides = (*cfg / "price-overrides.csv").string();
    }
  }
  if (!overrides.empty()) SEXTANT_RETURN_IF_ERROR(c.LoadOverrides(overrides));
  return c;
}

struct Inputs {
  std::unique_ptr<console::ConsoleDatabase> store;
  console::PriceCatalog catalog;
  std::vector<console::TargetInfo> targets;
};

Result<Inputs> LoadInputs(const CostArgs& a) {
  Inputs in;
  SEXTANT_ASSIGN_OR_RETURN(in.store, OpenConsoleDatabase(a.state));
  SEXTANT_ASSIGN_OR_RETURN(in.catalog, LoadCatalog(a));
  SEXTANT_ASSIGN_OR_RETURN(auto targets, in.store->targets().List());
  SEXTANT_ASSIGN_OR_RETURN(auto facts, in.store->facts().List());
  SEXTANT_ASSIGN_OR_RETURN(auto gpus, in.store->telemetry().ListGpus());
  in.targets = console::TargetsFromStore(targets, facts, gpus);
  return in;
}

nlohmann::json Money(double v) { return std::round(v * 10000.0) / 10000.0; }

int Report(const CostArgs& a) {
  auto fmt = ParseOutputFormat(a.output);
  if (!fmt.ok()) return UsageError("cost", fmt.status().message());
  auto by = console::ParseGroupBy(a.by);
  if (!by.ok()) return UsageError("cost", by.status().message());
  auto since = console::ParseSince(a.since);
  if (!since.ok()) return UsageError("cost", since.status().message());
  auto in = LoadInputs(a);
  if (!in.ok()) return ReportError("cost", in.status());
  auto usage = in->store->telemetry().HourlyUsage(console::NowMs() - *since);
  if (!usage.ok()) return ReportError("cost", usage.status());
  auto report = console::ComputeCost(*usage, in->targets, in->catalog, *by);
  for (const auto& u : report.unpriced) std::cerr << "sextant cost: unpriced target " << u << "\n";
  OutputTable t;
  t.columns = {
      a.by,       "gpu_hours",        "allocated_gpu_hours", "provisioned_usd", "allocated_usd",
      "idle_usd", "generated_tokens", "usd_per_mtok"};
  auto add = [&](const console::CostLine& l, Tone tone) {
    t.AddRow({l.key, l.gpu_hours_provisioned, l.gpu_hours_allocated, Money(l.provisioned_usd),
              Money(l.allocated_usd), Money(l.idle_usd), l.generated_tokens,
              l.usd_per_million_tokens ? Money(*l.usd_per_million_tokens) : nlohmann::json()},
             tone);
  };
  for (const auto& l : report.lines) add(l, Tone::kNormal);
  if (*fmt == OutputFormat::kTable) add(report.total, Tone::kDim);
  PrintTable(t, *fmt, std::cout, ColourWanted(stdout));
  return 0;
}

int BudgetSet(const CostArgs& a) {
  auto st = OpenConsoleDatabase(a.state);
  if (!st.ok()) return ReportError("cost", st.status());
  Status s = (*st)->budgets().Set(a.budget);
  if (!s.ok()) return ReportError("cost", s);
  std::cout << "budget for " << a.budget.label << ": $" << a.budget.amount_usd << " per "
            << a.budget.window_days << " days\n";
  return 0;
}

int BudgetRemove(const CostArgs& a) {
  auto st = OpenConsoleDatabase(a.state);
  if (!st.ok()) return ReportError("cost", st.status());
  Status s = (*st)->budgets().Remove(a.label);
  if (!s.ok()) return ReportError("cost", s);
  return 0;
}

int BudgetList(const CostArgs& a) {
  auto fmt = ParseOutputFormat(a.output);
  if (!fmt.ok()) return UsageError("cost", fmt.status().message());
  auto in = LoadInputs(a);
  if (!in.ok()) return ReportError("cost", in.status());
  auto budgets = in->store->budgets().List();
  if (!budgets.ok()) return ReportError("cost", budgets.status());
  int longest = 1;
  for (const auto& b : *budgets) longest = std::max(longest, b.window_days);
  const console::TimeMs now = console::NowMs();
  auto usage = in->store->telemetry().HourlyUsage(now - int64_t{longest} * 86'400'000);
  if (!usage.ok()) return ReportError("cost", usage.status());
  OutputTable t;
  t.columns = {"label",    "window_days", "amount_usd", "spent_usd",
               "used_pct", "warn_at_pct", "state"};
  bool breach = false;
  for (const auto& s : console::EvaluateBudgets(*budgets, *usage, in->targets, in->catalog, now)) {
    breach |= s.state == console::BudgetState::kBreach;
    t.AddRow({s.budget.label, s.budget.window_days, Money(s.budget.amount_usd), Money(s.spent_usd),
              Money(s.ratio * 100), s.budget.warn_ratio * 100,
              std::string(console::BudgetStateName(s.state))},
             s.state == console::BudgetState::kBreach    ? Tone::kBad
             : s.state == console::BudgetState::kWarning ? Tone::kWarn
                                                         : Tone::kGood);
  }
  PrintTable(t, *fmt, std::cout, ColourWanted(stdout));
  return breach ? 1 : 0;
}

void SetupCost(CLI::App& root, VerbContext& ctx) {
  auto args = std::make_shared<CostArgs>();
  auto* cmd = root.add_subcommand("cost", "Cost per deployment, target, account, label or day");
  auto common = [&](CLI::App* c) {
    c->add_option("--state", args->state, "Console state directory (default: XDG data dir)");
    c->add_option("--catalog", args->catalog,
                  "Folder of price catalogs (default: resources/prices)");
    c->add_option("--overrides", args->overrides,
                  "Customer price overrides CSV (default: <config>/price-overrides.csv)");
  };
  cmd->add_option("--by", args->by, "deployment, target, account, label or day (deployment)");
  cmd->add_option("--since", args->since, "How far back: 7d, 24h, 90m (7d)");
  cmd->add_option("-o,--output", args->output, "table, json or csv");
  common(cmd);
  cmd->callback([args, &ctx, cmd] {
    if (cmd->get_subcommands().empty()) ctx.exit_code = Report(*args);
  });

  auto* budget = cmd->add_subcommand("budget", "Budgets per label");
  budget->require_subcommand(1);
  auto* set = budget->add_subcommand("set", "Set the budget of a label");
  set->add_option("label", args->budget.label, "key=value, e.g. team=ml")->required();
  set->add_option("amount", args->budget.amount_usd, "USD per window")->required();
  set->add_option("--window-days", args->budget.window_days, "Window in days (30)");
  set->add_option("--warn", args->budget.warn_ratio, "Warning at this share, 0..1 (0.8)");
  common(set);
  set->callback([args, &ctx] { ctx.exit_code = BudgetSet(*args); });
  auto* list = budget->add_subcommand("list", "Budgets with what was spent and their state");
  list->add_option("-o,--output", args->output, "table, json or csv");
  common(list);
  list->callback([args, &ctx] { ctx.exit_code = BudgetList(*args); });
  auto* rm = budget->add_subcommand("rm", "Remove the budget of a label");
  rm->add_option("label", args->label, "key=value")->required();
  common(rm);
  rm->callback([args, &ctx] { ctx.exit_code = BudgetRemove(*args); });
}

}  // namespace

SEXTANT_REGISTER_VERB(cost, SetupCost);

}  // namespace sextant::cli
