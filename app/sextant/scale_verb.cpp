// `sextant scale DEPLOYMENT --min N --max M`: changes a deployment's replica bounds through a
// new generation of its spec, audited and rolled out like any push.
//
//   1. The targets: --to / --selector (as `push`), else the targets of the deployment's latest
//      push in the rollout journal (console.db). No push of the deployment: a clear error.
//   2. The current spec: --spec FILE, else the spec the targets run (read over mTLS; every
//      target must run the same digest, and the canonical JSON must hash to it).
//   3. The new spec: the current one with resources.replicas.min/max replaced (the spec parser's
//      rules apply), hence a new digest.
//   4. A carried report (app/console/rollout/carried_report.h): the passing reports of the
//      current digest, re-signed for the new digest with `carriedFrom` naming them, once the
//      console has checked on the canonical forms that the specs differ in scaling fields only.
//      Nothing is re-run: replica bounds cannot change outputs.
//   5. The normal push (connectors/console/push.h): canary, waves, conditional applies, each
//      target re-running the prompts and compared, rollback on failure, journal.
// Exit status: 0 every target runs the new spec, 1 the scale stopped or could not start,
// 2 usage.
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "app/cli/output.h"
#include "app/cli/verb.h"
#include "app/common/deployment_spec.h"
#include "app/common/signing.h"
#include "app/common/spec_diff.h"
#include "app/console/rollout/carried_report.h"
#include "app/sextant/console_common.h"
#include "connectors/console/push.h"
#include "connectors/console/rollout_channel.h"

namespace sextant::cli {

void PrintRolloutResult(const console::PushResult& r, OutputFormat format);
std::function<void(const console::PushEvent&)> RolloutProgress(bool enabled);

namespace {

namespace fs = std::filesystem;

struct ScaleArgs {
  std::string deployment;
  int min = -1;  // -1: keep
  int max = -1;  // -1: keep
  std::vector<std::string> to;
  std::string selector;
  std::string spec_file;
  std::string write_file;
  int max_unavailable = 1;
  std::string canary;
  std::string state;
  std::string key;
  std::string output = "table";
  int deadline_s = 30;
  int validation_deadline_s = 300;
};

// The targets of the deployment's latest push that reached a target (journal rows), by name.
Result<std::vector<std::string>> JournalTargets(console::ConsoleDatabase& st,
                                                const std::string& deployment) {
  SEXTANT_ASSIGN_OR_RETURN(std::vector<std::string> out,
                           st.rollouts().TargetsOfLatestPush(deployment));
  if (out.empty()) {
    return Status::NotFound("no push of deployment '" + deployment +
                            "' in the rollout journal of this console: push it first (`sextant "
                            "push SPEC --to ...`), or name its targets with --to / --selector");
  }
  return out;
}

// The spec every target runs: one digest, and canonical JSON that hashes to it.
Result<spec::DeploymentSpec> SpecTheTargetsRun(const std::vector<console::Target>& targets,
                                               const std::string& deployment,
                                               std::chrono::milliseconds deadline) {
  std::optional<spec::DeploymentSpec> found;
  std::string found_digest, found_at;
  for (const auto& t : targets) {
    SEXTANT_ASSIGN_OR_RETURN(auto ch, rpc::ConnectTargetChannel(t, deadline, deadline));
    auto got = ch->Get(deployment);
    if (!got.ok()) {
      return Status(got.status().code(), "cannot read deployment '" + deployment + "' of " +
                                             t.name + ": " + got.status().message());
    }
    if (!got->has_value()) {
      return Status::NotFound("target " + t.name + " has no deployment '" + deployment +
                              "'; push it there first, or leave it out with --to");
    }
    const std::string digest = console::BareDigest((*got)->spec.spec_digest);
    if (found) {
      if (digest != found_digest) {
        return Status::FailedPrecondition(
            "targets run different specs of '" + deployment + "': " + found_at +
            " sha256:" + found_digest + ", " + t.name + " sha256:" + digest +
            "; give the spec to scale with --spec FILE (or `sextant rollback` the last push)");
      }
      continue;
    }
    spec::SpecParseResult parsed = spec::ParseDeploymentSpec((*got)->spec.spec_json);
    if (!parsed.ok()) {
      return Status::DataLoss("the spec " + t.name +
                              " returned does not parse: " + parsed.errors[0].ToString());
    }
    if (spec::SpecDigest(parsed.spec) != digest) {
      return Status::DataLoss("the spec " + t.name + " returned does not hash to the digest it " +
                              "reports (sha256:" + digest + ")");
    }
    found = std::move(parsed.spec);
    found_digest = digest;
    found_at = t.name;
  }
  return *found;
}

Status WriteFile(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return Status::Unavailable("cannot write " + file.string());
  return Status();
}

int Scale(const ScaleArgs& a) {
  const char* verb = "scale";
  if (a.min < 0 && a.max < 0) return UsageError(verb, "give --min N and/or --max M");
  if (a.min >= 0 && a.max >= 0 && a.min > a.max) {
    return UsageError(
        verb, "--min " + std::to_string(a.min) + " is above --max " + std::to_string(a.max));
  }
  if (!a.to.empty() && !a.selector.empty()) {
    return UsageError(verb, "give --to T1,T2 or --selector KEY=VALUE, not both");
  }
  auto format = ParseOutputFormat(a.output);
  if (!format.ok()) return UsageError(verb, format.status().message());
  auto st = OpenConsoleDatabase(a.state);
  if (!st.ok()) return ReportError(verb, st.status());
  console::ConsoleDatabase& store = **st;
  const auto deadline = std::chrono::milliseconds(std::chrono::seconds(a.deadline_s));

  // 1. Targets.
  std::vector<std::string> names = a.to;
  if (names.empty() && a.selector.empty()) {
    auto journal = JournalTargets(store, a.deployment);
    if (!journal.ok()) return ReportError(verb, journal.status());
    names = *journal;
  }
  auto targets = rpc::ResolveTargets(store, names, a.selector);
  if (!targets.ok()) return ReportError(verb, targets.status());
  names.clear();
  for (const auto& t : *targets) names.push_back(t.name);

  // 2. The current spec.
  Result<spec::DeploymentSpec> current = Status::Unknown("");
  if (!a.spec_file.empty()) {
    current = spec::LoadDeploymentSpec(a.spec_file);
    if (current.ok() && current->name != a.deployment) {
      return UsageError(verb, a.spec_file + " is the spec of '" + current->name + "', not of '" +
                                  a.deployment + "'");
    }
  } else {
    current = SpecTheTargetsRun(*targets, a.deployment, deadline);
  }
  if (!current.ok()) return ReportError(verb, current.status());

  // 3. The new spec.
  const int new_min = a.min >= 0 ? a.min : current->resources.replicas_min;
  const int new_max = a.max >= 0 ? a.max : current->resources.replicas_max;
  auto next = spec::WithReplicaBounds(*current, new_min, new_max);
  if (!next.ok()) return UsageError(verb, next.status().message());
  const std::string old_digest = spec::SpecDigest(*current);
  const std::string new_digest = spec::SpecDigest(*next);

  // 4. The report of the new digest: one this console signed already, else carried.
  Result<fs::path> key_path =
      a.key.empty() ? report::DefaultSigningKeyPath() : Result<fs::path>(fs::path(a.key));
  if (!key_path.ok()) return ReportError(verb, key_path.status());
  auto key = report::SigningKey::Load(*key_path);
  if (!key.ok()) {
    return ReportError(
        verb, Status::FailedPrecondition("cannot load the console's signing key " +
                                         key_path->string() + ": " + key.status().message()));
  }
  console::ReportRepository& reports = store.reports();
  std::optional<int64_t> reused;
  std::vector<console::CarriedReport> carried;
  {
    auto existing = reports.LatestPassing(new_digest);
    if (!existing.ok()) return ReportError(verb, existing.status());
    if (*existing && console::VerifyStoredReport(**existing, key->public_key()).ok()) {
      reused = (*existing)->id;
    }
  }
  if (!reused) {
    auto c = console::CarryPassingReports(reports, *key, *current, *next);
    if (!c.ok()) return ReportError(verb, c.status());
    carried = std::move(c).value();
  }

  // 5. Push the new spec through the normal path.
  const std::string canonical = spec::CanonicalJson(*next);
  fs::path spec_path;
  bool temporary = false;
  if (!a.write_file.empty()) {
    // Indented JSON is YAML and has the same canonical form (and digest).
    spec_path = a.write_file;
    if (Status s = WriteFile(spec_path, spec::ToCanonicalJsonValue(*next).dump(2) + "\n");
        !s.ok()) {
      return ReportError(verb, s);
    }
  } else {
    spec_path = fs::temp_directory_path() / ("sextant-scale-" + std::to_string(::getpid()) + "-" +
                                             new_digest.substr(0, 16) + ".json");
    temporary = true;
    if (Status s = WriteFile(spec_path, canonical); !s.ok()) return ReportError(verb, s);
  }
  rpc::PushRequest r;
  r.spec_file = spec_path;
  r.targets = names;
  r.max_unavailable = a.max_unavailable;
  r.canary = a.canary;
  r.signing_key = *key_path;
  r.call_deadline = deadline;
  r.validation_deadline = std::chrono::seconds(a.validation_deadline_s);
  r.on_event = RolloutProgress(::isatty(STDERR_FILENO) == 1);
  auto result = rpc::PushFromStore(store, r);
  if (temporary) {
    std::error_code ec;
    fs::remove(spec_path, ec);
  }
  if (!result.ok()) return ReportError(verb, result.status());

  if (*format == OutputFormat::kJson) {
    nlohmann::json j;
    j["kind"] = "scale";
    j["ok"] = result->ok;
    j["deployment"] = a.deployment;
    j["replicas"] = {
        {"min", {{"from", current->resources.replicas_min}, {"to", next->resources.replicas_min}}},
        {"max", {{"from", current->resources.replicas_max}, {"to", next->resources.replicas_max}}}};
    j["from_spec_digest"] = "sha256:" + old_digest;
    j["spec_digest"] = "sha256:" + new_digest;
    nlohmann::json reps = nlohmann::json::array();
    for (const auto& c : carried) {
      reps.push_back({{"id", c.id}, {"carried_from", c.from_id}, {"backend", c.backend}});
    }
    j["carried_reports"] = reps;
    j["reused_report"] = reused ? nlohmann::json(*reused) : nlohmann::json(nullptr);
    if (!a.write_file.empty()) j["written"] = a.write_file;
    j["rollout"] = console::ToJson(*result);
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << "scale " << a.deployment << ": replicas min " << current->resources.replicas_min
              << " -> " << next->resources.replicas_min << ", max "
              << current->resources.replicas_max << " -> " << next->resources.replicas_max << "\n"
              << "spec sha256:" << old_digest << " -> sha256:" << new_digest << "\n";
    for (const auto& c : carried) {
      std::cout << "report " << c.id << " (" << c.backend << ") carried from report " << c.from_id
                << ": " << console::kCarriedForScaling << "\n";
    }
    if (reused) std::cout << "report " << *reused << " of the new spec reused\n";
    if (!a.write_file.empty()) std::cout << "new spec written to " << a.write_file << "\n";
    PrintRolloutResult(*result, *format);
  }
  return result->ok ? 0 : 1;
}

void SetupScale(CLI::App& root, VerbContext& ctx) {
  auto args = std::make_shared<ScaleArgs>();
  auto* cmd = root.add_subcommand(
      "scale",
      "Change a deployment's replica bounds: a new spec generation with a report carried from "
      "the validated one (only scaling differs), pushed like any spec");
  cmd->add_option("DEPLOYMENT", args->deployment, "Deployment name")->required();
  cmd->add_option("--min", args->min, "Replicas at least (0: may scale to zero)")
      ->check(CLI::Range(0, 10000));
  cmd->add_option("--max", args->max, "Replicas at most (1 or more)")->check(CLI::Range(1, 10000));
  cmd->add_option("--to", args->to,
                  "Target names, comma separated (default: the targets of the latest push)")
      ->delimiter(',');
  cmd->add_option("--selector", args->selector, "Targets whose labels have KEY=VALUE");
  cmd->add_option("--spec", args->spec_file,
                  "The current spec (default: the one the targets run, read from them)");
  cmd->add_option("--write", args->write_file, "Also save the new spec there (canonical JSON)");
  cmd->add_option("--max-unavailable", args->max_unavailable,
                  "Targets changed at once after the canary (default 1)")
      ->check(CLI::Range(1, 10000));
  cmd->add_option("--canary", args->canary, "The target changed first (default: the first)");
  cmd->add_option("--deadline", args->deadline_s, "Seconds per agent call (default 30)")
      ->check(CLI::Range(1, 3600));
  cmd->add_option("--validation-deadline", args->validation_deadline_s,
                  "Seconds for a target's validation run (default 300)")
      ->check(CLI::Range(1, 86400));
  cmd->add_option("--state", args->state, "Console state directory (holds console.db)");
  cmd->add_option("--key", args->key,
                  "The console's signing key (default: the console config dir)");
  cmd->add_option("-o,--output", args->output, "table or json")
      ->check(CLI::IsMember({"table", "json"}));
  cmd->callback([args, &ctx] { ctx.exit_code = Scale(*args); });
}

}  // namespace
SEXTANT_REGISTER_VERB(scale, SetupScale);

}  // namespace sextant::cli
