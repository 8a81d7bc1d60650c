#include "app/console/store/target_repository.h"

#include <nlohmann/json.hpp>

#include "app/common/sqlite/sqlite_db.h"
#include "app/console/store/console_database.h"
#include "app/console/store/json_columns.h"

namespace sextant::console {
namespace {

using nlohmann::json;

constexpr const char* kTargetCols =
    "SELECT name, endpoint, account, ca_path, cert_path, key_path, server_name, labels, "
    "created_at FROM targets";

Target ReadTarget(const sqlite::SqliteStmt& q) {
  Target t;
  t.name = q.Text(0);
  t.endpoint = q.Text(1);
  t.account = q.Text(2);
  t.ca_path = q.Text(3);
  t.cert_path = q.Text(4);
  t.key_path = q.Text(5);
  t.server_name = q.Text(6);
  t.labels = LabelsFromJson(q.Text(7));
  t.created_at = q.Int(8);
  return t;
}

}  // namespace

// ---- accounts ----

Status AccountRepository::Add(const Account& a) {
  if (a.name.empty()) return Status::InvalidArgument("account name is empty");
  if (a.provider.empty()) return Status::InvalidArgument("account " + a.name + ": no provider");
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(
      auto q, s.sql().Prepare("INSERT INTO accounts(name, provider, account_id, regions, role_ref, "
                              "external_id, created_at) VALUES(?,?,?,?,?,?,?)"));
  q.Bind(1, a.name).Bind(2, a.provider).Bind(3, a.account_id).Bind(4, json(a.regions).dump());
  q.Bind(5, a.role_ref).Bind(6, a.external_id).Bind(7, a.created_at ? a.created_at : NowMs());
  Status st = q.Run();
  if (st.code() == StatusCode::kAlreadyExists) {
    return Status::AlreadyExists("account " + a.name + " exists");
  }
  return st.WithContext("add account " + a.name);
}

Status AccountRepository::Remove(const std::string& name) {
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(auto q, s.sql().Prepare("DELETE FROM accounts WHERE name = ?"));
  SEXTANT_RETURN_IF_ERROR(q.Bind(1, name).Run());
  if (s.sql().Changes() == 0) return Status::NotFound("no account named " + name);
  return Status();
}

Result<std::vector<Account>> AccountRepository::List() {
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(
      auto q, s.sql().Prepare("SELECT name, provider, account_id, regions, role_ref, external_id, "
                              "created_at FROM accounts ORDER BY name"));
  std::vector<Account> out;
  while (true) {
    SEXTANT_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    Account a;
    a.name = q.Text(0);
    a.provider = q.Text(1);
    a.account_id = q.Text(2);
    a.regions = StringsFromJson(q.Text(3));
    a.role_ref = q.Text(4);
    a.external_id = q.Text(5);
    a.created_at = q.Int(6);
    out.push_back(std::move(a));
  }
  return out;
}

// ---- targets ----

Status TargetRepository::Add(const Target& t) {
  if (t.name.empty()) return Status::InvalidArgument("target name is empty");
  if (t.endpoint.empty()) return Status::InvalidArgument("target " + t.name + ": no endpoint");
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(
      auto q, s.sql().Prepare("INSERT INTO targets(name, endpoint, account, ca_path, cert_path, "
                              "key_path, server_name, labels, created_at) "
                              "VALUES(?,?,?,?,?,?,?,?,?)"));
  q.Bind(1, t.name).Bind(2, t.endpoint).Bind(3, t.account).Bind(4, t.ca_path);
  q.Bind(5, t.cert_path).Bind(6, t.key_path).Bind(7, t.server_name);
  q.Bind(8, LabelsToJson(t.labels)).Bind(9, t.created_at ? t.created_at : NowMs());
  Status st = q.Run();
  if (st.code() == StatusCode::kAlreadyExists) {
    return Status::AlreadyExists("target " + t.name + " exists");
  }
  return st.WithContext("add target " + t.name);
}

Status TargetRepository::Remove(const std::string& name) {
  SEXTANT_ASSIGN_OR_RETURN(Transaction tx, db_->Begin());
  {
    SEXTANT_ASSIGN_OR_RETURN(auto q, tx.sql().Prepare("DELETE FROM targets WHERE name = ?"));
    SEXTANT_RETURN_IF_ERROR(q.Bind(1, name).Run());
    if (tx.sql().Changes() == 0) return Status::NotFound("no target named " + name);
    SEXTANT_ASSIGN_OR_RETURN(auto st,
                             tx.sql().Prepare("DELETE FROM target_status WHERE target = ?"));
    SEXTANT_RETURN_IF_ERROR(st.Bind(1, name).Run());
  }
  // The same transaction: the lock is this thread's, the repositories' own nest in it.
  SEXTANT_RETURN_IF_ERROR(db_->facts().RemoveTarget(name));
  SEXTANT_RETURN_IF_ERROR(db_->telemetry().RemoveTarget(name));
  SEXTANT_RETURN_IF_ERROR(db_->audit_heads().RemoveTarget(name));
  return tx.Commit();
}

Result<std::vector<Target>> TargetRepository::List() {
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(auto q, s.sql().Prepare(std::string(kTargetCols) + " ORDER BY name"));
  std::vector<Target> out;
  while (true) {
    SEXTANT_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back(ReadTarget(q));
  }
  return out;
}

Result<Target> TargetRepository::Get(const std::string& name) {
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(auto q, s.sql().Prepare(std::string(kTargetCols) + " WHERE name = ?"));
  q.Bind(1, name);
  SEXTANT_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return Status::NotFound("no target named " + name);
  return ReadTarget(q);
}

Status TargetRepository::SetStatus(const TargetStatus& st) {
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(
      auto q,
      s.sql().Prepare("INSERT INTO target_status(target, state, since, last_seen, error, identity, "
                      "role) VALUES(?,?,?,?,?,?,?) ON CONFLICT(target) DO UPDATE SET "
                      "state=excluded.state, since=excluded.since, last_seen=excluded.last_seen, "
                      "error=excluded.error, identity=excluded.identity, role=excluded.role"));
  q.Bind(1, st.target).Bind(2, static_cast<int>(st.state)).Bind(3, st.since);
  q.Bind(4, st.last_seen).Bind(5, st.error).Bind(6, st.identity).Bind(7, st.role);
  return q.Run();
}

Result<std::vector<TargetStatus>> TargetRepository::ListStatus() {
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(
      auto q, s.sql().Prepare("SELECT target, state, since, last_seen, error, identity, role FROM "
                              "target_status ORDER BY target"));
  std::vector<TargetStatus> out;
  while (true) {
    SEXTANT_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    TargetStatus t;
    t.target = q.Text(0);
    const int st = static_cast<int>(q.Int(1));
    t.state = (st >= 0 && st <= 3) ? static_cast<ConnState>(st) : ConnState::kUnknown;
    t.since = q.Int(2);
    t.last_seen = q.Int(3);
    t.error = q.Text(4);
    t.identity = q.Text(5);
    t.role = q.Text(6);
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace sextant::console
