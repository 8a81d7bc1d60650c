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
              " bytes INTEGER NOT NULL, PRIMARY KEY (identity, rpc, kind));"));
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
  return ledger;
}

Status EgressLedger::persistence_status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return persist_error_;
}

bool EgressLedger::Record(const std::string& identity, const std::string& role,
                          const std::string& rpc, const std::string& kind, int64_t bytes) {
  if (kind == "payload" ||
      std::find(kEgressKinds.begin(), kEgressKinds.end(), kind) == kEgressKinds.end()) {
    return false;
  }
  std::lock_guard<std::mutex> lock(mu_);
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
    Status s =
        st.ok()
            ? st->Bind(1, identity).Bind(2, rpc).Bind(3, kind).Bind(4, role).Bind(5, bytes).Run()
            : st.status();
    if (!s.ok() && persist_error_.ok()) persist_error_ = s;
  }
  return true;
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
