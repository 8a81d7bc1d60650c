#include "app/console/store/telemetry_repository.h"

#include <algorithm>
#include <iterator>

#include "app/common/sqlite/sqlite_db.h"
#include "app/console/store/console_database.h"
#include "app/console/store/json_columns.h"

namespace sextant::console {
namespace {

constexpr TimeMs kMinuteMs = 60'000;
constexpr TimeMs kHourMs = 3'600'000;

int64_t Ms(std::chrono::seconds s) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(s).count();
}

}  // namespace

// ---- inventory ----

Status TelemetryRepository::ReplaceGpus(const std::string& target, const std::vector<Gpu>& gpus) {
  SEXTANT_ASSIGN_OR_RETURN(Transaction tx, db_->Begin());
  {
    sqlite::SqliteDb& sql = tx.sql();
    // Drop GPUs that are gone; keep the sampled columns of those that remain.
    SEXTANT_RETURN_IF_ERROR(
        sql.Exec("CREATE TEMP TABLE IF NOT EXISTS keep_gpus(node TEXT, idx INTEGER)"));
    SEXTANT_RETURN_IF_ERROR(sql.Exec("DELETE FROM keep_gpus"));
    SEXTANT_ASSIGN_OR_RETURN(auto k, sql.Prepare("INSERT INTO keep_gpus VALUES(?,?)"));
    SEXTANT_ASSIGN_OR_RETURN(
        auto up,
        sql.Prepare(
            "INSERT INTO gpus(target, node, idx, kind, model, memory_total) "
            "VALUES(?,?,?,?,?,?) ON CONFLICT(target, node, idx) DO UPDATE SET "
            "kind=excluded.kind, model=excluded.model, memory_total=excluded.memory_total"));
    for (const auto& g : gpus) {
      SEXTANT_RETURN_IF_ERROR(k.Bind(1, g.node).Bind(2, g.index).Run());
      up.Bind(1, target).Bind(2, g.node).Bind(3, g.index).Bind(4, g.kind).Bind(5, g.model);
      SEXTANT_RETURN_IF_ERROR(up.Bind(6, g.memory_total_bytes).Run());
    }
    SEXTANT_ASSIGN_OR_RETURN(
        auto d, sql.Prepare("DELETE FROM gpus WHERE target = ? AND NOT EXISTS (SELECT 1 FROM "
                            "keep_gpus k WHERE k.node = gpus.node AND k.idx = gpus.idx)"));
    SEXTANT_RETURN_IF_ERROR(d.Bind(1, target).Run());
  }
  return tx.Commit();
}

Result<std::vector<Gpu>> TelemetryRepository::ListGpus() {
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(
      auto q, s.sql().Prepare("SELECT target, node, idx, model, memory_total, sampled_at, "
                              "utilization, memory_used, temperature, power, kind FROM gpus "
                              "ORDER BY target, node, idx"));
  std::vector<Gpu> out;
  while (true) {
    SEXTANT_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
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

Status TelemetryRepository::ReplaceDeployments(const std::string& target,
                                               const std::vector<Deployment>& deps) {
  SEXTANT_ASSIGN_OR_RETURN(Transaction tx, db_->Begin());
  {
    sqlite::SqliteDb& sql = tx.sql();
    SEXTANT_RETURN_IF_ERROR(sql.Exec("CREATE TEMP TABLE IF NOT EXISTS keep_deps(name TEXT)"));
    SEXTANT_RETURN_IF_ERROR(sql.Exec("DELETE FROM keep_deps"));
    SEXTANT_ASSIGN_OR_RETURN(auto k, sql.Prepare("INSERT INTO keep_deps VALUES(?)"));
    SEXTANT_ASSIGN_OR_RETURN(
        auto up,
        sql.Prepare("INSERT INTO deployments(target, name, model_sha256, engine_build_id, "
                    "spec_digest, gpus_requested, labels, replicas_ready, replicas_desired) "
                    "VALUES(?,?,?,?,?,?,?,?,?) ON CONFLICT(target, name) DO UPDATE SET "
                    "model_sha256=excluded.model_sha256, "
                    "engine_build_id=excluded.engine_build_id, spec_digest=excluded.spec_digest, "
                    "gpus_requested=excluded.gpus_requested, labels=excluded.labels, "
                    "replicas_ready=excluded.replicas_ready, "
                    "replicas_desired=excluded.replicas_desired"));
    for (const auto& d : deps) {
      SEXTANT_RETURN_IF_ERROR(k.Bind(1, d.name).Run());
      up.Bind(1, target).Bind(2, d.name).Bind(3, d.model_sha256).Bind(4, d.engine_build_id);
      up.Bind(5, d.spec_digest).Bind(6, d.gpus_requested).Bind(7, LabelsToJson(d.labels));
      up.Bind(8, d.replicas_ready).Bind(9, d.replicas_desired);
      SEXTANT_RETURN_IF_ERROR(up.Run());
    }
    SEXTANT_ASSIGN_OR_RETURN(
        auto d, sql.Prepare("DELETE FROM deployments WHERE target = ? AND name NOT IN (SELECT "
                            "name FROM keep_deps)"));
    SEXTANT_RETURN_IF_ERROR(d.Bind(1, target).Run());
  }
  return tx.Commit();
}

Result<std::vector<Deployment>> TelemetryRepository::ListDeployments() {
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(
      auto q, s.sql().Prepare("SELECT target, name, model_sha256, engine_build_id, spec_digest, "
                              "gpus_requested, labels, sampled_at, replicas_ready, "
                              "replicas_desired, ttft_p50, ttft_p99, tokens_per_s, queue_depth, "
                              "prompt_total, generated_total, itl_p50, itl_p99, kv_cache_use "
                              "FROM deployments ORDER BY target, name"));
  std::vector<Deployment> out;
  while (true) {
    SEXTANT_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
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
    out.push_back(std::move(d));
  }
  return out;
}

// ---- samples ----

Status TelemetryRepository::AppendSamples(const std::vector<GpuSample>& gpu,
                                          const std::vector<DeploymentSample>& dep) {
  IngestBatch batch;
  batch.gpu = gpu;
  batch.dep = dep;
  return Append(batch);
}

Status TelemetryRepository::Append(const IngestBatch& batch) {
  // The lock is held from the write to the retention decision (last_retention_ is under it).
  DbSession session = db_->Lock();
  {
    SEXTANT_ASSIGN_OR_RETURN(Transaction tx, db_->Begin());
    sqlite::SqliteDb& sql = tx.sql();
    if (!batch.gpu.empty()) {
      SEXTANT_ASSIGN_OR_RETURN(auto ins,
                               sql.Prepare("INSERT INTO gpu_samples(target, node, idx, ts, period, "
                                           "utilization, memory_used, temperature, power) "
                                           "VALUES(?,?,?,?,?,?,?,?,?)"));
      SEXTANT_ASSIGN_OR_RETURN(
          auto cur, sql.Prepare("UPDATE gpus SET sampled_at=?4, utilization=?5, memory_used=?6, "
                                "temperature=?7, power=?8 WHERE target=?1 AND node=?2 AND idx=?3 "
                                "AND sampled_at <= ?4"));
      for (const auto& g : batch.gpu) {
        ins.Bind(1, g.target).Bind(2, g.node).Bind(3, g.index).Bind(4, g.ts).Bind(5, g.period_s);
        ins.Bind(6, g.utilization).Bind(7, g.memory_used_bytes).Bind(8, g.temperature_c);
        SEXTANT_RETURN_IF_ERROR(ins.Bind(9, g.power_w).Run());
        cur.Bind(1, g.target).Bind(2, g.node).Bind(3, g.index).Bind(4, g.ts);
        cur.Bind(5, g.utilization).Bind(6, g.memory_used_bytes).Bind(7, g.temperature_c);
        SEXTANT_RETURN_IF_ERROR(cur.Bind(8, g.power_w).Run());
      }
    }
    if (!batch.dep.empty()) {
      SEXTANT_ASSIGN_OR_RETURN(auto last,
                               sql.Prepare("SELECT prompt_total, generated_total, sampled_at FROM "
                                           "deployments WHERE target = ? AND name = ?"));
      SEXTANT_ASSIGN_OR_RETURN(
          auto ins,
          sql.Prepare("INSERT INTO deployment_samples(target, deployment, ts, period, "
                      "gpus_requested, gpus_used, replicas_ready, replicas_desired, ttft_p50, "
                      "ttft_p99, tokens_per_s, queue_depth, prompt_delta, generated_delta, "
                      "itl_p50, itl_p99, kv_cache_use) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
      SEXTANT_ASSIGN_OR_RETURN(
          auto cur,
          sql.Prepare(
              "INSERT INTO deployments(target, name, model_sha256, engine_build_id, "
              "spec_digest, gpus_requested, labels, sampled_at, replicas_ready, "
              "replicas_desired, ttft_p50, ttft_p99, tokens_per_s, queue_depth, prompt_total, "
              "generated_total, itl_p50, itl_p99, kv_cache_use) "
              "VALUES(?1,?2,'','','',?3,'{}',?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15) "
              "ON CONFLICT(target, name) DO UPDATE SET gpus_requested=excluded.gpus_requested, "
              "sampled_at=excluded.sampled_at, replicas_ready=excluded.replicas_ready, "
              "replicas_desired=excluded.replicas_desired, ttft_p50=excluded.ttft_p50, "
              "ttft_p99=excluded.ttft_p99, tokens_per_s=excluded.tokens_per_s, "
              "queue_depth=excluded.queue_depth, prompt_total=excluded.prompt_total, "
              "generated_total=excluded.generated_total, itl_p50=excluded.itl_p50, "
              "itl_p99=excluded.itl_p99, kv_cache_use=excluded.kv_cache_use "
              "WHERE excluded.sampled_at >= deployments.sampled_at"));
      for (const auto& d : batch.dep) {
        // No earlier sample: the counters' history is of unknown length, so no increase.
        int64_t prompt_delta = 0;
        int64_t gen_delta = 0;
        last.Bind(1, d.target).Bind(2, d.deployment);
        SEXTANT_ASSIGN_OR_RETURN(bool row, last.Step());
        if (row && last.Int(2) > 0) {
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
        SEXTANT_RETURN_IF_ERROR(ins.Bind(17, d.kv_cache_use).Run());
        cur.Bind(1, d.target).Bind(2, d.deployment).Bind(3, d.gpus_requested).Bind(4, d.ts);
        cur.Bind(5, d.replicas_ready).Bind(6, d.replicas_desired).Bind(7, d.ttft_p50_ms);
        cur.Bind(8, d.ttft_p99_ms).Bind(9, d.tokens_per_s).Bind(10, d.queue_depth);
        cur.Bind(11, d.prompt_tokens_total).Bind(12, d.generated_tokens_total);
        cur.Bind(13, d.itl_p50_ms).Bind(14, d.itl_p99_ms).Bind(15, d.kv_cache_use);
        SEXTANT_RETURN_IF_ERROR(cur.Run());
      }
    }
    if (!batch.last_seen.empty()) {
      SEXTANT_ASSIGN_OR_RETURN(
          auto seen,
          sql.Prepare("UPDATE target_status SET last_seen = max(last_seen, ?2) WHERE target = ?1"));
      for (const auto& [target, t] : batch.last_seen) {
        SEXTANT_RETURN_IF_ERROR(seen.Bind(1, target).Bind(2, t).Run());
      }
    }
    SEXTANT_RETURN_IF_ERROR(tx.Commit());
  }
  const TimeMs now = NowMs();
  if (now - last_retention_ >= Ms(retention_.interval)) {
    last_retention_ = now;
    SEXTANT_RETURN_IF_ERROR(ApplyRetention(now));
  }
  return Status();
}

Result<int64_t> TelemetryRepository::CountRows(const std::string& table) {
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
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(auto q, s.sql().Prepare("SELECT count(*) FROM " + table));
  SEXTANT_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return Status::Internal("count " + table + ": no row");
  return q.Int(0);
}

// ---- rollups and retention ----

namespace {

// Rollups are additive (sums, counts, maxima), so rolling raw rows up in several passes, late
// rows included, gives the same totals as one pass. Marks record the last raw row rolled up.
Status RollUp(sqlite::SqliteDb& sql) {
  struct Level {
    const char* table;
    TimeMs width;
  };
  for (Level lv : {Level{"minute", kMinuteMs}, Level{"hour", kHourMs}}) {
    const std::string w = std::to_string(lv.width);
    const std::string gpu_sql =
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
    SEXTANT_RETURN_IF_ERROR(sql.Exec(gpu_sql));
    const std::string dep_sql =
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
    SEXTANT_RETURN_IF_ERROR(sql.Exec(dep_sql));
  }
  return sql.Exec(
      "UPDATE rollup_marks SET last_seq = (SELECT coalesce(max(seq), last_seq) FROM "
      "gpu_samples) WHERE series = 'gpu';"
      "UPDATE rollup_marks SET last_seq = (SELECT coalesce(max(seq), last_seq) FROM "
      "deployment_samples) WHERE series = 'deployment'");
}

}  // namespace

Status TelemetryRepository::ApplyRetention(TimeMs now) {
  DbSession session = db_->Lock();
  last_retention_ = NowMs();
  {
    SEXTANT_ASSIGN_OR_RETURN(Transaction tx, db_->Begin());
    SEXTANT_RETURN_IF_ERROR(RollUp(tx.sql()));
    SEXTANT_RETURN_IF_ERROR(tx.Commit());
  }
  const TimeMs raw_cut = now - Ms(retention_.raw_window);
  const TimeMs min_cut = now - Ms(retention_.minute_window);
  const TimeMs hour_cut = now - Ms(retention_.hour_window);
  SEXTANT_ASSIGN_OR_RETURN(Transaction tx, db_->Begin());
  struct Cut {
    const char* sql;
    TimeMs t;
  };
  for (Cut c : {Cut{"DELETE FROM gpu_samples WHERE ts < ? AND seq <= (SELECT last_seq FROM "
                    "rollup_marks WHERE series = 'gpu')",
                    raw_cut},
                Cut{"DELETE FROM deployment_samples WHERE ts < ? AND seq <= (SELECT last_seq "
                    "FROM rollup_marks WHERE series = 'deployment')",
                    raw_cut},
                Cut{"DELETE FROM gpu_rollup_minute WHERE bucket + 60000 <= ?", min_cut},
                Cut{"DELETE FROM deployment_rollup_minute WHERE bucket + 60000 <= ?", min_cut},
                Cut{"DELETE FROM gpu_rollup_hour WHERE bucket + 3600000 <= ?", hour_cut},
                Cut{"DELETE FROM deployment_rollup_hour WHERE bucket + 3600000 <= ?", hour_cut}}) {
    SEXTANT_ASSIGN_OR_RETURN(auto d, tx.sql().Prepare(c.sql));
    SEXTANT_RETURN_IF_ERROR(d.Bind(1, c.t).Run());
  }
  return tx.Commit();
}

Result<std::vector<HourUsage>> TelemetryRepository::HourlyUsage(TimeMs since) {
  DbSession session = db_->Lock();
  {
    SEXTANT_ASSIGN_OR_RETURN(Transaction tx, db_->Begin());
    SEXTANT_RETURN_IF_ERROR(RollUp(tx.sql()));
    SEXTANT_RETURN_IF_ERROR(tx.Commit());
  }
  std::vector<HourUsage> out;
  {
    SEXTANT_ASSIGN_OR_RETURN(
        auto q, session.sql().Prepare("SELECT target, bucket, sum(seconds) FROM gpu_rollup_hour "
                                      "WHERE bucket >= ? GROUP BY target, bucket "
                                      "ORDER BY target, bucket"));
    q.Bind(1, (since / kHourMs) * kHourMs);
    while (true) {
      SEXTANT_ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      HourUsage u;
      u.target = q.Text(0);
      u.hour = q.Int(1);
      u.gpu_seconds_provisioned = q.Real(2);
      out.push_back(std::move(u));
    }
  }
  SEXTANT_ASSIGN_OR_RETURN(
      auto q, session.sql().Prepare("SELECT target, deployment, bucket, requested_s, used_s, "
                                    "generated_tokens, prompt_tokens FROM deployment_rollup_hour "
                                    "WHERE bucket >= ? ORDER BY target, deployment, bucket"));
  q.Bind(1, (since / kHourMs) * kHourMs);
  while (true) {
    SEXTANT_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
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

Status TelemetryRepository::RemoveTarget(const std::string& target) {
  SEXTANT_ASSIGN_OR_RETURN(Transaction tx, db_->Begin());
  for (const char* table :
       {"gpus", "deployments", "gpu_samples", "deployment_samples", "gpu_rollup_minute",
        "gpu_rollup_hour", "deployment_rollup_minute", "deployment_rollup_hour"}) {
    SEXTANT_ASSIGN_OR_RETURN(
        auto d, tx.sql().Prepare(std::string("DELETE FROM ") + table + " WHERE target = ?"));
    SEXTANT_RETURN_IF_ERROR(d.Bind(1, target).Run());
  }
  return tx.Commit();
}

}  // namespace sextant::console
