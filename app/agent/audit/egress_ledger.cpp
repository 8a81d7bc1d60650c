#include "app/agent/audit/egress_ledger.h"

#include <algorithm>
#include <chrono>

namespace sextant::agent {

EgressLedger::EgressLedger()
    : since_unix_ms_(std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count()) {}

EgressLedger::~EgressLedger() = default;

Result<std::unique_ptr<EgressLedger>> EgressLedger::Open(const std::filesystem::path& dir) {
  auto ledger = std::make_unique<EgressLedger>();
  SEXTANT_ASSIGN_OR_RETURN(ledger->db_, SqliteDb::Open(dir / "egress.db"));
  SqliteDb& db = *ledger->db_;
  SEXTANT_RETURN_IF_ERROR(
      db.Exec("PRAGMA synchronous=NORMAL;"
              "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
              "CREATE TABLE IF NOT EXISTS egress (identity TEXT NOT NULL, rpc TEXT NOT NULL,"
              " kind TEXT NOT NULL, role TEXT NOT NULL, messages INTEGER NOT NULL,"
              " bytes INTEGER NOT NULL, PRIMARY KEY (identity, rpc, kind));"
              "CREATE TABLE IF NOT EXISTS egress_fields (identity TEXT NOT NULL,"
              " field TEXT NOT NULL, role TEXT NOT NULL, class TEXT NOT NULL,"
              " messages INTEGER NOT NULL, bytes INTEGER NOT NULL,"
              " PRIMARY KEY (identity, field));"));
  {
    SEXTANT_ASSIGN_OR_RETURN(
        SqliteStmt st, db.Prepare("INSERT OR IGNORE INTO meta (key, value) VALUES ('since', ?)"));
    SEXTANT_RETURN_IF_ERROR(st.Bind(1, ledger->since_unix_ms_).Run());
  }
  {
    SEXTANT_ASSIGN_OR_RETURN(SqliteStmt st,
                             db.Prepare("SELECT value FROM meta WHERE key = 'since'"));
    SEXTANT_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row) ledger->since_unix_ms_ = st.Int(0);
  }
  SEXTANT_ASSIGN_OR_RETURN(
      SqliteStmt st, db.Prepare("SELECT identity, rpc, kind, role, messages, bytes FROM egress"));
  while (true) {
    SEXTANT_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    EgressRow r{st.Text(0), st.Text(3), st.Text(1), st.Text(2), st.Int(4), st.Int(5)};
    ledger->rows_[{r.identity, r.rpc, r.kind}] = r;
  }
  SEXTANT_ASSIGN_OR_RETURN(
      SqliteStmt fst,
      db.Prepare("SELECT identity, field, role, class, messages, bytes FROM egress_fields"));
  while (true) {
    SEXTANT_ASSIGN_OR_RETURN(bool row, fst.Step());
    if (!row) break;
    EgressFieldRow r{fst.Text(0), fst.Text(2), fst.Text(1), fst.Text(3), fst.Int(4), fst.Int(5)};
    ledger->field_rows_[{r.identity, r.field}] = r;
  }
  return ledger;
}

Status EgressLedger::persistence_status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return persist_error_;
}

void EgressLedger::PersistLocked(Status s) {
  if (!s.ok() && persist_error_.ok()) persist_error_ = s;
}

void EgressLedger::AddKindLocked(const std::string& identity, const std::string& role,
                                 const std::string& rpc, const std::string& kind, int64_t bytes) {
  EgressRow& row = rows_[{identity, rpc, kind}];
  row.identity = identity;
  row.role = role;
  row.rpc = rpc;
  row.kind = kind;
  row.messages += 1;
  row.bytes += bytes;
  if (db_) {
    auto st = db_->Prepare(
        "INSERT INTO egress (identity, rpc, kind, role, messages, bytes) VALUES (?, ?, ?, ?, 1, ?)"
        " ON CONFLICT (identity, rpc, kind) DO UPDATE SET messages = messages + 1,"
        " bytes = bytes + excluded.bytes, role = excluded.role");
    PersistLocked(
        st.ok()
            ? st->Bind(1, identity).Bind(2, rpc).Bind(3, kind).Bind(4, role).Bind(5, bytes).Run()
            : st.status());
  }
}

bool EgressLedger::Record(const std::string& identity, const std::string& role,
                          const std::string& rpc, const std::string& kind, int64_t bytes) {
  if (kind == "payload" ||
      std::find(kEgressKinds.begin(), kEgressKinds.end(), kind) == kEgressKinds.end()) {
    return false;
  }
  std::lock_guard<std::mutex> lock(mu_);
  AddKindLocked(identity, role, rpc, kind, bytes);
  return true;
}

bool EgressLedger::RecordResponse(const std::string& identity, const std::string& role,
                                  const std::string& rpc, const std::string& kind,
                                  int64_t total_bytes, const std::vector<FieldBytes>& fields) {
  if (kind == "payload" ||
      std::find(kEgressKinds.begin(), kEgressKinds.end(), kind) == kEgressKinds.end()) {
    return false;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (db_) PersistLocked(db_->Exec("BEGIN"));
  int64_t payload = 0;
  for (const auto& f : fields) {
    if (f.egress_class == kUnclassifiedEgress) payload += f.bytes;
  }
  // The response's bytes: the declared ones under its kind, the undeclared ones as payload.
  AddKindLocked(identity, role, rpc, kind, total_bytes - payload);
  if (payload > 0) AddKindLocked(identity, role, rpc, "payload", payload);
  for (const auto& f : fields) {
    EgressFieldRow& row = field_rows_[{identity, f.field}];
    row.identity = identity;
    row.role = role;
    row.field = f.field;
    row.egress_class = f.egress_class;
    row.messages += 1;
    row.bytes += f.bytes;
    if (db_) {
      auto st = db_->Prepare(
          "INSERT INTO egress_fields (identity, field, role, class, messages, bytes)"
          " VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT (identity, field) DO UPDATE SET"
          " messages = messages + 1, bytes = bytes + excluded.bytes, role = excluded.role,"
          " class = excluded.class");
      PersistLocked(st.ok() ? st->Bind(1, identity)
                                  .Bind(2, f.field)
                                  .Bind(3, role)
                                  .Bind(4, f.egress_class)
                                  .Bind(5, f.bytes)
                                  .Run()
                            : st.status());
    }
  }
  if (db_) PersistLocked(db_->Exec("COMMIT"));
  return true;
}

std::vector<EgressFieldRow> EgressLedger::FieldRows() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<EgressFieldRow> out;
  out.reserve(field_rows_.size());
  for (const auto& [key, row] : field_rows_) out.push_back(row);
  return out;
}

std::vector<EgressRow> EgressLedger::Rows() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<EgressRow> out;
  out.reserve(rows_.size());
  for (const auto& [key, row] : rows_) out.push_back(row);
  return out;
}

std::map<std::string, int64_t> EgressLedger::VendorBytesByKind() const {
  std::map<std::string, int64_t> out;
  for (const auto& k : kEgressKinds) out[k] = 0;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [key, row] : rows_) {
    if (row.role.rfind("vendor", 0) == 0) out[row.kind] += row.bytes;
  }
  return out;
}

}  // namespace sextant::agent
