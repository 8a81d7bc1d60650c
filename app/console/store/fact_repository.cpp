#include "app/console/store/fact_repository.h"

#include "app/common/sqlite/sqlite_db.h"
#include "app/console/store/console_database.h"

namespace sextant::console {

Status FactRepository::Replace(const std::string& target, const std::string& prefix,
                               const std::vector<std::pair<std::string, std::string>>& facts,
                               TimeMs observed_at) {
  for (const auto& [k, v] : facts) {
    if (k.compare(0, prefix.size(), prefix) != 0) {
      return Status::InvalidArgument("fact " + k + " is outside prefix " + prefix);
    }
  }
  SEXTANT_ASSIGN_OR_RETURN(Transaction tx, db_->Begin());
  {
    SEXTANT_ASSIGN_OR_RETURN(
        auto d, tx.sql().Prepare("DELETE FROM facts WHERE target = ? AND substr(key, 1, ?) = ?"));
    SEXTANT_RETURN_IF_ERROR(
        d.Bind(1, target).Bind(2, static_cast<int64_t>(prefix.size())).Bind(3, prefix).Run());
    SEXTANT_ASSIGN_OR_RETURN(
        auto ins, tx.sql().Prepare("INSERT OR REPLACE INTO facts(target, key, value, observed_at) "
                                   "VALUES(?,?,?,?)"));
    for (const auto& [k, v] : facts) {
      SEXTANT_RETURN_IF_ERROR(ins.Bind(1, target).Bind(2, k).Bind(3, v).Bind(4, observed_at).Run());
    }
  }
  return tx.Commit();
}

Result<std::vector<Fact>> FactRepository::List(const std::string& target) {
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(
      auto q, s.sql().Prepare("SELECT target, key, value, observed_at FROM facts WHERE ? = '' OR "
                              "target = ? ORDER BY target, key"));
  q.Bind(1, target).Bind(2, target);
  std::vector<Fact> out;
  while (true) {
    SEXTANT_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back({q.Text(0), q.Text(1), q.Text(2), q.Int(3)});
  }
  return out;
}

Status FactRepository::RemoveTarget(const std::string& target) {
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(auto d, s.sql().Prepare("DELETE FROM facts WHERE target = ?"));
  return d.Bind(1, target).Run();
}

}  // namespace sextant::console
