// ConsoleDatabase: the console's own state in one SQLite file, <state>/console.db (WAL), and
// the one owner of it: it holds the connection, runs the single list of schema migrations on
// Open (console_database.cpp), and every SQL statement on the file lives in it or in one of its
// repositories:
//
//   accounts()   cloud accounts                       (target_repository.h)
//   targets()    agent endpoints, their connection status
//   facts()      what agents report (cloud context, TLS, audit chain ...; keys in fact_keys.h)
//   telemetry()  GPU and deployment inventory, samples, rollups, retention, hourly usage
//   budgets()    cost budgets per label
//   reports()    signed validation reports             (report_repository.h)
//   rollouts()   the rollout journal of push, scale and rollback (rollout_journal.h)
//   audit_heads() the newest signed audit head seen per target (audit_head_repository.h)
//
// No raw SQLite handle leaves this class; code outside app/console/store never sees SQL.
//
// Threading model: one connection per ConsoleDatabase, used under one lock. Every repository
// call takes the lock for its duration; a Transaction (Begin()) holds it from Begin to Commit or
// rollback, so a statement from another thread can never join an open transaction: it waits
// until the transaction ends. Calls made on the thread that holds a Transaction join it (the
// lock is recursive; a repository's own transaction nests as a SAVEPOINT), so several
// repository calls can be made atomic:
//
//   SEXTANT_ASSIGN_OR_RETURN(console::Transaction tx, db.Begin());
//   SEXTANT_RETURN_IF_ERROR(db.targets().Add(t));
//   SEXTANT_RETURN_IF_ERROR(db.facts().Replace(t.name, "", facts, now));
//   SEXTANT_RETURN_IF_ERROR(tx.Commit());  // or let tx go out of scope: rolled back
//
// Several processes (or several ConsoleDatabase objects) may open the same file: each has its
// own connection and SQLite's WAL locking orders their writes (busy timeout 5 s).
//
// Errors: SQLite failures map to Status through sqlite::StatusFromSqlite (one mapping, see
// app/common/sqlite/sqlite_db.h): BUSY/LOCKED/IO errors are UNAVAILABLE, a damaged file is
// DATA_LOSS, a bad statement is INTERNAL. Thread-safety: safe for concurrent use from any
// number of threads, as described above.
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>

#include "app/console/store/audit_head_repository.h"
#include "app/console/store/budget_repository.h"
#include "app/console/store/fact_repository.h"
#include "app/console/store/records.h"
#include "app/console/store/report_repository.h"
#include "app/console/store/rollout_journal.h"
#include "app/console/store/target_repository.h"
#include "app/console/store/telemetry_repository.h"
#include "engine/base/status.h"

namespace sextant::sqlite {
class SqliteDb;
}

namespace sextant::console {

class ConsoleDatabase;

// The repositories, and only they, reach the connection (DbSession, Transaction::sql()).
#define SEXTANT_CONSOLE_DATABASE_REPOSITORIES_ARE_FRIENDS \
  friend class AccountRepository;                         \
  friend class TargetRepository;                          \
  friend class FactRepository;                            \
  friend class TelemetryRepository;                       \
  friend class BudgetRepository;                          \
  friend class ReportRepository;                          \
  friend class RolloutJournal;                            \
  friend class AuditHeadRepository;

// The lock on the connection, for the repositories' statements (see the threading model).
class DbSession {
 public:
  DbSession(DbSession&&) noexcept = default;

 private:
  friend class ConsoleDatabase;
  friend class Transaction;
  SEXTANT_CONSOLE_DATABASE_REPOSITORIES_ARE_FRIENDS
  sqlite::SqliteDb& sql() { return *db_; }
  DbSession(std::unique_lock<std::recursive_mutex> lock, sqlite::SqliteDb* db)
      : lock_(std::move(lock)), db_(db) {}
  std::unique_lock<std::recursive_mutex> lock_;
  sqlite::SqliteDb* db_;
};

// A transaction on the console database: holds the connection's lock from Begin() until it is
// committed or destroyed. Destroying it uncommitted rolls back everything done in it. Move-only;
// used on the thread that began it.
class Transaction {
 public:
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction();

  // COMMIT (RELEASE for a nested one). Once committed, the destructor does nothing. A failed
  // commit is rolled back by the destructor.
  Status Commit();

 private:
  friend class ConsoleDatabase;
  SEXTANT_CONSOLE_DATABASE_REPOSITORIES_ARE_FRIENDS
  sqlite::SqliteDb& sql() { return session_.sql(); }
  Transaction(ConsoleDatabase* db, DbSession session, int depth);
  ConsoleDatabase* db_;
  DbSession session_;
  int depth_;  // 0: the outermost (BEGIN IMMEDIATE); > 0: SAVEPOINT sp<depth>
  bool done_ = false;
};

class ConsoleDatabase {
 public:
  // The schema version this build writes; Open migrates older files up to it.
  static constexpr int kSchemaVersion = 4;

  // Opens (creating when missing) <state_dir>/console.db and migrates it; state_dir is created
  // mode 0700. FAILED_PRECONDITION for a file from a newer build, UNAVAILABLE when it cannot be
  // opened.
  static Result<std::unique_ptr<ConsoleDatabase>> Open(const std::filesystem::path& state_dir,
                                                       DatabaseOptions options = {});
  // The default state dir: --state when given, else the XDG data dir.
  static Result<std::filesystem::path> ResolveStateDir(const std::string& state_flag);

  ~ConsoleDatabase();
  ConsoleDatabase(const ConsoleDatabase&) = delete;
  ConsoleDatabase& operator=(const ConsoleDatabase&) = delete;

  const std::filesystem::path& path() const { return path_; }
  Result<int> SchemaVersion();

  // Begins a transaction (see the threading model): waits for another thread's transaction to
  // end; on the thread that holds one, nests in it.
  Result<Transaction> Begin();

  AccountRepository& accounts() { return accounts_; }
  TargetRepository& targets() { return targets_; }
  FactRepository& facts() { return facts_; }
  TelemetryRepository& telemetry() { return telemetry_; }
  BudgetRepository& budgets() { return budgets_; }
  ReportRepository& reports() { return reports_; }
  RolloutJournal& rollouts() { return rollouts_; }
  AuditHeadRepository& audit_heads() { return audit_heads_; }

 private:
  friend class Transaction;
  SEXTANT_CONSOLE_DATABASE_REPOSITORIES_ARE_FRIENDS
  // The connection under the lock, for the repositories only.
  DbSession Lock();
  ConsoleDatabase(std::unique_ptr<sqlite::SqliteDb> db, std::filesystem::path path,
                  DatabaseOptions options);
  Status Migrate();

  std::recursive_mutex mu_;
  std::unique_ptr<sqlite::SqliteDb> db_;  // used only under mu_
  std::filesystem::path path_;
  int depth_ = 0;  // GUARDED_BY(mu_): open transactions, outermost first

  AccountRepository accounts_;
  TargetRepository targets_;
  FactRepository facts_;
  TelemetryRepository telemetry_;
  BudgetRepository budgets_;
  ReportRepository reports_;
  RolloutJournal rollouts_;
  AuditHeadRepository audit_heads_;
};

}  // namespace sextant::console
