// Cost of the fleet, following the OpenCost model.
//
// For each target and hour:  rate = the target's price per GPU-hour (PriceCatalog),
//   provisioned = GPU-hours provisioned × rate,
//   allocated(deployment) = max(GPU-hours requested, GPU-hours used) × rate,
//   idle = max(0, provisioned − Σ allocated).
// Cost per million tokens of a deployment = allocated / generated tokens × 10^6.
// Figures are then summed per deployment, target, account, label (the target's labels) or day
// (UTC). Budgets per label compare the label's provisioned cost over the budget's window with
// its amount: ok below warn_ratio × amount, warning from there, breach at or above the amount.
//
// Thread-safety: pure functions over values.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "app/console/cost/price_catalog.h"
#include "app/console/store/console_database.h"

namespace sextant::console {

// What the cost model needs to know of a target.
struct TargetInfo {
  std::string name;
  std::string account;
  std::map<std::string, std::string> labels;
  PricingKey pricing;
};

enum class GroupBy { kDeployment, kTarget, kAccount, kLabel, kDay };
Result<GroupBy> ParseGroupBy(std::string_view s);

struct CostLine {
  std::string key;  // deployment as "target/name", target, account, "k=v" or YYYY-MM-DD
  double gpu_hours_provisioned = 0;
  double gpu_hours_allocated = 0;
  double provisioned_usd = 0;
  double allocated_usd = 0;
  double idle_usd = 0;
  int64_t generated_tokens = 0;
  int64_t prompt_tokens = 0;
  std::optional<double> usd_per_million_tokens;  // when tokens > 0
};

struct CostReport {
  std::vector<CostLine> lines;        // sorted by key
  CostLine total;                     // key "total"
  std::vector<std::string> unpriced;  // "target: why", targets left out of the figures
};

CostReport ComputeCost(const std::vector<console::HourUsage>& usage,
                       const std::vector<TargetInfo>& targets, const PriceCatalog& catalog,
                       GroupBy by);

enum class BudgetState { kOk, kWarning, kBreach };
std::string_view BudgetStateName(BudgetState s);

struct BudgetStatus {
  console::Budget budget;
  double spent_usd = 0;
  double ratio = 0;  // spent / amount
  BudgetState state = BudgetState::kOk;
};

// `usage` must cover at least the longest budget window ending at `now`.
std::vector<BudgetStatus> EvaluateBudgets(const std::vector<console::Budget>& budgets,
                                          const std::vector<console::HourUsage>& usage,
                                          const std::vector<TargetInfo>& targets,
                                          const PriceCatalog& catalog, console::TimeMs now);

// Builds TargetInfo from the store: account and labels of the target, pricing from its facts
// cloud.provider, cloud.region, cloud.instance_type, cloud.pricing (on_demand, spot, reserved;
// default on_demand) and the GPU model of its inventory (or the fact cloud.gpu_model).
std::vector<TargetInfo> TargetsFromStore(const std::vector<console::Target>& targets,
                                         const std::vector<console::Fact>& facts,
                                         const std::vector<console::Gpu>& gpus);

// The catalog's name of a GPU model as inventories report it: "NVIDIA H100 80GB HBM3" -> "H100",
// "NVIDIA A100-SXM4-80GB" -> "A100-80GB", "NVIDIA L4" -> "L4", "AMD Instinct MI300X" ->
// "MI300X". Unrecognized names come back unchanged.
std::string CatalogGpuModel(std::string_view reported);

// "7d", "24h", "90m": a duration in milliseconds; INVALID_ARGUMENT otherwise.
Result<int64_t> ParseSince(std::string_view s);

}  // namespace sextant::console
