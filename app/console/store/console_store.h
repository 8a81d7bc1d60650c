// ConsoleStore: the console's own state in one SQLite file, <state>/console.db (WAL).
//
// Holds cloud accounts, targets (agent endpoints with their CA, client certificate and key
// paths and labels), the connection status of each target, the facts and inventory agents
// report, and the history of samples: raw samples for a window (default 1 h), rolled up per
// minute (default 30 days) and per hour (default 400 days). Retention applies itself: the
// ingest path runs it at most once per `retention_interval`.
//
// The schema is versioned (table schema_version) and migrated forward on Open; re-opening a
// current file changes nothing. Other app/ stores may share the file through handle().
//
// Thread-safety: a ConsoleStore is safe for concurrent use from several threads; every method
// takes an internal lock. handle() hands out the raw connection: callers that use it from
// several threads must serialize themselves (the connection is opened in serialized mode).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/base/status.h"

struct sqlite3;

namespace sextant::console {

// Milliseconds since the Unix epoch; every time in the store is one of these.
using TimeMs = int64_t;
TimeMs NowMs();

struct Account {
  std::string name;        // the console's name for it, unique
  std::string provider;    // aws, gcp, azure, lambda, coreweave, on-prem
  std::string account_id;  // the provider's account / project / subscription id
  std::vector<std::string> regions;
  std::string role_ref;     // the vendor role the customer created (ARN, service account ...)
  std::string external_id;  // the external id recorded with that role
  TimeMs created_at = 0;
};

struct Target {
  std::string name;         // unique
  std::string endpoint;     // host:port of the agent's gRPC listener
  std::string account;      // an Account name, or empty
  std::string ca_path;      // CA that signed the agent's server certificate
  std::string cert_path;    // the console's client certificate
  std::string key_path;     // and its private key
  std::string server_name;  // TLS name to verify when it differs from the endpoint's host
  std::map<std::string, std::string> labels;  // team=..., env=...
  TimeMs created_at = 0;
};

enum class ConnState { kUnknown = 0, kConnected = 1, kStale = 2, kError = 3 };
std::string_view ConnStateName(ConnState s);

struct TargetStatus {
  std::string target;
  ConnState state = ConnState::kUnknown;
  TimeMs since = 0;      // when the state was entered
  TimeMs last_seen = 0;  // last successful exchange with the agent, 0 if never
  std::string error;     // the cause in words when state is kError (or why it went stale)
  std::string identity;  // the identity and role the agent reported for the console
  std::string role;
};

// One fact an agent reported (cloud context, TLS settings, audit chain ...). Keys are dotted:
// "cloud.region", "tls.min_version", "deployment.<name>.model_sha256".
struct Fact {
  std::string target;
  std::string key;
  std::string value;
  TimeMs observed_at = 0;
};

struct Gpu {
  std::string target;
  std::string node;
  int index = 0;
  std::string kind;   // "cuda", "rocm", "cpu"
  std::string model;  // e.g. "H100"
  int64_t memory_total_bytes = 0;
  // Latest sample (0 when none yet).
  TimeMs sampled_at = 0;
  double utilization = 0;  // 0..1
  int64_t memory_used_bytes = 0;
  double temperature_c = 0;
  double power_w = 0;
};

struct Deployment {
  std::string target;
  std::string name;
  std::string model_sha256;
  std::string engine_build_id;
  std::string spec_digest;
  double gpus_requested = 0;
  std::map<std::string, std::string> labels;
  // Latest sample (zeros when none yet).
  TimeMs sampled_at = 0;
  int replicas_ready = 0;
  int replicas_desired = 0;
  double ttft_p50_ms = 0;
  double ttft_p99_ms = 0;
  double tokens_per_s = 0;
  int64_t queue_depth = 0;
  int64_t prompt_tokens_total = 0;
  int64_t generated_tokens_total = 0;
  // Last: positional initializers of the fields above stay valid.
  double itl_p50_ms = 0;  // inter-token latency (time between output tokens)
  double itl_p99_ms = 0;
  double kv_cache_use = 0;  // 0..1
  // Share of prompt tokens reused from the prefix cache (0..1), as the latest sample has it;
  // -1: never measured.
  double prefix_cache_hit = -1;
};

// A GPU sample covers `period_s` seconds ending at `ts`.
struct GpuSample {
  std::string target;
  std::string node;
  int index = 0;
  TimeMs ts = 0;
  double period_s = 1;
  double utilization = 0;
  int64_t memory_used_bytes = 0;
  double temperature_c = 0;
  double power_w = 0;
};

// A deployment sample covers `period_s` seconds ending at `ts`. Token counters are the agent's
// cumulative counters; the store keeps the increase since the previous sample (a counter that
// goes down was reset, and its new value is the increase; the first sample adds nothing).
struct DeploymentSample {
  std::string target;
  std::string deployment;
  TimeMs ts = 0;
  double period_s = 1;
  double gpus_requested = 0;
  double gpus_used = 0;  // GPUs' worth of actual use (sum of utilization of its GPUs)
  int replicas_ready = 0;
  int replicas_desired = 0;
  double ttft_p50_ms = 0;
  double ttft_p99_ms = 0;
  double tokens_per_s = 0;
  int64_t queue_depth = 0;
  int64_t prompt_tokens_total = 0;
  int64_t generated_tokens_total = 0;
  // Last: positional initializers of the fields above stay valid.
  double itl_p50_ms = 0;  // inter-token latency over the period (the last figures when idle)
  double itl_p99_ms = 0;
  double kv_cache_use = 0;  // 0..1
  // Share of the prompt tokens looked up in the prefix cache over the period that were reused
  // (the last figure when none was looked up); -1: never measured.
  double prefix_cache_hit = -1;
};

// Usage of one target (or one deployment on it) in one hour, from the hourly rollup.
struct HourUsage {
  std::string target;
  std::string deployment;              // empty for the target's provisioned GPUs
  TimeMs hour = 0;                     // start of the hour
  double gpu_seconds_provisioned = 0;  // target rows: sum over GPUs of covered seconds
  double gpu_seconds_requested = 0;    // deployment rows
  double gpu_seconds_used = 0;         // deployment rows
  int64_t tokens_generated = 0;        // deployment rows
  int64_t tokens_prompt = 0;           // deployment rows
};

// What the ingest path writes in one transaction: samples of any number of targets, and when
// each target was last heard from.
struct IngestBatch {
  std::vector<GpuSample> gpu;
  std::vector<DeploymentSample> dep;
  std::vector<std::pair<std::string, TimeMs>> last_seen;  // target, time (only ever raised)
};

struct Budget {
  std::string label;  // "team=ml"
  double amount_usd = 0;
  int window_days = 30;     // the budget covers the last window_days days
  double warn_ratio = 0.8;  // warning at this share of the amount
};

struct RetentionOptions {
  std::chrono::seconds raw_window{3600};
  std::chrono::seconds minute_window{30 * 24 * 3600};
  std::chrono::seconds hour_window{400 * 24 * 3600};
  // Ingest runs retention (rollup + delete) at most this often.
  std::chrono::seconds interval{30};
};

struct StoreOptions {
  RetentionOptions retention;
};

class ConsoleStore {
 public:
  // The schema version this build writes; Open migrates older files up to it.
  static constexpr int kSchemaVersion = 3;

  // Opens (creating when missing) <state_dir>/console.db; state_dir is created mode 0700.
  static Result<std::unique_ptr<ConsoleStore>> Open(const std::filesystem::path& state_dir,
                                                    StoreOptions options = {});
  // The default state dir: --state when given, else the XDG data dir.
  static Result<std::filesystem::path> ResolveStateDir(const std::string& state_flag);

  ~ConsoleStore();
  ConsoleStore(const ConsoleStore&) = delete;
  ConsoleStore& operator=(const ConsoleStore&) = delete;

  sqlite3* handle() { return db_; }
  const std::filesystem::path& path() const { return path_; }
  Result<int> SchemaVersion();

  // Accounts. Add fails with ALREADY_EXISTS on a duplicate name; Remove with NOT_FOUND.
  Status AddAccount(const Account& account);
  Status RemoveAccount(const std::string& name);
  Result<std::vector<Account>> ListAccounts();

  // Targets. Removing a target removes its status, facts, inventory and history.
  Status AddTarget(const Target& target);
  Status RemoveTarget(const std::string& name);
  Result<std::vector<Target>> ListTargets();
  Result<Target> GetTarget(const std::string& name);

  Status SetTargetStatus(const TargetStatus& status);
  Result<std::vector<TargetStatus>> ListTargetStatus();

  // Replaces every fact of `target` whose key starts with `prefix` by `facts` (all stamped
  // observed_at). An empty prefix replaces all of the target's facts.
  Status ReplaceFacts(const std::string& target, const std::string& prefix,
                      const std::vector<std::pair<std::string, std::string>>& facts,
                      TimeMs observed_at);
  Result<std::vector<Fact>> ListFacts(const std::string& target = "");

  // Replaces the target's GPU inventory (keeps the latest samples of GPUs that remain).
  Status ReplaceGpus(const std::string& target, const std::vector<Gpu>& gpus);
  Result<std::vector<Gpu>> ListGpus();
  // Replaces the target's deployments (keeps the latest samples of those that remain).
  Status ReplaceDeployments(const std::string& target, const std::vector<Deployment>& deps);
  Result<std::vector<Deployment>> ListDeployments();

  // Appends samples in one transaction and updates the latest values. May run retention.
  Status AppendSamples(const std::vector<GpuSample>& gpu, const std::vector<DeploymentSample>& dep);
  // The same for a batch of many targets' snapshots, with their last-seen times, in one
  // transaction (samples of one series in the order given). Raising last_seen of a target
  // without a status row does nothing.
  Status Append(const IngestBatch& batch);
  // Counts of raw rows, for tests and diagnostics.
  Result<int64_t> CountRows(const std::string& table);

  // Rolls raw samples up into the minute and hour tables, then deletes what is older than the
  // windows (raw rows only once rolled up). `now` is the reference time.
  Status ApplyRetention(TimeMs now);
  // Hourly usage per target and per deployment with hour >= since (rolls up first).
  Result<std::vector<HourUsage>> HourlyUsage(TimeMs since);

  Status SetBudget(const Budget& budget);
  Status RemoveBudget(const std::string& label);
  Result<std::vector<Budget>> ListBudgets();

 private:
  ConsoleStore(sqlite3* db, std::filesystem::path path, StoreOptions options);
  Status Migrate();
  Status AppendLocked(const std::vector<GpuSample>& gpu, const std::vector<DeploymentSample>& dep,
                      const std::vector<std::pair<std::string, TimeMs>>& last_seen);
  Status RollUpLocked();
  Status ApplyRetentionLocked(TimeMs now);

  std::mutex mu_;
  sqlite3* db_;
  std::filesystem::path path_;
  StoreOptions options_;
  TimeMs last_retention_ = 0;  // GUARDED_BY(mu_)
};

}  // namespace sextant::console
