#include "ui/console_snapshot.h"

#include <algorithm>

namespace sextant::ui {

namespace {

constexpr int64_t kDayMs = 86'400'000;

CostBreakdown CostFor(const std::vector<console::HourUsage>& usage,
                      const std::vector<console::TargetInfo>& targets,
                      const console::PriceCatalog& catalog, console::GroupBy by) {
  CostBreakdown view;
  view.report = console::ComputeCost(usage, targets, catalog, by);
  std::map<console::TimeMs, std::vector<console::HourUsage>> per_day;
  for (const auto& u : usage) per_day[u.hour - (u.hour % kDayMs)].push_back(u);
  for (const auto& [day, rows] : per_day) {
    CostDay d;
    d.day = day;
    d.lines = console::ComputeCost(rows, targets, catalog, by).lines;
    view.daily.push_back(std::move(d));
  }
  return view;
}

}  // namespace

Result<ConsoleSnapshot> LoadConsoleSnapshot(console::ConsoleDatabase& store,
                                            const SnapshotSources& sources, console::TimeMs now) {
  ConsoleSnapshot snap;
  snap.taken_at = now;
  SEXTANT_ASSIGN_OR_RETURN(snap.fleet, console::LoadFleet(store, now, sources.stale_after_ms));
  SEXTANT_ASSIGN_OR_RETURN(snap.targets, store.targets().List());
  SEXTANT_ASSIGN_OR_RETURN(snap.accounts, store.accounts().List());
  SEXTANT_ASSIGN_OR_RETURN(std::vector<console::Fact> facts, store.facts().List());
  SEXTANT_ASSIGN_OR_RETURN(std::vector<console::Gpu> gpus, store.telemetry().ListGpus());

  if (sources.catalog) {
    SEXTANT_ASSIGN_OR_RETURN(auto usage,
                             store.telemetry().HourlyUsage(now - sources.cost_window_ms));
    auto infos = console::TargetsFromStore(snap.targets, facts, gpus);
    for (console::GroupBy by :
         {console::GroupBy::kDeployment, console::GroupBy::kTarget, console::GroupBy::kLabel}) {
      snap.cost[by] = CostFor(usage, infos, *sources.catalog, by);
    }
    SEXTANT_ASSIGN_OR_RETURN(auto budgets, store.budgets().List());
    int longest = 0;
    for (const auto& b : budgets) longest = std::max(longest, b.window_days);
    if (!budgets.empty()) {
      SEXTANT_ASSIGN_OR_RETURN(auto budget_usage,
                               store.telemetry().HourlyUsage(now - longest * kDayMs));
      snap.budgets = console::EvaluateBudgets(budgets, budget_usage, infos, *sources.catalog, now);
    }
    for (const auto& u : snap.cost[console::GroupBy::kTarget].report.unpriced) {
      snap.cost_notes.push_back("not priced: " + u);
    }
  } else {
    snap.cost_notes.push_back("no price catalog loaded: cost is not computed");
  }

  SEXTANT_ASSIGN_OR_RETURN(auto stored, store.reports().List({}, 50));
  for (const auto& r : stored) {
    snap.reports.push_back(
        {r.id, r.spec_name, r.spec_digest, r.model_sha256, r.passed, r.created_at});
  }

  snap.packs = sources.packs;
  if (!snap.packs.empty()) {
    console::EvaluationInput in;
    for (const auto& t : snap.targets) in.targets.push_back(t.name);
    in.facts = std::move(facts);
    SEXTANT_ASSIGN_OR_RETURN(in.reports, console::LoadValidationRecords(store));
    in.now = now;
    for (const auto& p : snap.packs) {
      auto f = console::Evaluate(p, in);
      snap.findings.insert(snap.findings.end(), std::make_move_iterator(f.begin()),
                           std::make_move_iterator(f.end()));
    }
  }
  return snap;
}

}  // namespace sextant::ui
