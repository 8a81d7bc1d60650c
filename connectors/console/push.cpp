#include "connectors/console/push.h"

#include <algorithm>
#include <map>
#include <set>

#include "app/common/deployment_spec.h"
#include "app/common/signing.h"
#include "connectors/console/rollout_channel.h"

namespace sextant::rpc {
namespace {

// The signed report (JSON) of the newest passing report of a digest, or "".
std::string ReportJsonFor(console::ConsoleDatabase& db, const std::string& spec_digest) {
  auto latest = db.reports().LatestPassing(console::BareDigest(spec_digest));
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

Result<std::vector<console::Target>> ResolveTargets(console::ConsoleDatabase& st,
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
    SEXTANT_ASSIGN_OR_RETURN(auto all, st.targets().List());
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
    auto t = st.targets().Get(n);
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

Result<console::PushResult> PushFromStore(console::ConsoleDatabase& st, const PushRequest& r) {
  SEXTANT_ASSIGN_OR_RETURN(spec::DeploymentSpec spec, spec::LoadDeploymentSpec(r.spec_file));
  const std::string digest = spec::SpecDigest(spec);

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
    SEXTANT_ASSIGN_OR_RETURN(auto stored, st.reports().List(digest));
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
  plan.report_for = [&st](const std::string& d) { return ReportJsonFor(st, d); };
  SEXTANT_ASSIGN_OR_RETURN(int64_t id, st.rollouts().Begin("push", spec.name, "sha256:" + digest));
  plan.journal = [&st, id](const console::TargetRecord& rec) {
    return st.rollouts().RecordTarget(id, rec);
  };

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
    (void)st.rollouts().Finish(id, failed);
    return result.status();
  }
  result->rollout_id = id;
  SEXTANT_RETURN_IF_ERROR(st.rollouts().Finish(id, *result));
  return result;
}

Result<console::PushResult> RollbackFromStore(console::ConsoleDatabase& st,
                                              const std::string& deployment,
                                              const RollbackRequest& r) {
  // The latest push of the deployment that changed (or may have changed) a target.
  SEXTANT_ASSIGN_OR_RETURN(console::JournaledPush push, st.rollouts().LatestPush(deployment));
  const int64_t push_id = push.rollout_id;
  const std::string pushed_digest = push.spec_digest;
  std::vector<console::TargetRecord> records;
  for (auto& rec : push.records) {
    if (!rec.previous_known) continue;  // never read: the push did not touch it
    if (rec.state == console::TargetState::kRolledBack ||
        (rec.generation == 0 && !rec.apply_unknown)) {
      continue;
    }
    rec.state = console::TargetState::kPending;  // the rollback's own states follow
    records.push_back(std::move(rec));
  }
  const bool anything_left = !records.empty();
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
    SEXTANT_ASSIGN_OR_RETURN(console::Target t, st.targets().Get(rec.target));
    SEXTANT_ASSIGN_OR_RETURN(auto ch, ConnectTargetChannel(t, r.call_deadline, r.call_deadline));
    plan.targets.push_back(std::move(ch));
  }
  plan.report_for = [&st](const std::string& d) { return ReportJsonFor(st, d); };
  // Journaled on the push's rows: a restored target is not restored twice.
  plan.journal = [&st, push_id](const console::TargetRecord& rec) {
    return st.rollouts().RecordTarget(push_id, rec);
  };
  SEXTANT_ASSIGN_OR_RETURN(int64_t id, st.rollouts().Begin("rollback", deployment, pushed_digest));
  console::PushOptions options;
  options.max_unavailable = std::max(1, r.max_unavailable);
  options.on_event = r.on_event;
  SEXTANT_ASSIGN_OR_RETURN(console::PushResult result, console::Rollback(plan, options));
  result.rollout_id = id;
  SEXTANT_RETURN_IF_ERROR(st.rollouts().Finish(id, result));
  return result;
}

}  // namespace sextant::rpc
