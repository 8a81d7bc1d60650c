#include "app/console/store/budget_repository.h"

#include "app/common/sqlite/sqlite_db.h"
#include "app/console/store/console_database.h"

namespace sextant::console {

Status BudgetRepository::Set(const Budget& b) {
  if (b.label.find('=') == std::string::npos) {
    return Status::InvalidArgument("budget label must be key=value, got '" + b.label + "'");
  }
  if (!(b.amount_usd > 0)) return Status::InvalidArgument("budget amount must be positive");
  if (b.window_days <= 0) return Status::InvalidArgument("budget window must be positive");
  if (!(b.warn_ratio > 0 && b.warn_ratio <= 1)) {
    return Status::InvalidArgument("budget warning ratio must be in (0, 1]");
  }
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(
      auto q, s.sql().Prepare("INSERT OR REPLACE INTO budgets(label, amount_usd, window_days, "
                              "warn_ratio) VALUES(?,?,?,?)"));
  return q.Bind(1, b.label)
      .Bind(2, b.amount_usd)
      .Bind(3, b.window_days)
      .Bind(4, b.warn_ratio)
      .Run();
}

Status BudgetRepository::Remove(const std::string& label) {
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(auto q, s.sql().Prepare("DELETE FROM budgets WHERE label = ?"));
  SEXTANT_RETURN_IF_ERROR(q.Bind(1, label).Run());
  if (s.sql().Changes() == 0) return Status::NotFound("no budget for " + label);
  return Status();
}

Result<std::vector<Budget>> BudgetRepository::List() {
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(
      auto q, s.sql().Prepare(
                  "SELECT label, amount_usd, window_days, warn_ratio FROM budgets ORDER BY label"));
  std::vector<Budget> out;
  while (true) {
    SEXTANT_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back({q.Text(0), q.Real(1), static_cast<int>(q.Int(2)), q.Real(3)});
  }
  return out;
}

}  // namespace sextant::console
