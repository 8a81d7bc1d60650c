#include "app/console/store/console_database.h"

#include <utility>

#include "app/common/paths.h"
#include "app/common/sqlite/sqlite_db.h"

namespace sextant::console {
namespace {

// The console database's schema, the only one: kMigrations[i] takes the file from version i to
// i + 1. Every table of console.db is created here (the repositories only read and write them).
// Invariant: steps are append-only; a shipped step never changes.
const char* const kMigrations[] = {
    // 0 -> 1
    R"sql(
CREATE TABLE accounts(
  name TEXT PRIMARY KEY, provider TEXT NOT NULL, account_id TEXT NOT NULL,
  regions TEXT NOT NULL, role_ref TEXT NOT NULL, external_id TEXT NOT NULL,
  created_at INTEGER NOT NULL);
CREATE TABLE targets(
  name TEXT PRIMARY KEY, endpoint TEXT NOT NULL, account TEXT NOT NULL,
  ca_path TEXT NOT NULL, cert_path TEXT NOT NULL, key_path TEXT NOT NULL,
  server_name TEXT NOT NULL, labels TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE target_status(
  target TEXT PRIMARY KEY, state INTEGER NOT NULL, since INTEGER NOT NULL,
  last_seen INTEGER NOT NULL, error TEXT NOT NULL, identity TEXT NOT NULL, role TEXT NOT NULL);
CREATE TABLE facts(
  target TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, observed_at INTEGER NOT NULL,
  PRIMARY KEY(target, key));
CREATE TABLE gpus(
  target TEXT NOT NULL, node TEXT NOT NULL, idx INTEGER NOT NULL, kind TEXT NOT NULL,
  model TEXT NOT NULL, memory_total INTEGER NOT NULL, sampled_at INTEGER NOT NULL DEFAULT 0,
  utilization REAL NOT NULL DEFAULT 0, memory_used INTEGER NOT NULL DEFAULT 0,
  temperature REAL NOT NULL DEFAULT 0, power REAL NOT NULL DEFAULT 0,
  PRIMARY KEY(target, node, idx));
CREATE TABLE deployments(
  target TEXT NOT NULL, name TEXT NOT NULL, model_sha256 TEXT NOT NULL,
  engine_build_id TEXT NOT NULL, spec_digest TEXT NOT NULL, gpus_requested REAL NOT NULL,
  labels TEXT NOT NULL, sampled_at INTEGER NOT NULL DEFAULT 0,
  replicas_ready INTEGER NOT NULL DEFAULT 0, replicas_desired INTEGER NOT NULL DEFAULT 0,
  ttft_p50 REAL NOT NULL DEFAULT 0, ttft_p99 REAL NOT NULL DEFAULT 0,
  tokens_per_s REAL NOT NULL DEFAULT 0, queue_depth INTEGER NOT NULL DEFAULT 0,
  prompt_total INTEGER NOT NULL DEFAULT 0, generated_total INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(target, name));
CREATE TABLE gpu_samples(
  seq INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, node TEXT NOT NULL,
  idx INTEGER NOT NULL, ts INTEGER NOT NULL, period REAL NOT NULL, utilization REAL NOT NULL,
  memory_used INTEGER NOT NULL, temperature REAL NOT NULL, power REAL NOT NULL);
CREATE INDEX gpu_samples_ts ON gpu_samples(ts);
CREATE TABLE deployment_samples(
  seq INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, deployment TEXT NOT NULL,
  ts INTEGER NOT NULL, period REAL NOT NULL, gpus_requested REAL NOT NULL,
  gpus_used REAL NOT NULL, replicas_ready INTEGER NOT NULL, replicas_desired INTEGER NOT NULL,
  ttft_p50 REAL NOT NULL, ttft_p99 REAL NOT NULL, tokens_per_s REAL NOT NULL,
  queue_depth INTEGER NOT NULL, prompt_delta INTEGER NOT NULL, generated_delta INTEGER NOT NULL);
CREATE INDEX deployment_samples_ts ON deployment_samples(ts);
CREATE TABLE gpu_rollup_minute(
  target TEXT NOT NULL, node TEXT NOT NULL, idx INTEGER NOT NULL, bucket INTEGER NOT NULL,
  n INTEGER NOT NULL, seconds REAL NOT NULL, util_s REAL NOT NULL, util_max REAL NOT NULL,
  mem_max INTEGER NOT NULL, power_s REAL NOT NULL, temp_max REAL NOT NULL,
  PRIMARY KEY(target, node, idx, bucket));
CREATE TABLE gpu_rollup_hour(
  target TEXT NOT NULL, node TEXT NOT NULL, idx INTEGER NOT NULL, bucket INTEGER NOT NULL,
  n INTEGER NOT NULL, seconds REAL NOT NULL, util_s REAL NOT NULL, util_max REAL NOT NULL,
  mem_max INTEGER NOT NULL, power_s REAL NOT NULL, temp_max REAL NOT NULL,
  PRIMARY KEY(target, node, idx, bucket));
CREATE TABLE deployment_rollup_minute(
  target TEXT NOT NULL, deployment TEXT NOT NULL, bucket INTEGER NOT NULL,
  n INTEGER NOT NULL, seconds REAL NOT NULL, requested_s REAL NOT NULL, used_s REAL NOT NULL,
  ttft_p99_max REAL NOT NULL, tps_s REAL NOT NULL, queue_max INTEGER NOT NULL,
  prompt_tokens INTEGER NOT NULL, generated_tokens INTEGER NOT NULL,
  PRIMARY KEY(target, deployment, bucket));
CREATE TABLE deployment_rollup_hour(
  target TEXT NOT NULL, deployment TEXT NOT NULL, bucket INTEGER NOT NULL,
  n INTEGER NOT NULL, seconds REAL NOT NULL, requested_s REAL NOT NULL, used_s REAL NOT NULL,
  ttft_p99_max REAL NOT NULL, tps_s REAL NOT NULL, queue_max INTEGER NOT NULL,
  prompt_tokens INTEGER NOT NULL, generated_tokens INTEGER NOT NULL,
  PRIMARY KEY(target, deployment, bucket));
CREATE TABLE rollup_marks(series TEXT PRIMARY KEY, last_seq INTEGER NOT NULL);
INSERT INTO rollup_marks VALUES('gpu', 0), ('deployment', 0);
CREATE TABLE budgets(
  label TEXT PRIMARY KEY, amount_usd REAL NOT NULL, window_days INTEGER NOT NULL,
  warn_ratio REAL NOT NULL);
CREATE TABLE validation_reports(
  id INTEGER PRIMARY KEY, spec_digest TEXT NOT NULL, spec_name TEXT NOT NULL,
  model_sha256 TEXT NOT NULL, passed INTEGER NOT NULL, created_at TEXT NOT NULL,
  report_json TEXT NOT NULL, signature TEXT NOT NULL, key_id TEXT NOT NULL);
CREATE INDEX validation_reports_digest ON validation_reports(spec_digest);
)sql",
    // 1 -> 2: inter-token latency and KV cache use of deployments.
    R"sql(
ALTER TABLE deployments ADD COLUMN itl_p50 REAL NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN itl_p99 REAL NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN kv_cache_use REAL NOT NULL DEFAULT 0;
ALTER TABLE deployment_samples ADD COLUMN itl_p50 REAL NOT NULL DEFAULT 0;
ALTER TABLE deployment_samples ADD COLUMN itl_p99 REAL NOT NULL DEFAULT 0;
ALTER TABLE deployment_samples ADD COLUMN kv_cache_use REAL NOT NULL DEFAULT 0;
)sql",
    // 2 -> 3: the rollout journal (push, scale, rollback). Earlier builds created these tables
    // outside the migrations, hence IF NOT EXISTS.
    R"sql(
CREATE TABLE IF NOT EXISTS rollouts(
  id INTEGER PRIMARY KEY, kind TEXT NOT NULL, deployment TEXT NOT NULL,
  spec_digest TEXT NOT NULL, started_at INTEGER NOT NULL,
  finished_at INTEGER NOT NULL DEFAULT 0, ok INTEGER NOT NULL DEFAULT 0,
  result_json TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS rollouts_deployment ON rollouts(deployment, id);
CREATE TABLE IF NOT EXISTS rollout_targets(
  rollout_id INTEGER NOT NULL, target TEXT NOT NULL,
  previous_known INTEGER NOT NULL, had_previous INTEGER NOT NULL,
  previous_generation INTEGER NOT NULL, previous_spec_json TEXT NOT NULL,
  previous_spec_digest TEXT NOT NULL, previous_model_uri TEXT NOT NULL,
  previous_model_sha256 TEXT NOT NULL, generation INTEGER NOT NULL, state TEXT NOT NULL,
  apply_unknown INTEGER NOT NULL, updated_at INTEGER NOT NULL,
  PRIMARY KEY(rollout_id, target));
)sql",
    // 3 -> 4: the newest signed audit head seen per target (audit_head_repository.h).
    R"sql(
CREATE TABLE audit_heads(
  target TEXT PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL, signed_at TEXT NOT NULL,
  key_id TEXT NOT NULL, public_key TEXT NOT NULL, signature TEXT NOT NULL,
  seen_at INTEGER NOT NULL);
)sql",
};

constexpr int kMigrationCount = sizeof(kMigrations) / sizeof(kMigrations[0]);
static_assert(kMigrationCount == ConsoleDatabase::kSchemaVersion,
              "one migration step per schema version");

}  // namespace

std::string_view ConnStateName(ConnState s) {
  switch (s) {
    case ConnState::kConnected:
      return "connected";
    case ConnState::kStale:
      return "stale";
    case ConnState::kError:
      return "error";
    case ConnState::kUnknown:
      break;
  }
  return "unknown";
}

// ---- transactions ----

Transaction::Transaction(ConsoleDatabase* db, DbSession session, int depth)
    : db_(db), session_(std::move(session)), depth_(depth) {}

Transaction::Transaction(Transaction&& other) noexcept
    : db_(other.db_),
      session_(std::move(other.session_)),
      depth_(other.depth_),
      done_(other.done_) {
  other.db_ = nullptr;
}

Transaction::~Transaction() {
  if (db_ == nullptr) return;  // moved from
  if (!done_) {
    const std::string sp = "sp" + std::to_string(depth_);
    (void)sql().Exec(depth_ == 0 ? std::string("ROLLBACK")
                                 : "ROLLBACK TO " + sp + "; RELEASE " + sp);
  }
  --db_->depth_;
}

Status Transaction::Commit() {
  if (db_ == nullptr) return Status::FailedPrecondition("transaction was moved");
  if (done_) return Status::FailedPrecondition("transaction already committed");
  SEXTANT_RETURN_IF_ERROR(
      sql().Exec(depth_ == 0 ? std::string("COMMIT") : "RELEASE sp" + std::to_string(depth_)));
  done_ = true;
  return Status();
}

// ---- the database ----

Result<std::filesystem::path> ConsoleDatabase::ResolveStateDir(const std::string& state_flag) {
  if (!state_flag.empty()) return std::filesystem::path(state_flag);
  return DefaultConsoleStateDir();
}

ConsoleDatabase::ConsoleDatabase(std::unique_ptr<sqlite::SqliteDb> db, std::filesystem::path path,
                                 DatabaseOptions options)
    : db_(std::move(db)),
      path_(std::move(path)),
      accounts_(this),
      targets_(this),
      facts_(this),
      telemetry_(this, options.retention),
      budgets_(this),
      reports_(this),
      rollouts_(this),
      audit_heads_(this) {}

ConsoleDatabase::~ConsoleDatabase() = default;

Result<std::unique_ptr<ConsoleDatabase>> ConsoleDatabase::Open(
    const std::filesystem::path& state_dir, DatabaseOptions options) {
  SEXTANT_RETURN_IF_ERROR(EnsurePrivateDir(state_dir));
  const auto path = state_dir / "console.db";
  sqlite::SqliteOpenOptions o;
  o.synchronous_full = false;  // WAL + NORMAL: a power loss may drop the last commits, never
                               // corrupt; samples arrive again
  auto conn = sqlite::SqliteDb::Open(path, o);
  if (!conn.ok()) return conn.status().WithContext(path.string());
  std::unique_ptr<ConsoleDatabase> db(
      new ConsoleDatabase(std::move(conn).value(), path, std::move(options)));
  SEXTANT_RETURN_IF_ERROR(db->Migrate().WithContext(path.string()));
  return db;
}

DbSession ConsoleDatabase::Lock() {
  return DbSession(std::unique_lock<std::recursive_mutex>(mu_), db_.get());
}

Result<Transaction> ConsoleDatabase::Begin() {
  DbSession s = Lock();
  const int depth = depth_;
  SEXTANT_RETURN_IF_ERROR(s.sql().Exec(depth == 0 ? std::string("BEGIN IMMEDIATE")
                                                  : "SAVEPOINT sp" + std::to_string(depth)));
  ++depth_;
  return Transaction(this, std::move(s), depth);
}

Status ConsoleDatabase::Migrate() {
  {
    // A current file needs no write lock: opening it beside a busy writer (another process
    // ingesting) does not wait for that writer.
    DbSession s = Lock();
    auto q = s.sql().Prepare("SELECT version FROM schema_version");
    if (q.ok()) {
      auto row = q->Step();
      if (row.ok() && *row && q->Int(0) == kSchemaVersion) return Status();
    }
    SEXTANT_RETURN_IF_ERROR(
        s.sql().Exec("CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)"));
  }
  SEXTANT_ASSIGN_OR_RETURN(Transaction tx, Begin());
  int version = 0;
  {
    SEXTANT_ASSIGN_OR_RETURN(auto q, tx.sql().Prepare("SELECT version FROM schema_version"));
    SEXTANT_ASSIGN_OR_RETURN(bool row, q.Step());
    if (row) version = static_cast<int>(q.Int(0));
  }
  if (version > kSchemaVersion) {
    return Status::FailedPrecondition("schema version " + std::to_string(version) +
                                      " is newer than this build's " +
                                      std::to_string(kSchemaVersion));
  }
  if (version == kSchemaVersion) return tx.Commit();
  for (int v = version; v < kSchemaVersion; ++v) {
    SEXTANT_RETURN_IF_ERROR(
        tx.sql().Exec(kMigrations[v]).WithContext("migration to version " + std::to_string(v + 1)));
  }
  SEXTANT_RETURN_IF_ERROR(tx.sql().Exec("DELETE FROM schema_version"));
  SEXTANT_ASSIGN_OR_RETURN(auto ins,
                           tx.sql().Prepare("INSERT INTO schema_version(version) VALUES(?)"));
  SEXTANT_RETURN_IF_ERROR(ins.Bind(1, kSchemaVersion).Run());
  return tx.Commit();
}

Result<int> ConsoleDatabase::SchemaVersion() {
  DbSession s = Lock();
  SEXTANT_ASSIGN_OR_RETURN(auto q, s.sql().Prepare("SELECT version FROM schema_version"));
  SEXTANT_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return Status::DataLoss("schema_version has no row");
  return static_cast<int>(q.Int(0));
}

}  // namespace sextant::console
