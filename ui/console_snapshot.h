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

#include "app/console/compliance/pack.h"
#include "app/console/cost/cost_model.h"
#include "app/console/cost/price_catalog.h"
#include "app/console/fleet/fleet.h"
#include "app/console/store/console_database.h"
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
  console::TimeMs day = 0;  // 00:00 UTC
  std::vector<console::CostLine> lines;
};

struct CostBreakdown {
  console::CostReport report;  // over the whole window
  std::vector<CostDay> daily;  // oldest first, one entry per day with usage
};

struct ConsoleSnapshot {
  console::TimeMs taken_at = 0;
  console::FleetSnapshot fleet;
  std::vector<console::Target> targets;
  std::vector<console::Account> accounts;
  // Cost over the snapshot's window, by deployment, target and label.
  std::map<console::GroupBy, CostBreakdown> cost;
  std::vector<console::BudgetStatus> budgets;
  std::vector<std::string> cost_notes;  // why cost is missing (no catalog ...), in words
  // Compliance: the packs evaluated and one finding per pack, target and rule.
  std::vector<console::PolicyPack> packs;
  std::vector<console::Finding> findings;
  std::vector<ReportSummary> reports;  // newest first
};

// What a snapshot reads besides the store. Shared, immutable once built.
struct SnapshotSources {
  std::shared_ptr<const console::PriceCatalog> catalog;  // null: cost is not computed
  std::vector<console::PolicyPack> packs;
  int64_t stale_after_ms = 15000;
  int64_t cost_window_ms = 7LL * 86'400'000;
};

// Reads everything from the store at `now`. Errors of the store are returned; a missing catalog
// or pack leaves that part empty with a note.
Result<ConsoleSnapshot> LoadConsoleSnapshot(console::ConsoleDatabase& store,
                                            const SnapshotSources& sources, console::TimeMs now);

}  // namespace sextant::ui
