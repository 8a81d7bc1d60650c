#include "app/console/store/console_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>

#include "app/common/paths.h"

namespace sextant::console {
namespace {

using nlohmann::json;

constexpr TimeMs kMinuteMs = 60'000;
constexpr TimeMs kHourMs = 3'600'000;

Status SqlError(sqlite3* db, std::string_view what) {
  return Status::Internal(std::string(what) + ": " + sqlite3_errmsg(db));
}

// A prepared statement, finalized on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Status status() const { return rc_ == SQLITE_OK ? Status() : SqlError(db_, "prepare"); }
  Stmt& Bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& Bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Stmt& Bind(int i, int v) { return Bind(i, static_cast<int64_t>(v)); }
  Stmt& Bind(int i, double v) {
    sqlite3_bind_double(stmt_, i, v);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(stmt_); }
  Status Run() {
    int rc = Step();
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return SqlError(db_, "step");
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    return Status();
  }
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  std::string Text(int col) const {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p)) : std::string();
  }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  double Real(int col) const { return sqlite3_column_double(stmt_, col); }
  int Changes() const { return sqlite3_changes(db_); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

Status Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return Status::Internal(std::string("sql: ") + msg);
  }
  return Status();
}

// Runs fn inside BEGIN IMMEDIATE ... COMMIT; rolls back when fn fails.
template <typename Fn>
Status InTransaction(sqlite3* db, Fn&& fn) {
  SEXTANT_RETURN_IF_ERROR(Exec(db, "BEGIN IMMEDIATE"));
  Status s = fn();
  if (!s.ok()) {
    (void)Exec(db, "ROLLBACK");
    return s;
  }
  return Exec(db, "COMMIT");
}

std::string LabelsToJson(const std::map<std::string, std::string>& labels) {
  return json(labels).dump();
}
std::map<std::string, std::string> LabelsFromJson(const std::string& s) {
  std::map<std::string, std::string> out;
  auto j = json::parse(s, nullptr, false);
  if (j.is_object()) {
    for (auto& [k, v] : j.items()) {
      if (v.is_string()) out[k] = v.get<std::string>();
    }
  }
  return out;
}

// Migration steps: kMigrations[i] takes the schema from version i to i + 1.
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
    // 2 -> 3: prefix cache hit rate of deployments (-1: never measured).
    R"sql(
ALTER TABLE deployments ADD COLUMN prefix_cache_hit REAL NOT NULL DEFAULT -1;
ALTER TABLE deployment_samples ADD COLUMN prefix_cache_hit REAL NOT NULL DEFAULT -1;
)sql",
};
constexpr int kMigrationCount = sizeof(kMigrations) / sizeof(kMigrations[0]);
static_assert(kMigrationCount == ConsoleStore::kSchemaVersion,
              "one migration step per schema version");

}  // namespace

TimeMs NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

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

Result<std::filesystem::path> ConsoleStore::ResolveStateDir(const std::string& state_flag) {
  if (!state_flag.empty()) return std::filesystem::path(state_flag);
  return DefaultConsoleStateDir();
}

ConsoleStore::ConsoleStore(sqlite3* db, std::filesystem::path path, StoreOptions options)
    : db_(db), path_(std::move(path)), options_(options) {}

ConsoleStore::~ConsoleStore() { sqlite3_close_v2(db_); }

Result<std::unique_ptr<ConsoleStore>> ConsoleStore::Open(const std::filesystem::path& state_dir,
                                                         StoreOptions options) {
  SEXTANT_RETURN_IF_ERROR(EnsurePrivateDir(state_dir));
  const auto path = state_dir / "console.db";
  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return Status::Unavailable("cannot open " + path.string() + ": " + msg);
  }
  std::unique_ptr<ConsoleStore> store(new ConsoleStore(db, path, options));
  sqlite3_busy_timeout(db, 5000);
  SEXTANT_RETURN_IF_ERROR(Exec(db, "PRAGMA journal_mode=WAL").WithContext(path.string()));
  SEXTANT_RETURN_IF_ERROR(Exec(db, "PRAGMA synchronous=NORMAL"));
  SEXTANT_RETURN_IF_ERROR(Exec(db, "PRAGMA foreign_keys=ON"));
  SEXTANT_RETURN_IF_ERROR(store->Migrate().WithContext(path.string()));
  return store;
}

Status ConsoleStore::Migrate() {
  std::lock_guard lock(mu_);
  {
    // A current file needs no write lock: opening it beside a busy writer (another process
    // ingesting) does not wait for that writer.
    Stmt q(db_, "SELECT version FROM schema_version");
    if (q.status().ok() && q.Step() == SQLITE_ROW && q.Int(0) == kSchemaVersion) return Status();
  }
  SEXTANT_RETURN_IF_ERROR(
      Exec(db_, "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)"));
  return InTransaction(db_, [&]() -> Status {
    int version = 0;
    {
      Stmt q(db_, "SELECT version FROM schema_version");
      SEXTANT_RETURN_IF_ERROR(q.status());
      if (q.Step() == SQLITE_ROW) version = static_cast<int>(q.Int(0));
    }
    if (version > kSchemaVersion) {
      return Status::FailedPrecondition("schema version " + std::to_string(version) +
                                        " is newer than this build's " +
                                        std::to_string(kSchemaVersion));
    }
    for (int v = version; v < kSchemaVersion; ++v) {
      SEXTANT_RETURN_IF_ERROR(
          Exec(db_, kMigrations[v]).WithContext("migration to version " + std::to_string(v + 1)));
    }
    if (version != kSchemaVersion) {
      SEXTANT_RETURN_IF_ERROR(Exec(db_, "DELETE FROM schema_version"));
      Stmt ins(db_, "INSERT INTO schema_version(version) VALUES(?)");
      SEXTANT_RETURN_IF_ERROR(ins.status());
      SEXTANT_RETURN_IF_ERROR(ins.Bind(1, kSchemaVersion).Run());
    }
    return Status();
  });
}

Result<int> ConsoleStore::SchemaVersion() {
  std::lock_guard lock(mu_);
  Stmt q(db_, "SELECT version FROM schema_version");
  SEXTANT_RETURN_IF_ERROR(q.status());
  if (q.Step() != SQLITE_ROW) return Status::DataLoss("schema_version has no row");
  return static_cast<int>(q.Int(0));
}

// ---- accounts ----

Status ConsoleStore::AddAccount(const Account& a) {
  if (a.name.empty()) return Status::InvalidArgument("account name is empty");
  if (a.provider.empty()) return Status::InvalidArgument("account " + a.name + ": no provider");
  std::lock_guard lock(mu_);
  Stmt q(db_,
         "INSERT INTO accounts(name, provider, account_id, regions, role_ref, external_id, "
         "created_at) VALUES(?,?,?,?,?,?,?)");
  SEXTANT_RETURN_IF_ERROR(q.status());
  q.Bind(1, a.name).Bind(2, a.provider).Bind(3, a.account_id).Bind(4, json(a.regions).dump());
  q.Bind(5, a.role_ref).Bind(6, a.external_id).Bind(7, a.created_at ? a.created_at : NowMs());
  int rc = q.Step();
  if (rc == SQLITE_CONSTRAINT) return Status::AlreadyExists("account " + a.name + " exists");
  if (rc != SQLITE_DONE) return SqlError(db_, "add account " + a.name);
  return Status();
}

Status ConsoleStore::RemoveAccount(const std::string& name) {
  std::lock_guard lock(mu_);
  Stmt q(db_, "DELETE FROM accounts WHERE name = ?");
  SEXTANT_RETURN_IF_ERROR(q.status());
  SEXTANT_RETURN_IF_ERROR(q.Bind(1, name).Run());
  if (q.Changes() == 0) return Status::NotFound("no account named " + name);
  return Status();
}

Result<std::vector<Account>> ConsoleStore::ListAccounts() {
  std::lock_guard lock(mu_);
  Stmt q(db_,
         "SELECT name, provider, account_id, regions, role_ref, external_id, created_at "
         "FROM accounts ORDER BY name");
  SEXTANT_RETURN_IF_ERROR(q.status());
  std::vector<Account> out;
  while (q.Step() == SQLITE_ROW) {
    Account a;
    a.name = q.Text(0);
    a.provider = q.Text(1);
    a.account_id = q.Text(2);
    auto r = json::parse(q.Text(3), nullptr, false);
    if (r.is_array()) {
      for (auto& e : r) {
        if (e.is_string()) a.regions.push_back(e.get<std::string>());
      }
    }
    a.role_ref = q.Text(4);
    a.external_id = q.Text(5);
    a.created_at = q.Int(6);
    out.push_back(std::move(a));
  }
  return out;
}

// ---- targets ----

Status ConsoleStore::AddTarget(const Target& t) {
  if (t.name.empty()) return Status::InvalidArgument("target name is empty");
  if (t.endpoint.empty()) return Status::InvalidArgument("target " + t.name + ": no endpoint");
  std::lock_guard lock(mu_);
  Stmt q(db_,
         "INSERT INTO targets(name, endpoint, account, ca_path, cert_path, key_path, "
         "server_name, labels, created_at) VALUES(?,?,?,?,?,?,?,?,?)");
  SEXTANT_RETURN_IF_ERROR(q.status());
  q.Bind(1, t.name).Bind(2, t.endpoint).Bind(3, t.account).Bind(4, t.ca_path);
  q.Bind(5, t.cert_path).Bind(6, t.key_path).Bind(7, t.server_name);
  q.Bind(8, LabelsToJson(t.labels)).Bind(9, t.created_at ? t.created_at : NowMs());
  int rc = q.Step();
  if (rc == SQLITE_CONSTRAINT) return Status::AlreadyExists("target " + t.name + " exists");
  if (rc != SQLITE_DONE) return SqlError(db_, "add target " + t.name);
  return Status();
}

Status ConsoleStore::RemoveTarget(const std::string& name) {
  std::lock_guard lock(mu_);
  return InTransaction(db_, [&]() -> Status {
    Stmt q(db_, "DELETE FROM targets WHERE name = ?");
    SEXTANT_RETURN_IF_ERROR(q.status());
    SEXTANT_RETURN_IF_ERROR(q.Bind(1, name).Run());
    if (q.Changes() == 0) return Status::NotFound("no target named " + name);
    for (const char* sql :
         {"DELETE FROM target_status WHERE target = ?", "DELETE FROM facts WHERE target = ?",
          "DELETE FROM gpus WHERE target = ?", "DELETE FROM deployments WHERE target = ?",
          "DELETE FROM gpu_samples WHERE target = ?",
          "DELETE FROM deployment_samples WHERE target = ?",
          "DELETE FROM gpu_rollup_minute WHERE target = ?",
          "DELETE FROM gpu_rollup_hour WHERE target = ?",
          "DELETE FROM deployment_rollup_minute WHERE target = ?",
          "DELETE FROM deployment_rollup_hour WHERE target = ?"}) {
      Stmt d(db_, sql);
      SEXTANT_RETURN_IF_ERROR(d.status());
      SEXTANT_RETURN_IF_ERROR(d.Bind(1, name).Run());
    }
    return Status();
  });
}

namespace {
Target ReadTarget(const Stmt& q) {
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
constexpr const char* kTargetCols =
    "SELECT name, endpoint, account, ca_path, cert_path, key_path, server_name, labels, "
    "created_at FROM targets";
}  // namespace

Result<std::vector<Target>> ConsoleStore::ListTargets() {
  std::lock_guard lock(mu_);
  Stmt q(db_, (std::string(kTargetCols) + " ORDER BY name").c_str());
  SEXTANT_RETURN_IF_ERROR(q.status());
  std::vector<Target> out;
  while (q.Step() == SQLITE_ROW) out.push_back(ReadTarget(q));
  return out;
}

Result<Target> ConsoleStore::GetTarget(const std::string& name) {
  std::lock_guard lock(mu_);
  Stmt q(db_, (std::string(kTargetCols) + " WHERE name = ?").c_str());
  SEXTANT_RETURN_IF_ERROR(q.status());
  q.Bind(1, name);
  if (q.Step() != SQLITE_ROW) return Status::NotFound("no target named " + name);
  return ReadTarget(q);
}

Status ConsoleStore::SetTargetStatus(const TargetStatus& s) {
  std::lock_guard lock(mu_);
  Stmt q(db_,
         "INSERT INTO target_status(target, state, since, last_seen, error, identity, role) "
         "VALUES(?,?,?,?,?,?,?) ON CONFLICT(target) DO UPDATE SET state=excluded.state, "
         "since=excluded.since, last_seen=excluded.last_seen, error=excluded.error, "
         "identity=excluded.identity, role=excluded.role");
  SEXTANT_RETURN_IF_ERROR(q.status());
  q.Bind(1, s.target).Bind(2, static_cast<int>(s.state)).Bind(3, s.since).Bind(4, s.last_seen);
  q.Bind(5, s.error).Bind(6, s.identity).Bind(7, s.role);
  return q.Run();
}

Result<std::vector<TargetStatus>> ConsoleStore::ListTargetStatus() {
  std::lock_guard lock(mu_);
  Stmt q(db_,
         "SELECT target, state, since, last_seen, error, identity, role FROM target_status "
         "ORDER BY target");
  SEXTANT_RETURN_IF_ERROR(q.status());
  std::vector<TargetStatus> out;
  while (q.Step() == SQLITE_ROW) {
    TargetStatus s;
    s.target = q.Text(0);
    int st = static_cast<int>(q.Int(1));
    s.state = (st >= 0 && st <= 3) ? static_cast<ConnState>(st) : ConnState::kUnknown;
    s.since = q.Int(2);
    s.last_seen = q.Int(3);
    s.error = q.Text(4);
    s.identity = q.Text(5);
    s.role = q.Text(6);
    out.push_back(std::move(s));
  }
  return out;
}

// ---- facts ----

Status ConsoleStore::ReplaceFacts(const std::string& target, const std::string& prefix,
                                  const std::vector<std::pair<std::string, std::string>>& facts,
                                  TimeMs observed_at) {
  std::lock_guard lock(mu_);
  return InTransaction(db_, [&]() -> Status {
    Stmt d(db_, "DELETE FROM facts WHERE target = ? AND substr(key, 1, ?) = ?");
    SEXTANT_RETURN_IF_ERROR(d.status());
    SEXTANT_RETURN_IF_ERROR(
        d.Bind(1, target).Bind(2, static_cast<int64_t>(prefix.size())).Bind(3, prefix).Run());
    Stmt ins(db_, "INSERT OR REPLACE INTO facts(target, key, value, observed_at) VALUES(?,?,?,?)");
    SEXTANT_RETURN_IF_ERROR(ins.status());
    for (const auto& [k, v] : facts) {
      if (k.compare(0, prefix.size(), prefix) != 0) {
        return Status::InvalidArgument("fact " + k + " is outside prefix " + prefix);
      }
      SEXTANT_RETURN_IF_ERROR(ins.Bind(1, target).Bind(2, k).Bind(3, v).Bind(4, observed_at).Run());
    }
    return Status();
  });
}

Result<std::vector<Fact>> ConsoleStore::ListFacts(const std::string& target) {
  std::lock_guard lock(mu_);
  Stmt q(db_,
         "SELECT target, key, value, observed_at FROM facts WHERE ? = '' OR target = ? "
         "ORDER BY target, key");
  SEXTANT_RETURN_IF_ERROR(q.status());
  q.Bind(1, target).Bind(2, target);
  std::vector<Fact> out;
  while (q.Step() == SQLITE_ROW) out.push_back({q.Text(0), q.Text(1), q.Text(2), q.Int(3)});
  return out;
}

// ---- inventory ----

Status ConsoleStore::ReplaceGpus(const std::string& target, const std::vector<Gpu>& gpus) {
  std::lock_guard lock(mu_);
  return InTransaction(db_, [&]() -> Status {
    // Drop GPUs that are gone; keep the sampled columns of those that remain.
    SEXTANT_RETURN_IF_ERROR(
        Exec(db_, "CREATE TEMP TABLE IF NOT EXISTS keep_gpus(node TEXT, idx INTEGER)"));
    SEXTANT_RETURN_IF_ERROR(Exec(db_, "DELETE FROM keep_gpus"));
    Stmt k(db_, "INSERT INTO keep_gpus VALUES(?,?)");
    SEXTANT_RETURN_IF_ERROR(k.status());
    Stmt up(
        db_,
        "INSERT INTO gpus(target, node, idx, kind, model, memory_total) VALUES(?,?,?,?,?,?) "
        "ON CONFLICT(target, node, idx) DO UPDATE SET kind=excluded.kind, model=excluded.model, "
        "memory_total=excluded.memory_total");
    SEXTANT_RETURN_IF_ERROR(up.status());
    for (const auto& g : gpus) {
      SEXTANT_RETURN_IF_ERROR(k.Bind(1, g.node).Bind(2, g.index).Run());
      SEXTANT_RETURN_IF_ERROR(up.Bind(1, target)
                                  .Bind(2, g.node)
                                  .Bind(3, g.index)
                                  .Bind(4, g.kind)
                                  .Bind(5, g.model)
                                  .Bind(6, g.memory_total_bytes)
                                  .Run());
    }
    Stmt d(db_,
           "DELETE FROM gpus WHERE target = ? AND NOT EXISTS (SELECT 1 FROM keep_gpus k "
           "WHERE k.node = gpus.node AND k.idx = gpus.idx)");
    SEXTANT_RETURN_IF_ERROR(d.status());
    return d.Bind(1, target).Run();
  });
}

Result<std::vector<Gpu>> ConsoleStore::ListGpus() {
  std::lock_guard lock(mu_);
  Stmt q(db_,
         "SELECT target, node, idx, model, memory_total, sampled_at, utilization, memory_used, "
         "temperature, power, kind FROM gpus ORDER BY target, node, idx");
  SEXTANT_RETURN_IF_ERROR(q.status());
  std::vector<Gpu> out;
  while (q.Step() == SQLITE_ROW) {
    Gpu g;
    g.target = q.Text(0);
    g.node = q.Text(1);
    g.index = static_cast<int>(q.Int(2));
    g.model = q.Text(3);
    g.memory_total_bytes = q.Int(4);
    g.sampled_at = q.Int(5);
    g.utilization = q.Real(6);
    g.memory_used_bytes = q.Int(7);
    g.temperature_c = q.Real(8);
    g.power_w = q.Real(9);
    g.kind = q.Text(10);
    out.push_back(std::move(g));
  }
  return out;
}

Status ConsoleStore::ReplaceDeployments(const std::string& target,
                                        const std::vector<Deployment>& deps) {
  std::lock_guard lock(mu_);
  return InTransaction(db_, [&]() -> Status {
    SEXTANT_RETURN_IF_ERROR(Exec(db_, "CREATE TEMP TABLE IF NOT EXISTS keep_deps(name TEXT)"));
    SEXTANT_RETURN_IF_ERROR(Exec(db_, "DELETE FROM keep_deps"));
    Stmt k(db_, "INSERT INTO keep_deps VALUES(?)");
    SEXTANT_RETURN_IF_ERROR(k.status());
    Stmt up(db_,
            "INSERT INTO deployments(target, name, model_sha256, engine_build_id, spec_digest, "
            "gpus_requested, labels, replicas_ready, replicas_desired) VALUES(?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT(target, name) DO UPDATE SET model_sha256=excluded.model_sha256, "
            "engine_build_id=excluded.engine_build_id, spec_digest=excluded.spec_digest, "
            "gpus_requested=excluded.gpus_requested, labels=excluded.labels, "
            "replicas_ready=excluded.replicas_ready, replicas_desired=excluded.replicas_desired");
    SEXTANT_RETURN_IF_ERROR(up.status());
    for (const auto& d : deps) {
      SEXTANT_RETURN_IF_ERROR(k.Bind(1, d.name).Run());
      up.Bind(1, target).Bind(2, d.name).Bind(3, d.model_sha256).Bind(4, d.engine_build_id);
      up.Bind(5, d.spec_digest).Bind(6, d.gpus_requested).Bind(7, LabelsToJson(d.labels));
      up.Bind(8, d.replicas_ready).Bind(9, d.replicas_desired);
      SEXTANT_RETURN_IF_ERROR(up.Run());
    }
    Stmt d(db_,
           "DELETE FROM deployments WHERE target = ? AND name NOT IN (SELECT name FROM "
           "keep_deps)");
    SEXTANT_RETURN_IF_ERROR(d.status());
    return d.Bind(1, target).Run();
  });
}

Result<std::vector<Deployment>> ConsoleStore::ListDeployments() {
  std::lock_guard lock(mu_);
  Stmt q(db_,
         "SELECT target, name, model_sha256, engine_build_id, spec_digest, gpus_requested, "
         "labels, sampled_at, replicas_ready, replicas_desired, ttft_p50, ttft_p99, "
         "tokens_per_s, queue_depth, prompt_total, generated_total, itl_p50, itl_p99, "
         "kv_cache_use, prefix_cache_hit FROM deployments ORDER BY target, name");
  SEXTANT_RETURN_IF_ERROR(q.status());
  std::vector<Deployment> out;
  while (q.Step() == SQLITE_ROW) {
    Deployment d;
    d.target = q.Text(0);
    d.name = q.Text(1);
    d.model_sha256 = q.Text(2);
    d.engine_build_id = q.Text(3);
    d.spec_digest = q.Text(4);
    d.gpus_requested = q.Real(5);
    d.labels = LabelsFromJson(q.Text(6));
    d.sampled_at = q.Int(7);
    d.replicas_ready = static_cast<int>(q.Int(8));
    d.replicas_desired = static_cast<int>(q.Int(9));
    d.ttft_p50_ms = q.Real(10);
    d.ttft_p99_ms = q.Real(11);
    d.tokens_per_s = q.Real(12);
    d.queue_depth = q.Int(13);
    d.prompt_tokens_total = q.Int(14);
    d.generated_tokens_total = q.Int(15);
    d.itl_p50_ms = q.Real(16);
    d.itl_p99_ms = q.Real(17);
    d.kv_cache_use = q.Real(18);
    d.prefix_cache_hit = q.Real(19);
    out.push_back(std::move(d));
  }
  return out;
}

// ---- samples ----

Status ConsoleStore::AppendSamples(const std::vector<GpuSample>& gpu,
                                   const std::vector<DeploymentSample>& dep) {
  std::lock_guard lock(mu_);
  return AppendLocked(gpu, dep, {});
}

Status ConsoleStore::Append(const IngestBatch& batch) {
  std::lock_guard lock(mu_);
  return AppendLocked(batch.gpu, batch.dep, batch.last_seen);
}

Status ConsoleStore::AppendLocked(const std::vector<GpuSample>& gpu,
                                  const std::vector<DeploymentSample>& dep,
                                  const std::vector<std::pair<std::string, TimeMs>>& last_seen) {
  Status s = InTransaction(db_, [&]() -> Status {
    if (!gpu.empty()) {
      Stmt ins(db_,
               "INSERT INTO gpu_samples(target, node, idx, ts, period, utilization, memory_used, "
               "temperature, power) VALUES(?,?,?,?,?,?,?,?,?)");
      SEXTANT_RETURN_IF_ERROR(ins.status());
      Stmt cur(db_,
               "UPDATE gpus SET sampled_at=?4, utilization=?5, memory_used=?6, temperature=?7, "
               "power=?8 WHERE target=?1 AND node=?2 AND idx=?3 AND sampled_at <= ?4");
      SEXTANT_RETURN_IF_ERROR(cur.status());
      for (const auto& g : gpu) {
        ins.Bind(1, g.target).Bind(2, g.node).Bind(3, g.index).Bind(4, g.ts).Bind(5, g.period_s);
        ins.Bind(6, g.utilization).Bind(7, g.memory_used_bytes).Bind(8, g.temperature_c);
        ins.Bind(9, g.power_w);
        SEXTANT_RETURN_IF_ERROR(ins.Run());
        cur.Bind(1, g.target).Bind(2, g.node).Bind(3, g.index).Bind(4, g.ts);
        cur.Bind(5, g.utilization).Bind(6, g.memory_used_bytes).Bind(7, g.temperature_c);
        cur.Bind(8, g.power_w);
        SEXTANT_RETURN_IF_ERROR(cur.Run());
      }
    }
    if (!dep.empty()) {
      Stmt last(db_,
                "SELECT prompt_total, generated_total, sampled_at FROM deployments "
                "WHERE target = ? AND name = ?");
      SEXTANT_RETURN_IF_ERROR(last.status());
      Stmt ins(db_,
               "INSERT INTO deployment_samples(target, deployment, ts, period, gpus_requested, "
               "gpus_used, replicas_ready, replicas_desired, ttft_p50, ttft_p99, tokens_per_s, "
               "queue_depth, prompt_delta, generated_delta, itl_p50, itl_p99, kv_cache_use, "
               "prefix_cache_hit) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
      SEXTANT_RETURN_IF_ERROR(ins.status());
      Stmt cur(db_,
               "INSERT INTO deployments(target, name, model_sha256, engine_build_id, "
               "spec_digest, gpus_requested, labels, sampled_at, replicas_ready, "
               "replicas_desired, ttft_p50, ttft_p99, tokens_per_s, queue_depth, prompt_total, "
               "generated_total, itl_p50, itl_p99, kv_cache_use, prefix_cache_hit) "
               "VALUES(?1,?2,'','','',?3,'{}',?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16) "
               "ON CONFLICT(target, name) DO UPDATE SET gpus_requested=excluded.gpus_requested, "
               "sampled_at=excluded.sampled_at, replicas_ready=excluded.replicas_ready, "
               "replicas_desired=excluded.replicas_desired, ttft_p50=excluded.ttft_p50, "
               "ttft_p99=excluded.ttft_p99, tokens_per_s=excluded.tokens_per_s, "
               "queue_depth=excluded.queue_depth, prompt_total=excluded.prompt_total, "
               "generated_total=excluded.generated_total, itl_p50=excluded.itl_p50, "
               "itl_p99=excluded.itl_p99, kv_cache_use=excluded.kv_cache_use, "
               "prefix_cache_hit=excluded.prefix_cache_hit "
               "WHERE excluded.sampled_at >= deployments.sampled_at");
      SEXTANT_RETURN_IF_ERROR(cur.status());
      for (const auto& d : dep) {
        // No earlier sample: the counters' history is of unknown length, so no increase.
        int64_t prompt_delta = 0;
        int64_t gen_delta = 0;
        last.Bind(1, d.target).Bind(2, d.deployment);
        if (last.Step() == SQLITE_ROW && last.Int(2) > 0) {
          prompt_delta = d.prompt_tokens_total;
          gen_delta = d.generated_tokens_total;
          if (d.prompt_tokens_total >= last.Int(0)) prompt_delta -= last.Int(0);
          if (d.generated_tokens_total >= last.Int(1)) gen_delta -= last.Int(1);
        }
        last.Reset();
        ins.Bind(1, d.target).Bind(2, d.deployment).Bind(3, d.ts).Bind(4, d.period_s);
        ins.Bind(5, d.gpus_requested).Bind(6, d.gpus_used).Bind(7, d.replicas_ready);
        ins.Bind(8, d.replicas_desired).Bind(9, d.ttft_p50_ms).Bind(10, d.ttft_p99_ms);
        ins.Bind(11, d.tokens_per_s).Bind(12, d.queue_depth).Bind(13, prompt_delta);
        ins.Bind(14, gen_delta).Bind(15, d.itl_p50_ms).Bind(16, d.itl_p99_ms);
        ins.Bind(17, d.kv_cache_use).Bind(18, d.prefix_cache_hit);
        SEXTANT_RETURN_IF_ERROR(ins.Run());
        cur.Bind(1, d.target).Bind(2, d.deployment).Bind(3, d.gpus_requested).Bind(4, d.ts);
        cur.Bind(5, d.replicas_ready).Bind(6, d.replicas_desired).Bind(7, d.ttft_p50_ms);
        cur.Bind(8, d.ttft_p99_ms).Bind(9, d.tokens_per_s).Bind(10, d.queue_depth);
        cur.Bind(11, d.prompt_tokens_total).Bind(12, d.generated_tokens_total);
        cur.Bind(13, d.itl_p50_ms).Bind(14, d.itl_p99_ms).Bind(15, d.kv_cache_use);
        cur.Bind(16, d.prefix_cache_hit);
        SEXTANT_RETURN_IF_ERROR(cur.Run());
      }
    }
    if (!last_seen.empty()) {
      Stmt seen(db_, "UPDATE target_status SET last_seen = max(last_seen, ?2) WHERE target = ?1");
      SEXTANT_RETURN_IF_ERROR(seen.status());
      for (const auto& [target, t] : last_seen) {
        SEXTANT_RETURN_IF_ERROR(seen.Bind(1, target).Bind(2, t).Run());
      }
    }
    return Status();
  });
  SEXTANT_RETURN_IF_ERROR(s);
  const TimeMs now = NowMs();
  const TimeMs every =
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.retention.interval).count();
  if (now - last_retention_ >= every) {
    last_retention_ = now;
    SEXTANT_RETURN_IF_ERROR(ApplyRetentionLocked(now));
  }
  return Status();
}

Result<int64_t> ConsoleStore::CountRows(const std::string& table) {
  static const char* const kAllowed[] = {"gpu_samples",
                                         "deployment_samples",
                                         "gpu_rollup_minute",
                                         "gpu_rollup_hour",
                                         "deployment_rollup_minute",
                                         "deployment_rollup_hour",
                                         "facts",
                                         "gpus",
                                         "deployments"};
  if (std::find_if(std::begin(kAllowed), std::end(kAllowed),
                   [&](const char* t) { return table == t; }) == std::end(kAllowed)) {
    return Status::InvalidArgument("unknown table " + table);
  }
  std::lock_guard lock(mu_);
  Stmt q(db_, ("SELECT count(*) FROM " + table).c_str());
  SEXTANT_RETURN_IF_ERROR(q.status());
  if (q.Step() != SQLITE_ROW) return SqlError(db_, "count " + table);
  return q.Int(0);
}

// Rollups are additive (sums, counts, maxima), so rolling raw rows up in several passes, late
// rows included, gives the same totals as one pass. Marks record the last raw row rolled up.
Status ConsoleStore::RollUpLocked() {
  return InTransaction(db_, [&]() -> Status {
    struct Level {
      const char* table;
      TimeMs width;
    };
    for (Level lv : {Level{"minute", kMinuteMs}, Level{"hour", kHourMs}}) {
      const std::string w = std::to_string(lv.width);
      std::string gpu_sql =
          std::string("INSERT INTO gpu_rollup_") + lv.table +
          "(target, node, idx, bucket, n, seconds, util_s, util_max, mem_max, power_s, "
          "temp_max) SELECT target, node, idx, ((ts - 1) / " +
          w + ") * " + w +
          ", count(*), sum(period), sum(utilization * period), max(utilization), "
          "max(memory_used), sum(power * period), max(temperature) FROM gpu_samples WHERE seq > "
          "(SELECT last_seq FROM rollup_marks WHERE series = 'gpu') GROUP BY 1, 2, 3, 4 "
          "ON CONFLICT(target, node, idx, bucket) DO UPDATE SET n = n + excluded.n, "
          "seconds = seconds + excluded.seconds, util_s = util_s + excluded.util_s, "
          "util_max = max(util_max, excluded.util_max), mem_max = max(mem_max, excluded.mem_max), "
          "power_s = power_s + excluded.power_s, temp_max = max(temp_max, excluded.temp_max)";
      SEXTANT_RETURN_IF_ERROR(Exec(db_, gpu_sql.c_str()));
      std::string dep_sql =
          std::string("INSERT INTO deployment_rollup_") + lv.table +
          "(target, deployment, bucket, n, seconds, requested_s, used_s, ttft_p99_max, tps_s, "
          "queue_max, prompt_tokens, generated_tokens) SELECT target, deployment, ((ts - 1) / " +
          w + ") * " + w +
          ", count(*), sum(period), sum(gpus_requested * period), sum(gpus_used * period), "
          "max(ttft_p99), sum(tokens_per_s * period), max(queue_depth), sum(prompt_delta), "
          "sum(generated_delta) FROM deployment_samples WHERE seq > (SELECT last_seq FROM "
          "rollup_marks WHERE series = 'deployment') GROUP BY 1, 2, 3 "
          "ON CONFLICT(target, deployment, bucket) DO UPDATE SET n = n + excluded.n, "
          "seconds = seconds + excluded.seconds, requested_s = requested_s + "
          "excluded.requested_s, used_s = used_s + excluded.used_s, ttft_p99_max = "
          "max(ttft_p99_max, excluded.ttft_p99_max), tps_s = tps_s + excluded.tps_s, "
          "queue_max = max(queue_max, excluded.queue_max), prompt_tokens = prompt_tokens + "
          "excluded.prompt_tokens, generated_tokens = generated_tokens + "
          "excluded.generated_tokens";
      SEXTANT_RETURN_IF_ERROR(Exec(db_, dep_sql.c_str()));
    }
    SEXTANT_RETURN_IF_ERROR(
        Exec(db_,
             "UPDATE rollup_marks SET last_seq = (SELECT coalesce(max(seq), last_seq) FROM "
             "gpu_samples) WHERE series = 'gpu';"
             "UPDATE rollup_marks SET last_seq = (SELECT coalesce(max(seq), last_seq) FROM "
             "deployment_samples) WHERE series = 'deployment'"));
    return Status();
  });
}

Status ConsoleStore::ApplyRetentionLocked(TimeMs now) {
  SEXTANT_RETURN_IF_ERROR(RollUpLocked());
  auto ms = [](std::chrono::seconds s) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(s).count();
  };
  const TimeMs raw_cut = now - ms(options_.retention.raw_window);
  const TimeMs min_cut = now - ms(options_.retention.minute_window);
  const TimeMs hour_cut = now - ms(options_.retention.hour_window);
  return InTransaction(db_, [&]() -> Status {
    struct Cut {
      const char* sql;
      TimeMs t;
    };
    for (Cut c :
         {Cut{"DELETE FROM gpu_samples WHERE ts < ? AND seq <= (SELECT last_seq FROM "
              "rollup_marks WHERE series = 'gpu')",
              raw_cut},
          Cut{"DELETE FROM deployment_samples WHERE ts < ? AND seq <= (SELECT last_seq "
              "FROM rollup_marks WHERE series = 'deployment')",
              raw_cut},
          Cut{"DELETE FROM gpu_rollup_minute WHERE bucket + 60000 <= ?", min_cut},
          Cut{"DELETE FROM deployment_rollup_minute WHERE bucket + 60000 <= ?", min_cut},
          Cut{"DELETE FROM gpu_rollup_hour WHERE bucket + 3600000 <= ?", hour_cut},
          Cut{"DELETE FROM deployment_rollup_hour WHERE bucket + 3600000 <= ?", hour_cut}}) {
      Stmt d(db_, c.sql);
      SEXTANT_RETURN_IF_ERROR(d.status());
      SEXTANT_RETURN_IF_ERROR(d.Bind(1, c.t).Run());
    }
    return Status();
  });
}

Status ConsoleStore::ApplyRetention(TimeMs now) {
  std::lock_guard lock(mu_);
  last_retention_ = NowMs();
  return ApplyRetentionLocked(now);
}

Result<std::vector<HourUsage>> ConsoleStore::HourlyUsage(TimeMs since) {
  std::lock_guard lock(mu_);
  SEXTANT_RETURN_IF_ERROR(RollUpLocked());
  std::vector<HourUsage> out;
  {
    Stmt q(db_,
           "SELECT target, bucket, sum(seconds) FROM gpu_rollup_hour WHERE bucket >= ? "
           "GROUP BY target, bucket ORDER BY target, bucket");
    SEXTANT_RETURN_IF_ERROR(q.status());
    q.Bind(1, (since / kHourMs) * kHourMs);
    while (q.Step() == SQLITE_ROW) {
      HourUsage u;
      u.target = q.Text(0);
      u.hour = q.Int(1);
      u.gpu_seconds_provisioned = q.Real(2);
      out.push_back(std::move(u));
    }
  }
  Stmt q(db_,
         "SELECT target, deployment, bucket, requested_s, used_s, generated_tokens, "
         "prompt_tokens FROM deployment_rollup_hour WHERE bucket >= ? "
         "ORDER BY target, deployment, bucket");
  SEXTANT_RETURN_IF_ERROR(q.status());
  q.Bind(1, (since / kHourMs) * kHourMs);
  while (q.Step() == SQLITE_ROW) {
    HourUsage u;
    u.target = q.Text(0);
    u.deployment = q.Text(1);
    u.hour = q.Int(2);
    u.gpu_seconds_requested = q.Real(3);
    u.gpu_seconds_used = q.Real(4);
    u.tokens_generated = q.Int(5);
    u.tokens_prompt = q.Int(6);
    out.push_back(std::move(u));
  }
  return out;
}

// ---- budgets ----

Status ConsoleStore::SetBudget(const Budget& b) {
  if (b.label.find('=') == std::string::npos) {
    return Status::InvalidArgument("budget label must be key=value, got '" + b.label + "'");
  }
  if (!(b.amount_usd > 0)) return Status::InvalidArgument("budget amount must be positive");
  if (b.window_days <= 0) return Status::InvalidArgument("budget window must be positive");
  if (!(b.warn_ratio > 0 && b.warn_ratio <= 1)) {
    return Status::InvalidArgument("budget warning ratio must be in (0, 1]");
  }
  std::lock_guard lock(mu_);
  Stmt q(db_,
         "INSERT OR REPLACE INTO budgets(label, amount_usd, window_days, warn_ratio) "
         "VALUES(?,?,?,?)");
  SEXTANT_RETURN_IF_ERROR(q.status());
  return q.Bind(1, b.label)
      .Bind(2, b.amount_usd)
      .Bind(3, b.window_days)
      .Bind(4, b.warn_ratio)
      .Run();
}

Status ConsoleStore::RemoveBudget(const std::string& label) {
  std::lock_guard lock(mu_);
  Stmt q(db_, "DELETE FROM budgets WHERE label = ?");
  SEXTANT_RETURN_IF_ERROR(q.status());
  SEXTANT_RETURN_IF_ERROR(q.Bind(1, label).Run());
  if (q.Changes() == 0) return Status::NotFound("no budget for " + label);
  return Status();
}

Result<std::vector<Budget>> ConsoleStore::ListBudgets() {
  std::lock_guard lock(mu_);
  Stmt q(db_, "SELECT label, amount_usd, window_days, warn_ratio FROM budgets ORDER BY label");
  SEXTANT_RETURN_IF_ERROR(q.status());
  std::vector<Budget> out;
  while (q.Step() == SQLITE_ROW) {
    out.push_back({q.Text(0), q.Real(1), static_cast<int>(q.Int(2)), q.Real(3)});
  }
  return out;
}

}  // namespace sextant::console
