#include "app/console/rollout/rollout.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace sextant::console {
namespace {

bool IsRefusal(StatusCode code) {
  return code == StatusCode::kPermissionDenied || code == StatusCode::kFailedPrecondition ||
         code == StatusCode::kInvalidArgument || code == StatusCode::kUnauthenticated;
}

// A mutating call that failed this way may or may not have taken effect.
bool OutcomeUnknown(StatusCode code) {
  return code == StatusCode::kUnavailable || code == StatusCode::kDeadlineExceeded ||
         code == StatusCode::kCancelled || code == StatusCode::kUnknown ||
         code == StatusCode::kInternal || code == StatusCode::kAborted;
}

std::string Short(const std::string& digest) {
  std::string bare = BareDigest(digest);
  return bare.size() > 12 ? bare.substr(0, 12) : bare;
}

bool SameDigest(const std::string& a, const std::string& b) {
  return !a.empty() && BareDigest(a) == BareDigest(b);
}

// Calls made at once: a bound on the connections a push opens together.
constexpr size_t kMaxParallel = 8;

// Runs fn(i) for every i in `indices`, each on its own thread (at most kMaxParallel at once),
// and joins them.
void RunParallel(const std::vector<size_t>& indices, const std::function<void(size_t)>& fn) {
  if (indices.size() == 1) {
    fn(indices[0]);
    return;
  }
  if (indices.size() > kMaxParallel) {
    for (size_t at = 0; at < indices.size(); at += kMaxParallel) {
      RunParallel(std::vector<size_t>(indices.begin() + static_cast<std::ptrdiff_t>(at),
                                      indices.begin() + static_cast<std::ptrdiff_t>(std::min(
                                                            indices.size(), at + kMaxParallel))),
                  fn);
    }
    return;
  }
  std::vector<std::thread> threads;
  threads.reserve(indices.size());
  for (size_t i : indices) threads.emplace_back([&fn, i] { fn(i); });
  for (auto& t : threads) t.join();
}

// Per-target state of one Push or Rollback; `mu` serializes callbacks and shared fields.
struct Run {
  const PushOptions* options = nullptr;
  std::function<Status(const TargetRecord&)> journal;
  std::mutex mu;
  std::vector<TargetOutcome> outcomes;
  std::vector<TargetRecord> records;

  // Sets the state, journals it and tells the caller.
  Status Emit(size_t i, TargetState state, const std::string& message) {
    std::lock_guard<std::mutex> lock(mu);
    outcomes[i].state = state;
    records[i].state = state;
    Status journaled;
    if (journal) journaled = journal(records[i]);
    if (options->on_event) options->on_event(PushEvent{outcomes[i].target, state, message});
    return journaled;
  }
};

// Returns target i to its previous generation. REQUIRES: the target runs `digest` at
// generation `generation` (or we believe so: the call is conditional on it).
void Restore(Run& run, size_t i, TargetChannel& channel, const std::string& deployment,
             int64_t generation, const std::function<std::string(const std::string&)>& report_for) {
  TargetOutcome& out = run.outcomes[i];
  const std::optional<RemoteDeployment>& previous = run.records[i].previous;
  Status s;
  int64_t restored_generation = 0;
  if (!previous) {
    s = channel.Delete(deployment, generation);
    if (s.code() == StatusCode::kNotFound) s = Status();
  } else {
    DeploymentPayload p = previous->spec;
    if (report_for) p.signed_report_json = report_for(p.spec_digest);
    auto reply = channel.Apply(p, generation, false);
    if (reply.ok()) {
      restored_generation = reply->generation;
    } else {
      s = reply.status();
    }
  }
  const std::string prior_error = out.error;
  if (!s.ok()) {
    out.error = (prior_error.empty() ? "" : prior_error + "; ") +
                "rollback failed: " + s.message() + " (run `sextant rollback " + deployment + "`)";
    (void)run.Emit(i, TargetState::kFailed, out.error);
    return;
  }
  out.generation = restored_generation;
  out.changed = false;
  {
    std::lock_guard<std::mutex> lock(run.mu);
    run.records[i].generation = 0;
    run.records[i].apply_unknown = false;
  }
  const std::string what = previous ? "restored " + Short(previous->spec.spec_digest) +
                                          " as generation " + std::to_string(restored_generation)
                                    : std::string("deleted (absent before)");
  (void)run.Emit(i, TargetState::kRolledBack, "rolled back: " + what);
}

}  // namespace

std::string BareDigest(std::string_view digest) {
  if (digest.substr(0, 7) == "sha256:") digest.remove_prefix(7);
  std::string out(digest);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view TargetStateName(TargetState state) {
  switch (state) {
    case TargetState::kPending:
      return "pending";
    case TargetState::kApplying:
      return "applying";
    case TargetState::kValidating:
      return "validating";
    case TargetState::kDone:
      return "done";
    case TargetState::kUnchanged:
      return "unchanged";
    case TargetState::kRefused:
      return "refused";
    case TargetState::kFailed:
      return "failed";
    case TargetState::kRolledBack:
      return "rolled-back";
  }
  return "unknown";
}

nlohmann::json ToJson(const TargetOutcome& o) {
  return nlohmann::json{{"target", o.target},
                        {"state", std::string(TargetStateName(o.state))},
                        {"generation", o.generation},
                        {"previous_generation", o.previous_generation},
                        {"previous_spec_digest", o.previous_spec_digest},
                        {"output_digest", o.output_digest},
                        {"comparison", o.comparison},
                        {"backend", o.backend},
                        {"device", o.device},
                        {"changed", o.changed},
                        {"error", o.error}};
}

nlohmann::json ToJson(const PushResult& r) {
  nlohmann::json targets = nlohmann::json::array();
  for (const auto& t : r.targets) targets.push_back(ToJson(t));
  return nlohmann::json{{"kind", r.kind},
                        {"ok", r.ok},
                        {"no_op", r.no_op},
                        {"deployment", r.deployment},
                        {"spec_digest", r.spec_digest},
                        {"local_output_digest", r.local_output_digest},
                        {"stopped_because", r.stopped_because},
                        {"rollout_id", r.rollout_id},
                        {"targets", std::move(targets)}};
}

Status CompareOutputs(const RemoteValidation& remote, const std::vector<ExpectedOutput>& expected,
                      double cross_backend_min_agreement, std::string* comparison) {
  if (expected.empty()) {
    *comparison = "none";
    return Status::FailedPrecondition("no local report to compare with");
  }
  // The set the target compared with: its own backend's when the plan had one.
  auto used = std::find_if(expected.begin(), expected.end(), [&](const ExpectedOutput& e) {
    return e.backend == remote.compared_with_backend;
  });
  const ExpectedOutput& ref = used != expected.end() ? *used : expected.front();
  const bool same_backend = !remote.backend.empty() && ref.backend == remote.backend;
  // Which prompts differ, for the message (1-based, as people count prompts).
  std::vector<size_t> differing;
  const size_t n = ref.prompt_digests.size();
  size_t agree = 0;
  for (size_t k = 0; k < n; ++k) {
    if (k < remote.prompt_matches.size() && remote.prompt_matches[k]) {
      ++agree;
    } else {
      differing.push_back(k + 1);
    }
  }
  std::string which;
  for (size_t k : differing) which += (which.empty() ? "" : ", ") + std::to_string(k);
  if (remote.prompt_matches.size() != n) {
    which += (which.empty() ? "" : "; ") + std::to_string(remote.prompt_matches.size()) +
             " prompt answers for " + std::to_string(n) + " prompts";
  }

  if (same_backend) {
    if (remote.output_matches && agree == n && remote.prompt_matches.size() == n) {
      *comparison = "exact (" + ref.backend + "): match";
      return Status();
    }
    *comparison = "exact (" + ref.backend + "): mismatch";
    return Status::FailedPrecondition(
        "the target's outputs do not match the local report's " + Short(ref.output_digest) + " (" +
        ref.backend + "; prompts differing: " + (which.empty() ? "none" : which) + ")");
  }
  char bound[32];
  std::snprintf(bound, sizeof bound, "%.2f", cross_backend_min_agreement);
  const double fraction = n == 0 ? 0.0 : static_cast<double>(agree) / static_cast<double>(n);
  const bool ok =
      n > 0 && remote.prompt_matches.size() == n && fraction + 1e-12 >= cross_backend_min_agreement;
  *comparison = "prompt-agreement>=" + std::string(bound) + " (" + ref.backend + " report vs " +
                (remote.backend.empty() ? std::string("unknown") : remote.backend) +
                " target): " + std::to_string(agree) + "/" + std::to_string(n) +
                (ok ? " agree" : " agree, below the bound");
  if (ok) return Status();
  return Status::FailedPrecondition("greedy outputs agree on " + std::to_string(agree) + " of " +
                                    std::to_string(n) + " prompts across backends (" + ref.backend +
                                    " report, " + remote.backend + " target), below " + bound +
                                    " (prompts differing: " + which + ")");
}

Result<PushResult> Push(const PushPlan& plan, const PushOptions& options) {
  const DeploymentPayload& dep = plan.deployment;
  if (plan.targets.empty()) return Status::InvalidArgument("push: no targets");
  if (options.max_unavailable < 1) {
    return Status::InvalidArgument("push: max_unavailable must be at least 1, not " +
                                   std::to_string(options.max_unavailable));
  }
  if (plan.expected.empty()) return Status::InvalidArgument("push: no local report to compare");
  if (dep.name.empty() || dep.spec_digest.empty()) {
    return Status::InvalidArgument("push: the deployment has no name or spec digest");
  }
  std::set<std::string> names;
  for (const auto& t : plan.targets) {
    if (!t) return Status::InvalidArgument("push: null target channel");
    if (!names.insert(t->name()).second) {
      return Status::InvalidArgument("push: target '" + t->name() + "' named twice");
    }
  }
  size_t canary = 0;
  if (!options.canary.empty()) {
    auto it = std::find_if(plan.targets.begin(), plan.targets.end(),
                           [&](const auto& t) { return t->name() == options.canary; });
    if (it == plan.targets.end()) {
      return Status::InvalidArgument("push: canary '" + options.canary +
                                     "' is not one of the targets");
    }
    canary = static_cast<size_t>(it - plan.targets.begin());
  }

  const size_t n = plan.targets.size();
  Run run;
  run.options = &options;
  run.journal = plan.journal;
  run.outcomes.resize(n);
  run.records.resize(n);
  for (size_t i = 0; i < n; ++i) {
    run.outcomes[i].target = plan.targets[i]->name();
    run.records[i].target = plan.targets[i]->name();
  }

  PushResult result;
  result.deployment = dep.name;
  result.spec_digest = "sha256:" + BareDigest(dep.spec_digest);
  result.local_output_digest = plan.expected.front().output_digest;

  // 1. What every target runs now.
  std::vector<size_t> all(n);
  for (size_t i = 0; i < n; ++i) all[i] = i;
  std::vector<Status> read(n);
  RunParallel(all, [&](size_t i) {
    auto got = plan.targets[i]->Get(dep.name);
    if (!got.ok()) {
      read[i] = got.status();
      return;
    }
    run.records[i].previous = *got;
    run.records[i].previous_known = true;
    if (*got) {
      run.outcomes[i].previous_generation = (*got)->generation;
      run.outcomes[i].generation = (*got)->generation;
      run.outcomes[i].previous_spec_digest = "sha256:" + BareDigest((*got)->spec.spec_digest);
    }
  });
  for (size_t i = 0; i < n; ++i) {
    if (read[i].ok()) continue;
    run.outcomes[i].error = "cannot read its deployment: " + read[i].message();
    (void)run.Emit(i, TargetState::kFailed, run.outcomes[i].error);
    if (result.stopped_because.empty()) {
      result.stopped_because = "target " + run.outcomes[i].target +
                               " unreachable before the push (" + read[i].message() +
                               "); nothing was changed";
    }
  }
  if (!result.stopped_because.empty()) {
    result.targets = std::move(run.outcomes);
    return result;
  }
  const bool everywhere = std::all_of(run.records.begin(), run.records.end(), [&](const auto& r) {
    return r.previous && SameDigest(r.previous->spec.spec_digest, dep.spec_digest);
  });
  if (everywhere) {
    for (size_t i = 0; i < n; ++i) {
      (void)run.Emit(i, TargetState::kUnchanged,
                     "already at " + Short(dep.spec_digest) + " (generation " +
                         std::to_string(run.outcomes[i].generation) + ")");
    }
    result.ok = true;
    result.no_op = true;
    result.targets = std::move(run.outcomes);
    return result;
  }

  // 2. Canary, then waves.
  std::vector<std::vector<size_t>> waves{{canary}};
  for (size_t i = 0; i < n; ++i) {
    if (i == canary) continue;
    if (waves.size() == 1 || waves.back().size() >= static_cast<size_t>(options.max_unavailable)) {
      waves.emplace_back();
    }
    waves.back().push_back(i);
  }

  std::vector<std::string> stop_reasons(n);
  auto one = [&](size_t i) {
    TargetChannel& ch = *plan.targets[i];
    TargetOutcome& out = run.outcomes[i];
    TargetRecord& rec = run.records[i];
    const bool already =
        rec.previous && SameDigest(rec.previous->spec.spec_digest, dep.spec_digest);
    int64_t generation = rec.previous ? rec.previous->generation : 0;
    if (!already) {
      if (Status s = run.Emit(i, TargetState::kApplying,
                              "applying " + Short(dep.spec_digest) +
                                  (rec.previous ? " over generation " + std::to_string(generation)
                                                : std::string(" (new deployment)")));
          !s.ok()) {
        out.error = "journal: " + s.message();
        stop_reasons[i] = out.target + ": " + out.error;
        (void)run.Emit(i, TargetState::kFailed, out.error);
        return;
      }
      auto applied = ch.Apply(dep, rec.previous ? generation : 0, !rec.previous);
      if (!applied.ok()) {
        const Status& s = applied.status();
        if (IsRefusal(s.code())) {
          out.error = s.message();
          stop_reasons[i] = out.target + " refused the apply: " + s.message();
          (void)run.Emit(i, TargetState::kRefused, "refused: " + s.message());
        } else {
          out.error = "apply: " + s.message();
          if (OutcomeUnknown(s.code())) {
            std::lock_guard<std::mutex> lock(run.mu);
            rec.apply_unknown = true;
          }
          stop_reasons[i] = out.target + " failed: " + out.error;
          (void)run.Emit(i, TargetState::kFailed, out.error);
        }
        return;
      }
      generation = applied->generation;
      {
        std::lock_guard<std::mutex> lock(run.mu);
        out.generation = generation;
        out.changed = applied->changed;
        rec.generation = applied->changed ? generation : 0;
      }
    }
    (void)run.Emit(i, TargetState::kValidating,
                   "validating generation " + std::to_string(generation));
    auto validated = ch.Validate(dep.name, generation, plan.expected);
    if (!validated.ok()) {
      out.error = "validation: " + validated.status().message();
      stop_reasons[i] = out.target + " failed " + out.error;
      (void)run.Emit(i, TargetState::kFailed, out.error);
      return;
    }
    out.backend = validated->backend;
    out.device = validated->device;
    Status cmp = CompareOutputs(*validated, plan.expected, options.cross_backend_min_agreement,
                                &out.comparison);
    if (!cmp.ok()) {
      out.error = cmp.message();
      stop_reasons[i] = out.target + ": " + cmp.message();
      (void)run.Emit(i, TargetState::kFailed, "mismatch: " + cmp.message());
      return;
    }
    // The target confirmed (match answers) that its output has the local report's digest.
    for (const auto& e : plan.expected) {
      if (out.comparison.rfind("exact", 0) == 0 && e.backend == validated->compared_with_backend) {
        out.output_digest = e.output_digest;
      }
    }
    (void)run.Emit(i, already ? TargetState::kUnchanged : TargetState::kDone,
                   (out.output_digest.empty() ? std::string("outputs agree")
                                              : "output digest " + Short(out.output_digest)) +
                       ", " + out.comparison);
  };

  for (const auto& wave : waves) {
    RunParallel(wave, one);
    for (size_t i : wave) {
      if (!stop_reasons[i].empty() && result.stopped_because.empty()) {
        result.stopped_because = stop_reasons[i];
      }
    }
    if (!result.stopped_because.empty()) break;
  }

  // 3. Roll back what this push changed.
  if (!result.stopped_because.empty()) {
    std::vector<size_t> to_restore;
    for (size_t i = 0; i < n; ++i) {
      if (run.outcomes[i].changed || run.records[i].apply_unknown) to_restore.push_back(i);
    }
    RunParallel(to_restore, [&](size_t i) {
      TargetChannel& ch = *plan.targets[i];
      int64_t generation = run.outcomes[i].generation;
      if (run.records[i].apply_unknown) {
        // Did the apply take effect? Ask.
        auto now = ch.Get(dep.name);
        if (!now.ok()) {
          TargetOutcome& out = run.outcomes[i];
          out.error += "; cannot tell whether the apply took effect (" + now.status().message() +
                       "): the target runs generation " + std::to_string(out.previous_generation) +
                       " or the next with " + Short(dep.spec_digest) + "; run `sextant rollback " +
                       dep.name + "`";
          out.changed = true;  // possibly
          (void)run.Emit(i, TargetState::kFailed, out.error);
          return;
        }
        if (!*now || !SameDigest((*now)->spec.spec_digest, dep.spec_digest)) {
          run.outcomes[i].error += "; the apply did not take effect";
          {
            std::lock_guard<std::mutex> lock(run.mu);
            run.records[i].apply_unknown = false;
          }
          (void)run.Emit(i, TargetState::kFailed, run.outcomes[i].error);
          return;  // unchanged: nothing to restore
        }
        generation = (*now)->generation;
        run.outcomes[i].generation = generation;
      }
      Restore(run, i, ch, dep.name, generation, plan.report_for);
    });
  }

  result.ok = result.stopped_because.empty();
  result.targets = std::move(run.outcomes);
  return result;
}

Result<PushResult> Rollback(const RollbackPlan& plan, const PushOptions& options) {
  if (plan.records.empty()) return Status::InvalidArgument("rollback: nothing to roll back");
  if (options.max_unavailable < 1) {
    return Status::InvalidArgument("rollback: max_unavailable must be at least 1");
  }
  std::map<std::string, std::shared_ptr<TargetChannel>> by_name;
  for (const auto& t : plan.targets) {
    if (t) by_name[t->name()] = t;
  }
  const size_t n = plan.records.size();
  Run run;
  run.options = &options;
  run.journal = plan.journal;
  run.records = plan.records;
  run.outcomes.resize(n);
  for (size_t i = 0; i < n; ++i) {
    TargetOutcome& o = run.outcomes[i];
    o.target = plan.records[i].target;
    if (const auto& p = plan.records[i].previous) {
      o.previous_generation = p->generation;
      o.previous_spec_digest = "sha256:" + BareDigest(p->spec.spec_digest);
    }
    if (!plan.records[i].previous_known) {
      return Status::InvalidArgument("rollback: the previous state of target '" + o.target +
                                     "' is unknown");
    }
    if (!by_name.count(o.target)) {
      return Status::InvalidArgument("rollback: no channel for target '" + o.target + "'");
    }
  }
  PushResult result;
  result.kind = "rollback";
  result.deployment = plan.deployment;
  result.spec_digest = "sha256:" + BareDigest(plan.spec_digest);

  auto one = [&](size_t i) {
    TargetChannel& ch = *by_name[run.outcomes[i].target];
    TargetOutcome& out = run.outcomes[i];
    const auto& previous = run.records[i].previous;
    auto now = ch.Get(plan.deployment);
    if (!now.ok()) {
      out.error = "cannot read its deployment: " + now.status().message();
      (void)run.Emit(i, TargetState::kFailed, out.error);
      return;
    }
    out.generation = *now ? (*now)->generation : 0;
    const bool at_pushed = *now && SameDigest((*now)->spec.spec_digest, plan.spec_digest);
    const bool at_previous =
        previous ? (*now && SameDigest((*now)->spec.spec_digest, previous->spec.spec_digest))
                 : !*now;
    if (at_pushed && !at_previous) {
      (void)run.Emit(
          i, TargetState::kApplying,
          "restoring " + (previous ? Short(previous->spec.spec_digest) : std::string("absence")));
      Restore(run, i, ch, plan.deployment, (*now)->generation, plan.report_for);
      return;
    }
    if (at_previous) {
      {
        std::lock_guard<std::mutex> lock(run.mu);
        run.records[i].generation = 0;
        run.records[i].apply_unknown = false;
      }
      (void)run.Emit(i, TargetState::kUnchanged, "already at its previous generation");
      return;
    }
    out.error = *now ? "changed since the push (generation " + std::to_string((*now)->generation) +
                           ", " + Short((*now)->spec.spec_digest) + "); not touched"
                     : "deleted since the push; not touched";
    (void)run.Emit(i, TargetState::kFailed, out.error);
  };
  std::vector<size_t> wave;
  for (size_t i = 0; i < n; ++i) {
    wave.push_back(i);
    if (wave.size() >= static_cast<size_t>(options.max_unavailable) || i + 1 == n) {
      RunParallel(wave, one);
      wave.clear();
    }
  }
  for (const auto& o : run.outcomes) {
    if (o.state == TargetState::kFailed && result.stopped_because.empty()) {
      result.stopped_because = o.target + ": " + o.error;
    }
  }
  result.ok = result.stopped_because.empty();
  result.targets = std::move(run.outcomes);
  return result;
}

}  // namespace sextant::console
