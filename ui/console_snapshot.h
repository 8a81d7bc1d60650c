// ConsoleSnapshot: one consistent copy of what the desktop console shows, read from the
// console store (fleet with stale/unreachable state, targets, accounts, cost over a window with
// budgets, compliance findings, validation reports). Built off the GUI thread and handed to the
// GUI as an immutable shared value; the item models copy what they need from it.
//
// Thread-safety: LoadConsoleSnapshot may run on any thread (the store is thread-safe); a built
// snapshot is immutable and may be read from any thread.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "app/compliance/policy.h"
#include "app/cost/cost_model.h"
#include "app/cost/price_catalog.h"
#include "app/fleet/fleet.h"
#include "app/store/console_store.h"
#include "engine/base/status.h"

namespace sextant::ui {

// A validation report as listed by the console (no signature bytes).
struct ReportSummary {
  int64_t id = 0;
  std::string spec_name;
  std::string spec_digest;
  std::string model_sha256;
  bool passed = false;
  std::string created_at;
};

// Cost of one day, split by the group's keys (deployment, target or label).
struct CostDay {
  store::TimeMs day = 0;  // 00:00 UTC
  std::vector<cost::CostLine> lines;
};

struct CostBreakdown {
  cost::CostReport report;     // over the whole window
  std::vector<CostDay> daily;  // oldest first, one entry per day with usage
};

struct ConsoleSnapshot {
  store::TimeMs taken_at = 0;
  fleet::FleetSnapshot fleet;
  std::vector<store::Target> targets;
  std::vector<store::Account> accounts;
  // Cost over the snapshot's window, by deployment, target and label.
  std::map<cost::GroupBy, CostBreakdown> cost;
  std::vector<cost::BudgetStatus> budgets;
  std::vector<std::string> cost_notes;  // why cost is missing (no catalog ...), in words
  // Compliance: the packs evaluated and one finding per pack, target and rule.
  std::vector<compliance::PolicyPack> packs;
  std::vector<compliance::Finding> findings;
  std::vector<ReportSummary> reports;  // newest first
};

// What a snapshot reads besides the store. Shared, immutable once built.
struct SnapshotSources {
  std::shared_ptr<const cost::PriceCatalog> catalog;  // null: cost is not computed
  std::vector<compliance::PolicyPack> packs;
  int64_t stale_after_ms = 15000;
  int64_t cost_window_ms = 7LL * 86'400'000;
};

// Reads everything from the store at `now`. Errors of the store are returned; a missing catalog
// or pack leaves that part empty with a note.
Result<ConsoleSnapshot> LoadConsoleSnapshot(store::ConsoleStore& store,
                                            const SnapshotSources& sources, store::TimeMs now);

}  // namespace sextant::ui
