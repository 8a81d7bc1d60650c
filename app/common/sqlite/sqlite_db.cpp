#include "app/common/sqlite/sqlite_db.h"

#include <sqlite3.h>

namespace sextant::sqlite {

Status StatusFromSqlite(int code, std::string message) {
  switch (code & 0xff) {  // the primary code of an extended one
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PROTOCOL:
    case SQLITE_NOMEM:
    case SQLITE_PERM:
      return Status::Unavailable(std::move(message));
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status::DataLoss(std::move(message));
    case SQLITE_CONSTRAINT:
      if (code == SQLITE_CONSTRAINT_UNIQUE || code == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return Status::AlreadyExists(std::move(message));
      }
      return Status::FailedPrecondition(std::move(message));
    case SQLITE_INTERRUPT:
      return Status::Cancelled(std::move(message));
    default:
      return Status::Internal(std::move(message));
  }
}

Result<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::filesystem::path& path,
                                                 const SqliteOpenOptions& options) {
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    if (raw) sqlite3_close(raw);
    return Status::Unavailable("cannot open " + path.string() + ": " + msg);
  }
  std::unique_ptr<SqliteDb> db(new SqliteDb(raw, path));
  sqlite3_busy_timeout(raw, options.busy_timeout_ms);
  sqlite3_extended_result_codes(raw, 1);
  SEXTANT_RETURN_IF_ERROR(db->Exec(options.synchronous_full
                                       ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                                         "PRAGMA foreign_keys=ON;"
                                       : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                                         "PRAGMA foreign_keys=ON;"));
  return db;
}

SqliteDb::~SqliteDb() { sqlite3_close_v2(db_); }

Status SqliteDb::Error(std::string_view what) const {
  return StatusFromSqlite(sqlite3_extended_errcode(db_),
                          std::string(what) + " (" + path_.string() + "): " + sqlite3_errmsg(db_));
}

Status SqliteDb::Exec(std::string_view sql) {
  char* err = nullptr;
  const std::string s(sql);
  const int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return StatusFromSqlite(sqlite3_extended_errcode(db_),
                            "sqlite (" + path_.string() + "): " + msg + " in: " + s.substr(0, 80));
  }
  return Status();
}

Result<SqliteStmt> SqliteDb::Prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr) !=
      SQLITE_OK) {
    return Error("prepare '" + std::string(sql.substr(0, 60)) + "'");
  }
  return SqliteStmt(this, stmt);
}

int64_t SqliteDb::Changes() const { return sqlite3_changes(db_); }

int64_t SqliteDb::LastInsertRowid() const { return sqlite3_last_insert_rowid(db_); }

SqliteStmt::~SqliteStmt() {
  if (stmt_) sqlite3_finalize(stmt_);
}

SqliteStmt& SqliteStmt::Bind(int index, int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
  return *this;
}

SqliteStmt& SqliteStmt::Bind(int index, double value) {
  sqlite3_bind_double(stmt_, index, value);
  return *this;
}

SqliteStmt& SqliteStmt::Bind(int index, std::string_view value) {
  sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
  return *this;
}

Result<bool> SqliteStmt::Step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  const char* sql = sqlite3_sql(stmt_);
  return db_->Error("step '" + std::string(sql ? std::string_view(sql).substr(0, 60) : "") + "'");
}

Status SqliteStmt::Run() {
  while (true) {
    Result<bool> row = Step();
    if (!row.ok()) {
      Reset();
      return row.status();
    }
    if (!*row) break;
  }
  Reset();
  return Status();
}

void SqliteStmt::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

int64_t SqliteStmt::Int(int col) const { return sqlite3_column_int64(stmt_, col); }

double SqliteStmt::Real(int col) const { return sqlite3_column_double(stmt_, col); }

std::string SqliteStmt::Text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col))) : std::string();
}

Status CheckIntegrity(SqliteDb& db) {
  SEXTANT_ASSIGN_OR_RETURN(auto stmt, db.Prepare("PRAGMA integrity_check"));
  std::string answer;
  while (true) {
    SEXTANT_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    answer += (answer.empty() ? "" : "; ") + stmt.Text(0);
  }
  if (answer != "ok") return Status::DataLoss(db.path().string() + ": integrity_check: " + answer);
  return Status();
}

}  // namespace sextant::sqlite
