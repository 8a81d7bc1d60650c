#include "ui/console_snapshot.h"

#include <algorithm>

#include "app/report/report_store.h"

namespace sextant::ui {

namespace {

constexpr int64_t kDayMs = 86'400'000;

CostBreakdown CostFor(const std::vector<store::HourUsage>& usage,
                      const std::vector<cost::TargetInfo>& targets,
                      const cost::PriceCatalog& catalog, cost::GroupBy by) {
  CostBreakdown view;
  view.report = cost::ComputeCost(usage, targets, catalog, by);
  std::map<store::TimeMs, std::vector<store::HourUsage>> per_day;
  for (const auto& u : usage) per_day[u.hour - (u.hour % kDayMs)].push_back(u);
  for (const auto& [day, rows] : per_day) {
    CostDay d;
    d.day = day;
    d.lines = cost::ComputeCost(rows, targets, catalog, by).lines;
    view.daily.push_back(std::move(d));
  }
  return view;
}

}  // namespace

Result<ConsoleSnapshot> LoadConsoleSnapshot(store::ConsoleStore& store,
                                            const SnapshotSources& sources, store::TimeMs now) {
  ConsoleSnapshot snap;
  snap.taken_at = now;
  SEXTANT_ASSIGN_OR_RETURN(snap.fleet, fleet::LoadFleet(store, now, sources.stale_after_ms));
  SEXTANT_ASSIGN_OR_RETURN(snap.targets, store.ListTargets());
  SEXTANT_ASSIGN_OR_RETURN(snap.accounts, store.ListAccounts());
  SEXTANT_ASSIGN_OR_RETURN(std::vector<store::Fact> facts, store.ListFacts());
  SEXTANT_ASSIGN_OR_RETURN(std::vector<store::Gpu> gpus, store.ListGpus());

  if (sources.catalog) {
    SEXTANT_ASSIGN_OR_RETURN(auto usage, store.HourlyUsage(now - sources.cost_window_ms));
    auto infos = cost::TargetsFromStore(snap.targets, facts, gpus);
    for (cost::GroupBy by :
         {cost::GroupBy::kDeployment, cost::GroupBy::kTarget, cost::GroupBy::kLabel}) {
      snap.cost[by] = CostFor(usage, infos, *sources.catalog, by);
    }
    SEXTANT_ASSIGN_OR_RETURN(auto budgets, store.ListBudgets());
    int longest = 0;
    for (const auto& b : budgets) longest = std::max(longest, b.window_days);
    if (!budgets.empty()) {
      SEXTANT_ASSIGN_OR_RETURN(auto budget_usage, store.HourlyUsage(now - longest * kDayMs));
      snap.budgets = cost::EvaluateBudgets(budgets, budget_usage, infos, *sources.catalog, now);
    }
    for (const auto& u : snap.cost[cost::GroupBy::kTarget].report.unpriced) {
      snap.cost_notes.push_back("not priced: " + u);
    }
  } else {
    snap.cost_notes.push_back("no price catalog loaded: cost is not computed");
  }

  if (Status s = report::ReportStore::EnsureSchema(store.handle()); !s.ok()) return s;
  report::ReportStore reports(store.handle());
  SEXTANT_ASSIGN_OR_RETURN(auto stored, reports.List({}, 50));
  for (const auto& r : stored) {
    snap.reports.push_back(
        {r.id, r.spec_name, r.spec_digest, r.model_sha256, r.passed, r.created_at});
  }

  snap.packs = sources.packs;
  if (!snap.packs.empty()) {
    compliance::EvaluationInput in;
    for (const auto& t : snap.targets) in.targets.push_back(t.name);
    in.facts = std::move(facts);
    SEXTANT_ASSIGN_OR_RETURN(in.reports, compliance::LoadValidationRecords(store));
    in.now = now;
    for (const auto& p : snap.packs) {
      auto f = compliance::Evaluate(p, in);
      snap.findings.insert(snap.findings.end(), std::make_move_iterator(f.begin()),
                           std::make_move_iterator(f.end()));
    }
  }
  return snap;
}

}  // namespace sextant::ui
