#include "connectors/console/push.h"

#include <sqlite3.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>

#include "app/common/deployment_spec.h"
#include "app/common/signing.h"
#include "app/console/store/report_store.h"
#include "connectors/console/rollout_channel.h"

namespace sextant::rpc {
namespace {

// The rollout journal. `rollouts`: one row per push or rollback with its result (JSON of
// console::ToJson). `rollout_targets`: per push and target, the state before the push (written
// before the target's apply) and what the push made of it; RollbackFromStore reads it.
constexpr char kSchema[] = R"sql(
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
)sql";

struct StmtDeleter {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

Status SqlError(sqlite3* db, const std::string& what) {
  return Status::Unavailable("rollout journal: " + what + ": " + sqlite3_errmsg(db));
}

Result<Stmt> Prepare(sqlite3* db, const char* sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) return SqlError(db, "prepare");
  return Stmt(s);
}

void BindText(sqlite3_stmt* s, int i, const std::string& v) {
  sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

std::string Text(sqlite3_stmt* s, int col) {
  const auto* p = sqlite3_column_text(s, col);
  return p ? std::string(reinterpret_cast<const char*>(p),
                         static_cast<size_t>(sqlite3_column_bytes(s, col)))
           : std::string();
}

Status StepDone(sqlite3* db, sqlite3_stmt* s, const std::string& what) {
  if (sqlite3_step(s) != SQLITE_DONE) return SqlError(db, what);
  return Status();
}

// Serializes this file's use of the shared connection (ReportStore and the journal).
std::mutex& DbMutex() {
  static std::mutex mu;
  return mu;
}

Result<int64_t> BeginRollout(sqlite3* db, const std::string& kind, const std::string& deployment,
                             const std::string& spec_digest) {
  std::lock_guard<std::mutex> lock(DbMutex());
  SEXTANT_ASSIGN_OR_RETURN(
      Stmt s, Prepare(db,
                      "INSERT INTO rollouts(kind, deployment, spec_digest, started_at) "
                      "VALUES(?, ?, ?, ?) RETURNING id"));
  BindText(s.get(), 1, kind);
  BindText(s.get(), 2, deployment);
  BindText(s.get(), 3, spec_digest);
  sqlite3_bind_int64(s.get(), 4, console::NowMs());
  if (sqlite3_step(s.get()) != SQLITE_ROW) return SqlError(db, "insert rollout");
  return static_cast<int64_t>(sqlite3_column_int64(s.get(), 0));
}

Status FinishRollout(sqlite3* db, int64_t id, const console::PushResult& result) {
  std::lock_guard<std::mutex> lock(DbMutex());
  SEXTANT_ASSIGN_OR_RETURN(
      Stmt s,
      Prepare(db, "UPDATE rollouts SET finished_at = ?, ok = ?, result_json = ? WHERE id = ?"));
  sqlite3_bind_int64(s.get(), 1, console::NowMs());
  sqlite3_bind_int(s.get(), 2, result.ok ? 1 : 0);
  BindText(s.get(), 3, console::ToJson(result).dump());
  sqlite3_bind_int64(s.get(), 4, id);
  return StepDone(db, s.get(), "finish rollout");
}

// Upserts a target row of rollout `id`. The previous state is written once (first call).
Status JournalTarget(sqlite3* db, int64_t id, const console::TargetRecord& r) {
  std::lock_guard<std::mutex> lock(DbMutex());
  SEXTANT_ASSIGN_OR_RETURN(
      Stmt s,
      Prepare(db,
              "INSERT INTO rollout_targets(rollout_id, target, previous_known, had_previous, "
              "previous_generation, previous_spec_json, previous_spec_digest, "
              "previous_model_uri, previous_model_sha256, generation, state, apply_unknown, "
              "updated_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
              "ON CONFLICT(rollout_id, target) DO UPDATE SET generation = excluded.generation, "
              "state = excluded.state, apply_unknown = excluded.apply_unknown, "
              "updated_at = excluded.updated_at"));
  const console::DeploymentPayload none;
  const console::DeploymentPayload& p = r.previous ? r.previous->spec : none;
  sqlite3_bind_int64(s.get(), 1, id);
  BindText(s.get(), 2, r.target);
  sqlite3_bind_int(s.get(), 3, r.previous_known ? 1 : 0);
  sqlite3_bind_int(s.get(), 4, r.previous ? 1 : 0);
  sqlite3_bind_int64(s.get(), 5, r.previous ? r.previous->generation : 0);
  BindText(s.get(), 6, p.spec_json);
  BindText(s.get(), 7, p.spec_digest);
  BindText(s.get(), 8, p.model_uri);
  BindText(s.get(), 9, p.model_sha256);
  sqlite3_bind_int64(s.get(), 10, r.generation);
  BindText(s.get(), 11, std::string(console::TargetStateName(r.state)));
  sqlite3_bind_int(s.get(), 12, r.apply_unknown ? 1 : 0);
  sqlite3_bind_int64(s.get(), 13, console::NowMs());
  return StepDone(db, s.get(), "journal target " + r.target);
}

// The signed report (JSON) of the newest passing report of a digest, or "".
std::string ReportJsonFor(sqlite3* db, const std::string& spec_digest) {
  std::lock_guard<std::mutex> lock(DbMutex());
  console::ReportStore reports(db);
  auto latest = reports.LatestPassing(console::BareDigest(spec_digest));
  if (!latest.ok() || !*latest) return "";
  return report::SignedReportToJson((*latest)->signed_report).dump();
}

console::ExpectedOutput Expected(const report::ValidationReport& r, int64_t id) {
  console::ExpectedOutput e;
  e.backend = r.backend;
  e.output_digest = r.output_digest;
  for (const auto& p : r.prompts) e.prompt_digests.push_back(p.output_digest);
  e.report_id = id;
  return e;
}

}  // namespace

Result<std::vector<console::Target>> ResolveTargets(console::ConsoleStore& st,
                                                    const std::vector<std::string>& names,
                                                    const std::string& selector) {
  std::vector<console::Target> out;
  if (!selector.empty()) {
    if (!names.empty()) {
      return Status::InvalidArgument("give targets or a selector, not both");
    }
    const size_t eq = selector.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Status::InvalidArgument("selector '" + selector + "' is not KEY=VALUE");
    }
    const std::string key = selector.substr(0, eq), value = selector.substr(eq + 1);
    SEXTANT_ASSIGN_OR_RETURN(auto all, st.ListTargets());
    for (auto& t : all) {
      auto it = t.labels.find(key);
      if (it != t.labels.end() && it->second == value) out.push_back(std::move(t));
    }
    if (out.empty()) {
      return Status::NotFound("no target has the label " + selector);
    }
    return out;
  }
  if (names.empty()) return Status::InvalidArgument("no targets: give --to or --selector");
  std::set<std::string> seen;
  for (const auto& n : names) {
    if (!seen.insert(n).second) return Status::InvalidArgument("target '" + n + "' named twice");
    auto t = st.GetTarget(n);
    if (!t.ok()) {
      if (t.status().code() == StatusCode::kNotFound) {
        return Status::NotFound("no target named '" + n + "' (see `sextant targets list`)");
      }
      return t.status();
    }
    out.push_back(std::move(t).value());
  }
  return out;
}

Status EnsureRolloutSchema(console::ConsoleStore& st) {
  std::lock_guard<std::mutex> lock(DbMutex());
  char* err = nullptr;
  if (sqlite3_exec(st.handle(), kSchema, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return Status::Unavailable("rollout journal: create tables: " + msg);
  }
  return Status();
}

Result<console::PushResult> PushFromStore(console::ConsoleStore& st, const PushRequest& r) {
  SEXTANT_ASSIGN_OR_RETURN(spec::DeploymentSpec spec, spec::LoadDeploymentSpec(r.spec_file));
  const std::string digest = spec::SpecDigest(spec);
  sqlite3* db = st.handle();
  {
    std::lock_guard<std::mutex> lock(DbMutex());
    SEXTANT_RETURN_IF_ERROR(console::ReportStore::EnsureSchema(db));
  }
  SEXTANT_RETURN_IF_ERROR(EnsureRolloutSchema(st));

  // The console's key: the push carries only reports this console signed.
  Result<std::filesystem::path> key_path = r.signing_key.empty()
                                               ? report::DefaultSigningKeyPath()
                                               : Result<std::filesystem::path>(r.signing_key);
  if (!key_path.ok()) return key_path.status();
  auto key = report::SigningKey::Load(*key_path);
  if (!key.ok()) {
    return Status::FailedPrecondition("cannot load the console's signing key " +
                                      key_path->string() + ": " + key.status().message() +
                                      " (run `sextant validate SPEC` first)");
  }

  // The newest passing, verifying report of each backend; the newest overall is the reference.
  std::vector<console::ExpectedOutput> expected;
  std::string reference_report_json;
  std::string rejected;
  {
    std::lock_guard<std::mutex> lock(DbMutex());
    console::ReportStore reports(db);
    SEXTANT_ASSIGN_OR_RETURN(auto stored, reports.List(digest));
    std::set<std::string> backends;
    for (const auto& s : stored) {
      if (!s.passed) continue;
      auto verified = console::VerifyStoredReport(s, key->public_key());
      if (!verified.ok()) {
        if (rejected.empty()) {
          rejected = "; report " + std::to_string(s.id) +
                     " does not verify with this console's key: " + verified.status().message();
        }
        continue;
      }
      if (verified->model_sha256 != spec.model.sha256) continue;
      if (!backends.insert(verified->backend).second) continue;
      if (expected.empty()) {
        reference_report_json = report::SignedReportToJson(s.signed_report).dump();
      }
      expected.push_back(Expected(*verified, s.id));
    }
  }
  if (expected.empty()) {
    return Status::FailedPrecondition(
        "no passing report signed by this console for spec " + spec.name + " (sha256:" + digest +
        "); run `sextant validate " + r.spec_file.string() + "` first" + rejected);
  }

  SEXTANT_ASSIGN_OR_RETURN(auto targets, ResolveTargets(st, r.targets, r.selector));
  console::PushPlan plan;
  plan.deployment.name = spec.name;
  plan.deployment.spec_json = spec::CanonicalJson(spec);
  plan.deployment.spec_digest = "sha256:" + digest;
  plan.deployment.model_uri = spec.model.uri;
  plan.deployment.model_sha256 = spec.model.sha256;
  plan.deployment.signed_report_json = reference_report_json;
  plan.expected = std::move(expected);
  for (const auto& t : targets) {
    SEXTANT_ASSIGN_OR_RETURN(auto ch,
                             ConnectTargetChannel(t, r.call_deadline, r.validation_deadline));
    plan.targets.push_back(std::move(ch));
  }
  plan.report_for = [db](const std::string& d) { return ReportJsonFor(db, d); };
  SEXTANT_ASSIGN_OR_RETURN(int64_t id, BeginRollout(db, "push", spec.name, "sha256:" + digest));
  plan.journal = [db, id](const console::TargetRecord& rec) { return JournalTarget(db, id, rec); };

  console::PushOptions options;
  options.max_unavailable = r.max_unavailable;
  options.canary = r.canary;
  options.on_event = r.on_event;
  options.cross_backend_min_agreement = r.cross_backend_min_agreement;
  auto result = console::Push(plan, options);
  if (!result.ok()) {
    console::PushResult failed;
    failed.deployment = spec.name;
    failed.stopped_because = result.status().message();
    (void)FinishRollout(db, id, failed);
    return result.status();
  }
  result->rollout_id = id;
  SEXTANT_RETURN_IF_ERROR(FinishRollout(db, id, *result));
  return result;
}

Result<console::PushResult> RollbackFromStore(console::ConsoleStore& st,
                                              const std::string& deployment,
                                              const RollbackRequest& r) {
  SEXTANT_RETURN_IF_ERROR(EnsureRolloutSchema(st));
  sqlite3* db = st.handle();
  // The latest push of the deployment that changed (or may have changed) a target.
  int64_t push_id = 0;
  std::string pushed_digest;
  std::vector<console::TargetRecord> records;
  bool anything_left = false;
  {
    std::lock_guard<std::mutex> lock(DbMutex());
    SEXTANT_ASSIGN_OR_RETURN(
        Stmt s, Prepare(db,
                        "SELECT r.id, r.spec_digest FROM rollouts r WHERE r.kind = 'push' AND "
                        "r.deployment = ? AND EXISTS (SELECT 1 FROM rollout_targets t WHERE "
                        "t.rollout_id = r.id AND (t.generation != 0 OR t.apply_unknown != 0 OR "
                        "t.state = 'rolled-back')) ORDER BY r.id DESC LIMIT 1"));
    BindText(s.get(), 1, deployment);
    const int rc = sqlite3_step(s.get());
    if (rc == SQLITE_DONE) {
      return Status::NotFound("no push of deployment '" + deployment +
                              "' changed a target: nothing to roll back");
    }
    if (rc != SQLITE_ROW) return SqlError(db, "select rollout");
    push_id = sqlite3_column_int64(s.get(), 0);
    pushed_digest = Text(s.get(), 1);

    SEXTANT_ASSIGN_OR_RETURN(
        Stmt t, Prepare(db,
                        "SELECT target, previous_known, had_previous, previous_generation, "
                        "previous_spec_json, previous_spec_digest, previous_model_uri, "
                        "previous_model_sha256, generation, state, apply_unknown "
                        "FROM rollout_targets WHERE rollout_id = ? ORDER BY target"));
    sqlite3_bind_int64(t.get(), 1, push_id);
    int step;
    while ((step = sqlite3_step(t.get())) == SQLITE_ROW) {
      console::TargetRecord rec;
      rec.target = Text(t.get(), 0);
      rec.previous_known = sqlite3_column_int(t.get(), 1) != 0;
      if (sqlite3_column_int(t.get(), 2) != 0) {
        console::RemoteDeployment prev;
        prev.generation = sqlite3_column_int64(t.get(), 3);
        prev.spec.name = deployment;
        prev.spec.spec_json = Text(t.get(), 4);
        prev.spec.spec_digest = Text(t.get(), 5);
        prev.spec.model_uri = Text(t.get(), 6);
        prev.spec.model_sha256 = Text(t.get(), 7);
        rec.previous = std::move(prev);
      }
      rec.generation = sqlite3_column_int64(t.get(), 8);
      const std::string state = Text(t.get(), 9);
      rec.apply_unknown = sqlite3_column_int(t.get(), 10) != 0;
      if (!rec.previous_known) continue;  // never read: the push did not touch it
      if (state == "rolled-back" || (rec.generation == 0 && !rec.apply_unknown)) continue;
      anything_left = true;
      records.push_back(std::move(rec));
    }
    if (step != SQLITE_DONE) return SqlError(db, "select rollout targets");
  }
  if (!anything_left) {
    return Status::NotFound("the latest push of '" + deployment + "' (rollout " +
                            std::to_string(push_id) + ", " + pushed_digest +
                            ") is already rolled back");
  }

  console::RollbackPlan plan;
  plan.deployment = deployment;
  plan.spec_digest = pushed_digest;
  plan.records = records;
  for (const auto& rec : records) {
    SEXTANT_ASSIGN_OR_RETURN(console::Target t, st.GetTarget(rec.target));
    SEXTANT_ASSIGN_OR_RETURN(auto ch, ConnectTargetChannel(t, r.call_deadline, r.call_deadline));
    plan.targets.push_back(std::move(ch));
  }
  plan.report_for = [db](const std::string& d) { return ReportJsonFor(db, d); };
  // Journaled on the push's rows: a restored target is not restored twice.
  plan.journal = [db, push_id](const console::TargetRecord& rec) {
    return JournalTarget(db, push_id, rec);
  };
  SEXTANT_ASSIGN_OR_RETURN(int64_t id, BeginRollout(db, "rollback", deployment, pushed_digest));
  console::PushOptions options;
  options.max_unavailable = std::max(1, r.max_unavailable);
  options.on_event = r.on_event;
  SEXTANT_ASSIGN_OR_RETURN(console::PushResult result, console::Rollback(plan, options));
  result.rollout_id = id;
  SEXTANT_RETURN_IF_ERROR(FinishRollout(db, id, result));
  return result;
}

Result<std::vector<console::PushResult>> ListRollouts(console::ConsoleStore& st,
                                                      const std::string& deployment, int limit) {
  SEXTANT_RETURN_IF_ERROR(EnsureRolloutSchema(st));
  std::lock_guard<std::mutex> lock(DbMutex());
  sqlite3* db = st.handle();
  SEXTANT_ASSIGN_OR_RETURN(
      Stmt s, Prepare(db,
                      "SELECT id, kind, deployment, spec_digest, ok, result_json FROM rollouts "
                      "WHERE (?1 = '' OR deployment = ?1) ORDER BY id DESC LIMIT ?2"));
  BindText(s.get(), 1, deployment);
  sqlite3_bind_int(s.get(), 2, limit > 0 ? limit : -1);
  std::vector<console::PushResult> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    console::PushResult p;
    p.rollout_id = sqlite3_column_int64(s.get(), 0);
    p.kind = Text(s.get(), 1);
    p.deployment = Text(s.get(), 2);
    p.spec_digest = Text(s.get(), 3);
    p.ok = sqlite3_column_int(s.get(), 4) != 0;
    auto j = nlohmann::json::parse(Text(s.get(), 5), nullptr, false);
    if (j.is_object()) {
      p.no_op = j.value("no_op", false);
      p.local_output_digest = j.value("local_output_digest", "");
      p.stopped_because = j.value("stopped_because", "");
      if (j.contains("targets") && j["targets"].is_array()) {
        for (const auto& t : j["targets"]) {
          console::TargetOutcome o;
          o.target = t.value("target", "");
          const std::string state = t.value("state", "");
          for (int k = 0; k <= static_cast<int>(console::TargetState::kRolledBack); ++k) {
            if (console::TargetStateName(static_cast<console::TargetState>(k)) == state) {
              o.state = static_cast<console::TargetState>(k);
            }
          }
          o.generation = t.value("generation", int64_t{0});
          o.previous_generation = t.value("previous_generation", int64_t{0});
          o.previous_spec_digest = t.value("previous_spec_digest", "");
          o.output_digest = t.value("output_digest", "");
          o.comparison = t.value("comparison", "");
          o.backend = t.value("backend", "");
          o.device = t.value("device", "");
          o.changed = t.value("changed", false);
          o.error = t.value("error", "");
          p.targets.push_back(std::move(o));
        }
      }
    }
    out.push_back(std::move(p));
  }
  if (rc != SQLITE_DONE) return SqlError(db, "list rollouts");
  return out;
}

}  // namespace sextant::rpc
