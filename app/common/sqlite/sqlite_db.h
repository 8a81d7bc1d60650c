// SqliteDb: one SQLite connection, the small wrapper both databases build on (the console's
// ConsoleDatabase and the agent's state, audit and egress stores). Every SQLite error becomes a
// Status through one mapping, StatusFromSqlite, naming the file and the statement.
//
// This header does not include <sqlite3.h>: code that sees only the wrapper (and ui/, which may
// never include SQLite) compiles without it. The raw connection never leaves the wrapper.
//
// Thread-safety: a SqliteDb and its statements are NOT thread-safe. Their owner serializes every
// use (the agent's stores hold a mutex; ConsoleDatabase hands the connection out only under its
// lock, see app/console/store/console_database.h). Statements must not outlive their database.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "engine/base/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace sextant::sqlite {

// The one mapping from an SQLite result code (extended codes included) to a Status code:
//   - the file or the machine cannot serve now, a retry or an operator may fix it: BUSY, LOCKED
//     (after the busy timeout), IOERR*, FULL, CANTOPEN, READONLY, PROTOCOL, NOMEM, PERM
//     -> UNAVAILABLE;
//   - the file is damaged or is not a database: CORRUPT, NOTADB -> DATA_LOSS;
//   - a UNIQUE or PRIMARY KEY constraint -> ALREADY_EXISTS; any other constraint (NOT NULL,
//     CHECK, a trigger's RAISE(ABORT)) -> FAILED_PRECONDITION;
//   - INTERRUPT -> CANCELLED;
//   - everything else (ERROR: bad SQL or a missing table, MISUSE, RANGE, SCHEMA ...) is a defect
//     of the program or its schema -> INTERNAL.
// `message` is kept as is; callers prefix what they were doing.
Status StatusFromSqlite(int code, std::string message);

class SqliteStmt;

struct SqliteOpenOptions {
  // PRAGMA synchronous: FULL (every commit durable, the agent's stores) or NORMAL (WAL commits
  // may roll back after a power loss, never corrupt: the console's telemetry).
  bool synchronous_full = true;
  int busy_timeout_ms = 5000;
};

class SqliteDb {
 public:
  // Opens (creating when missing) the file: WAL journal, the options' synchronous mode and busy
  // timeout, foreign keys on, extended result codes. The parent directory must exist.
  // UNAVAILABLE when the file cannot be opened.
  static Result<std::unique_ptr<SqliteDb>> Open(const std::filesystem::path& path,
                                                const SqliteOpenOptions& options = {});
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  // Runs one or more statements with no results.
  Status Exec(std::string_view sql);
  Result<SqliteStmt> Prepare(std::string_view sql);
  // A Status for the connection's last error (StatusFromSqlite), prefixed with what.
  Status Error(std::string_view what) const;
  // Rows changed by the last INSERT, UPDATE or DELETE; the rowid of the last INSERT.
  int64_t Changes() const;
  int64_t LastInsertRowid() const;
  const std::filesystem::path& path() const { return path_; }

 private:
  SqliteDb(sqlite3* db, std::filesystem::path path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;
  std::filesystem::path path_;
};

// A prepared statement. Bind* take 1-based parameter indices; column getters 0-based columns of
// the current row.
class SqliteStmt {
 public:
  SqliteStmt(SqliteDb* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  SqliteStmt(SqliteStmt&& o) noexcept : db_(o.db_), stmt_(o.stmt_) { o.stmt_ = nullptr; }
  SqliteStmt& operator=(SqliteStmt&&) = delete;
  ~SqliteStmt();

  SqliteStmt& Bind(int index, int64_t value);
  SqliteStmt& Bind(int index, int value) { return Bind(index, static_cast<int64_t>(value)); }
  SqliteStmt& Bind(int index, bool value) { return Bind(index, static_cast<int64_t>(value)); }
  SqliteStmt& Bind(int index, double value);
  SqliteStmt& Bind(int index, std::string_view value);
  SqliteStmt& Bind(int index, const std::string& value) {
    return Bind(index, std::string_view(value));
  }
  SqliteStmt& Bind(int index, const char* value) { return Bind(index, std::string_view(value)); }
  // Advances: true when a row is available, false when done; errors as Status.
  Result<bool> Step();
  // Runs to completion (for statements that return no rows), then resets the statement and
  // clears its bindings so that it can run again.
  Status Run();
  // Back to the start with no bindings (after reading rows).
  void Reset();
  int64_t Int(int col) const;
  double Real(int col) const;
  std::string Text(int col) const;

 private:
  SqliteDb* db_;
  sqlite3_stmt* stmt_;
};

// Runs "PRAGMA integrity_check" and returns OK only when SQLite answers "ok" (DATA_LOSS with its
// answer otherwise).
Status CheckIntegrity(SqliteDb& db);

}  // namespace sextant::sqlite
