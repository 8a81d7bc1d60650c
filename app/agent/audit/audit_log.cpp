#include "app/agent/audit/audit_log.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <ctime>

#include "app/common/sha256.h"

namespace sextant::agent {

namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS audit_log (
  seq INTEGER PRIMARY KEY,
  time TEXT NOT NULL,
  identity TEXT NOT NULL,
  role TEXT NOT NULL,
  rpc TEXT NOT NULL,
  target TEXT NOT NULL,
  outcome TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
  BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
  BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
)sql";

constexpr const char* kColumns = "seq, time, identity, role, rpc, target, outcome, prev_hash, hash";

std::string NowRfc3339() {
  const auto now = std::chrono::system_clock::now();
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

AuditRecord ReadRecord(const SqliteStmt& s) {
  AuditRecord r;
  r.seq = s.Int(0);
  r.time = s.Text(1);
  r.entry.identity = s.Text(2);
  r.entry.role = s.Text(3);
  r.entry.rpc = s.Text(4);
  r.entry.target = s.Text(5);
  r.entry.outcome = s.Text(6);
  r.prev_hash = s.Text(7);
  r.hash = s.Text(8);
  return r;
}

Result<std::pair<int64_t, std::string>> ReadHead(SqliteDb& db) {
  SEXTANT_ASSIGN_OR_RETURN(auto stmt,
                           db.Prepare("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"));
  SEXTANT_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return std::make_pair(int64_t{0}, std::string(kGenesisHash));
  return std::make_pair(stmt.Int(0), stmt.Text(1));
}

Result<ChainVerification> VerifyDb(SqliteDb& db) {
  SEXTANT_ASSIGN_OR_RETURN(
      auto stmt, db.Prepare(std::string("SELECT ") + kColumns + " FROM audit_log ORDER BY rowid"));
  AuditChainVerifier verifier(/*whole_chain=*/true);
  while (true) {
    SEXTANT_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row || !verifier.Add(ReadRecord(stmt))) break;
  }
  return verifier.result();
}

}  // namespace

Result<std::unique_ptr<AuditLog>> AuditLog::Open(const std::filesystem::path& dir) {
  const auto path = dir / "audit.db";
  SEXTANT_ASSIGN_OR_RETURN(auto db, SqliteDb::Open(path));
  SEXTANT_RETURN_IF_ERROR(db->Exec(kSchema));
  return std::unique_ptr<AuditLog>(new AuditLog(std::move(db), path));
}

Result<AuditRecord> AuditLog::Append(const AuditEntry& entry) {
  std::lock_guard<std::mutex> lock(mu_);
  SEXTANT_RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE"));
  auto rollback = [&](Status s) {
    (void)db_->Exec("ROLLBACK");
    return s.WithContext("audit log append");
  };
  auto head = ReadHead(*db_);
  if (!head.ok()) return rollback(head.status());
  AuditRecord r;
  r.seq = head->first + 1;
  r.time = NowRfc3339();
  r.entry = entry;
  r.prev_hash = head->second;
  r.hash = Sha256Hex(r.prev_hash + r.Canonical());
  auto stmt = db_->Prepare(
      "INSERT INTO audit_log (seq, time, identity, role, rpc, target, outcome, prev_hash, hash) "
      "VALUES (?,?,?,?,?,?,?,?,?)");
  if (!stmt.ok()) return rollback(stmt.status());
  stmt->Bind(1, r.seq)
      .Bind(2, r.time)
      .Bind(3, r.entry.identity)
      .Bind(4, r.entry.role)
      .Bind(5, r.entry.rpc)
      .Bind(6, r.entry.target)
      .Bind(7, r.entry.outcome)
      .Bind(8, r.prev_hash)
      .Bind(9, r.hash);
  Status s = stmt->Run();
  if (!s.ok()) return rollback(s);
  s = db_->Exec("COMMIT");
  if (!s.ok()) return rollback(s);
  return r;
}

Result<std::vector<AuditRecord>> AuditLog::AppendBatch(const std::vector<AuditEntry>& entries) {
  std::vector<AuditRecord> out;
  if (entries.empty()) return out;
  std::lock_guard<std::mutex> lock(mu_);
  SEXTANT_RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE"));
  auto rollback = [&](Status s) {
    (void)db_->Exec("ROLLBACK");
    return s.WithContext("audit log append");
  };
  // The head is read inside the transaction: another process (`sextant-agent apikeys`) may
  // have appended since the last batch.
  auto head = ReadHead(*db_);
  if (!head.ok()) return rollback(head.status());
  int64_t seq = head->first;
  std::string prev = head->second;
  const std::string time = NowRfc3339();
  out.reserve(entries.size());
  for (const AuditEntry& entry : entries) {
    AuditRecord r;
    r.seq = ++seq;
    r.time = time;
    r.entry = entry;
    r.prev_hash = prev;
    r.hash = Sha256Hex(r.prev_hash + r.Canonical());
    auto stmt = db_->Prepare(
        "INSERT INTO audit_log (seq, time, identity, role, rpc, target, outcome, prev_hash, hash) "
        "VALUES (?,?,?,?,?,?,?,?,?)");
    if (!stmt.ok()) return rollback(stmt.status());
    stmt->Bind(1, r.seq)
        .Bind(2, r.time)
        .Bind(3, r.entry.identity)
        .Bind(4, r.entry.role)
        .Bind(5, r.entry.rpc)
        .Bind(6, r.entry.target)
        .Bind(7, r.entry.outcome)
        .Bind(8, r.prev_hash)
        .Bind(9, r.hash);
    Status s = stmt->Run();
    if (!s.ok()) return rollback(s);
    prev = r.hash;
    out.push_back(std::move(r));
  }
  Status s = db_->Exec("COMMIT");
  if (!s.ok()) return rollback(s);
  return out;
}

Result<std::vector<AuditRecord>> AuditLog::Query(const AuditQuery& q) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string sql = std::string("SELECT ") + kColumns + " FROM audit_log WHERE seq > ?";
  if (!q.identity.empty()) sql += " AND identity = ?";
  if (!q.rpc.empty()) sql += " AND rpc = ?";
  sql += " ORDER BY seq LIMIT ?";
  SEXTANT_ASSIGN_OR_RETURN(auto stmt, db_->Prepare(sql));
  int i = 1;
  stmt.Bind(i++, q.after_seq);
  if (!q.identity.empty()) stmt.Bind(i++, q.identity);
  if (!q.rpc.empty()) stmt.Bind(i++, q.rpc);
  stmt.Bind(i++, static_cast<int64_t>(q.limit));
  std::vector<AuditRecord> out;
  while (true) {
    SEXTANT_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    out.push_back(ReadRecord(stmt));
  }
  return out;
}

Result<ChainVerification> AuditLog::Verify() const {
  std::lock_guard<std::mutex> lock(mu_);
  return VerifyDb(*db_);
}

Result<std::pair<int64_t, std::string>> AuditLog::Head() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ReadHead(*db_);
}

Status AuditLog::IntegrityCheck() const {
  std::lock_guard<std::mutex> lock(mu_);
  return CheckIntegrity(*db_);
}

Result<ChainVerification> VerifyAuditFile(const std::filesystem::path& dir) {
  const auto path = dir / "audit.db";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return Status::NotFound("no audit log at " + path.string());
  }
  SEXTANT_ASSIGN_OR_RETURN(auto db, SqliteDb::Open(path));
  SEXTANT_RETURN_IF_ERROR(CheckIntegrity(*db));
  return VerifyDb(*db);
}

}  // namespace sextant::agent
