// A minimal RAII wrapper over one SQLite connection for the agent's stores (desired state,
// audit log). Every sqlite3 error becomes a Status naming the file and the statement.
// Thread-safety: a SqliteDb is NOT thread-safe; its owner serializes access (stores hold a
// mutex). Statements must not outlive their database.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "engine/base/status.h"

namespace sextant::agent {

class SqliteStmt;

class SqliteDb {
 public:
  // Opens (creating when missing) the file, WAL journal, synchronous=FULL, busy timeout 5 s,
  // foreign keys on. The parent directory must exist.
  static Result<std::unique_ptr<SqliteDb>> Open(const std::filesystem::path& path);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  // Runs one or more statements with no results.
  Status Exec(std::string_view sql);
  Result<SqliteStmt> Prepare(std::string_view sql);
  // A Status for the last error, prefixed with what.
  Status Error(std::string_view what) const;
  sqlite3* handle() { return db_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  SqliteDb(sqlite3* db, std::filesystem::path path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;
  std::filesystem::path path_;
};

class SqliteStmt {
 public:
  SqliteStmt(SqliteDb* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  SqliteStmt(SqliteStmt&& o) noexcept : db_(o.db_), stmt_(o.stmt_) { o.stmt_ = nullptr; }
  SqliteStmt& operator=(SqliteStmt&&) = delete;
  ~SqliteStmt();

  SqliteStmt& Bind(int index, int64_t value);
  SqliteStmt& Bind(int index, std::string_view value);
  // Advances: true when a row is available, false when done; errors as Status.
  Result<bool> Step();
  // Runs to completion (for statements that return no rows).
  Status Run();
  int64_t Int(int col) const;
  std::string Text(int col) const;

 private:
  SqliteDb* db_;
  sqlite3_stmt* stmt_;
};

// Runs "PRAGMA integrity_check" and returns OK only when SQLite answers "ok".
Status CheckIntegrity(SqliteDb& db);

}  // namespace sextant::agent
