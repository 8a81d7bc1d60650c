// Cost budgets per label ("team=ml": amount over a window of days, warning ratio). Part of
// ConsoleDatabase (console_database.h): its threading model and error mapping apply.
#pragma once

#include <string>
#include <vector>

#include "app/console/store/records.h"
#include "engine/base/status.h"

namespace sextant::console {

class ConsoleDatabase;

class BudgetRepository {
 public:
  explicit BudgetRepository(ConsoleDatabase* db) : db_(db) {}
  // Adds or replaces the budget of its label. INVALID_ARGUMENT names the bad field (label not
  // KEY=VALUE, amount or window not positive, warning ratio outside (0, 1]).
  Status Set(const Budget& budget);
  // NOT_FOUND when the label has no budget.
  Status Remove(const std::string& label);
  Result<std::vector<Budget>> List();  // by label

 private:
  ConsoleDatabase* db_;
};

}  // namespace sextant::console
