#include "app/console/store/rollout_journal.h"

#include <nlohmann/json.hpp>

#include "app/common/sqlite/sqlite_db.h"
#include "app/console/store/console_database.h"

namespace sextant::console {
namespace {

// The result of a rollout as stored (console::ToJson), read back; fields it lacks keep their
// defaults.
void ReadResultJson(const std::string& text, PushResult* p) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return;
  p->no_op = j.value("no_op", false);
  p->local_output_digest = j.value("local_output_digest", "");
  p->stopped_because = j.value("stopped_because", "");
  if (!j.contains("targets") || !j["targets"].is_array()) return;
  for (const auto& t : j["targets"]) {
    if (!t.is_object()) continue;
    TargetOutcome o;
    o.target = t.value("target", "");
    const std::string state = t.value("state", "");
    for (int k = 0; k <= static_cast<int>(TargetState::kRolledBack); ++k) {
      if (TargetStateName(static_cast<TargetState>(k)) == state) {
        o.state = static_cast<TargetState>(k);
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
    p->targets.push_back(std::move(o));
  }
}

}  // namespace

Result<int64_t> RolloutJournal::Begin(const std::string& kind, const std::string& deployment,
                                      const std::string& spec_digest) {
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(
      auto q, s.sql().Prepare("INSERT INTO rollouts(kind, deployment, spec_digest, started_at) "
                              "VALUES(?, ?, ?, ?) RETURNING id"));
  q.Bind(1, kind).Bind(2, deployment).Bind(3, spec_digest).Bind(4, NowMs());
  SEXTANT_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return Status::Internal("rollout journal: insert returned no id");
  const int64_t id = q.Int(0);
  SEXTANT_ASSIGN_OR_RETURN(bool more, q.Step());  // completes the INSERT
  (void)more;
  return id;
}

Status RolloutJournal::Finish(int64_t rollout_id, const PushResult& result) {
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(
      auto q,
      s.sql().Prepare("UPDATE rollouts SET finished_at = ?, ok = ?, result_json = ? WHERE id = ?"));
  q.Bind(1, NowMs()).Bind(2, result.ok).Bind(3, ToJson(result).dump()).Bind(4, rollout_id);
  return q.Run().WithContext("rollout journal: finish rollout " + std::to_string(rollout_id));
}

Status RolloutJournal::RecordTarget(int64_t rollout_id, const TargetRecord& r) {
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(
      auto q,
      s.sql().Prepare("INSERT INTO rollout_targets(rollout_id, target, previous_known, "
                      "had_previous, previous_generation, previous_spec_json, "
                      "previous_spec_digest, previous_model_uri, previous_model_sha256, "
                      "generation, state, apply_unknown, updated_at) "
                      "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                      "ON CONFLICT(rollout_id, target) DO UPDATE SET "
                      "generation = excluded.generation, state = excluded.state, "
                      "apply_unknown = excluded.apply_unknown, updated_at = excluded.updated_at"));
  const DeploymentPayload none;
  const DeploymentPayload& p = r.previous ? r.previous->spec : none;
  q.Bind(1, rollout_id).Bind(2, r.target).Bind(3, r.previous_known).Bind(4, r.previous.has_value());
  q.Bind(5, r.previous ? r.previous->generation : int64_t{0}).Bind(6, p.spec_json);
  q.Bind(7, p.spec_digest).Bind(8, p.model_uri).Bind(9, p.model_sha256).Bind(10, r.generation);
  q.Bind(11, std::string(TargetStateName(r.state))).Bind(12, r.apply_unknown).Bind(13, NowMs());
  return q.Run().WithContext("rollout journal: journal target " + r.target);
}

Result<JournaledPush> RolloutJournal::LatestPush(const std::string& deployment) {
  DbSession s = db_->Lock();
  JournaledPush out;
  {
    SEXTANT_ASSIGN_OR_RETURN(
        auto q, s.sql().Prepare("SELECT r.id, r.spec_digest FROM rollouts r WHERE r.kind = 'push' "
                                "AND r.deployment = ? AND EXISTS (SELECT 1 FROM rollout_targets t "
                                "WHERE t.rollout_id = r.id AND (t.generation != 0 OR "
                                "t.apply_unknown != 0 OR t.state = 'rolled-back')) "
                                "ORDER BY r.id DESC LIMIT 1"));
    q.Bind(1, deployment);
    SEXTANT_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) {
      return Status::NotFound("no push of deployment '" + deployment +
                              "' changed a target: nothing to roll back");
    }
    out.rollout_id = q.Int(0);
    out.spec_digest = q.Text(1);
  }
  SEXTANT_ASSIGN_OR_RETURN(
      auto t, s.sql().Prepare("SELECT target, previous_known, had_previous, previous_generation, "
                              "previous_spec_json, previous_spec_digest, previous_model_uri, "
                              "previous_model_sha256, generation, state, apply_unknown "
                              "FROM rollout_targets WHERE rollout_id = ? ORDER BY target"));
  t.Bind(1, out.rollout_id);
  while (true) {
    SEXTANT_ASSIGN_OR_RETURN(bool row, t.Step());
    if (!row) break;
    TargetRecord rec;
    rec.target = t.Text(0);
    rec.previous_known = t.Int(1) != 0;
    if (t.Int(2) != 0) {
      RemoteDeployment prev;
      prev.generation = t.Int(3);
      prev.spec.name = deployment;
      prev.spec.spec_json = t.Text(4);
      prev.spec.spec_digest = t.Text(5);
      prev.spec.model_uri = t.Text(6);
      prev.spec.model_sha256 = t.Text(7);
      rec.previous = std::move(prev);
    }
    rec.generation = t.Int(8);
    const std::string state = t.Text(9);
    for (int k = 0; k <= static_cast<int>(TargetState::kRolledBack); ++k) {
      if (TargetStateName(static_cast<TargetState>(k)) == state) {
        rec.state = static_cast<TargetState>(k);
      }
    }
    rec.apply_unknown = t.Int(10) != 0;
    out.records.push_back(std::move(rec));
  }
  return out;
}

Result<std::vector<std::string>> RolloutJournal::TargetsOfLatestPush(
    const std::string& deployment) {
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(
      auto q,
      s.sql().Prepare("SELECT t.target FROM rollout_targets t WHERE t.rollout_id = (SELECT r.id "
                      "FROM rollouts r WHERE r.kind = 'push' AND r.deployment = ?1 AND EXISTS "
                      "(SELECT 1 FROM rollout_targets x WHERE x.rollout_id = r.id) ORDER BY "
                      "r.id DESC LIMIT 1) ORDER BY t.target"));
  q.Bind(1, deployment);
  std::vector<std::string> out;
  while (true) {
    SEXTANT_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back(q.Text(0));
  }
  return out;
}

Result<std::vector<PushResult>> RolloutJournal::List(const std::string& deployment, int limit) {
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(
      auto q, s.sql().Prepare("SELECT id, kind, deployment, spec_digest, ok, result_json FROM "
                              "rollouts WHERE (?1 = '' OR deployment = ?1) ORDER BY id DESC "
                              "LIMIT ?2"));
  q.Bind(1, deployment).Bind(2, limit > 0 ? limit : -1);
  std::vector<PushResult> out;
  while (true) {
    SEXTANT_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    PushResult p;
    p.rollout_id = q.Int(0);
    p.kind = q.Text(1);
    p.deployment = q.Text(2);
    p.spec_digest = q.Text(3);
    p.ok = q.Int(4) != 0;
    ReadResultJson(q.Text(5), &p);
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace sextant::console
