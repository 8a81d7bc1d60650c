// What agents report over time: each target's GPU and deployment inventory with the latest
// sample, the history of samples (raw for a window, default 1 h, rolled up per minute, default
// 30 days, and per hour, default 400 days), and the hourly usage cost is computed from.
// Retention applies itself: the ingest path runs it at most once per `retention.interval`.
// Part of ConsoleDatabase (console_database.h): its threading model and error mapping apply.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "app/console/store/records.h"
#include "engine/base/status.h"

namespace sextant::console {

class ConsoleDatabase;

class TelemetryRepository {
 public:
  TelemetryRepository(ConsoleDatabase* db, RetentionOptions retention)
      : db_(db), retention_(retention) {}

  // Replaces the target's GPU inventory (keeps the latest samples of GPUs that remain).
  Status ReplaceGpus(const std::string& target, const std::vector<Gpu>& gpus);
  Result<std::vector<Gpu>> ListGpus();  // by target, node, index
  // Replaces the target's deployments (keeps the latest samples of those that remain).
  Status ReplaceDeployments(const std::string& target, const std::vector<Deployment>& deps);
  Result<std::vector<Deployment>> ListDeployments();  // by target, name

  // Appends samples in one transaction and updates the latest values. May run retention.
  Status AppendSamples(const std::vector<GpuSample>& gpu, const std::vector<DeploymentSample>& dep);
  // The same for a batch of many targets' snapshots, with their last-seen times, in one
  // transaction (samples of one series in the order given). Raising last_seen of a target
  // without a status row does nothing.
  Status Append(const IngestBatch& batch);
  // Counts of rows of one telemetry table, for tests and diagnostics (INVALID_ARGUMENT for a
  // table that is not one of them).
  Result<int64_t> CountRows(const std::string& table);

  // Rolls raw samples up into the minute and hour tables, then deletes what is older than the
  // windows (raw rows only once rolled up). `now` is the reference time.
  Status ApplyRetention(TimeMs now);
  // Hourly usage per target and per deployment with hour >= since (rolls up first).
  Result<std::vector<HourUsage>> HourlyUsage(TimeMs since);

  // Removes the target's inventory and history (part of removing a target).
  Status RemoveTarget(const std::string& target);

 private:
  ConsoleDatabase* db_;
  RetentionOptions retention_;
  TimeMs last_retention_ = 0;  // GUARDED_BY(the database's lock)
};

}  // namespace sextant::console
