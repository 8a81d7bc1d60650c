#include "app/console/rollout/carried_report.h"

#include <algorithm>
#include <ctime>
#include <set>

#include "app/common/spec_diff.h"
#include "engine/base/sha256.h"
#include "engine/base/time.h"

namespace sextant::console {
namespace {}  // namespace

Result<report::ValidationReport> CarryReport(const report::ValidationReport& from, int64_t from_id,
                                             std::string_view from_signed_json,
                                             const spec::DeploymentSpec& from_spec,
                                             const spec::DeploymentSpec& to_spec,
                                             std::string created_at) {
  const std::string from_digest = spec::SpecDigest(from_spec);
  const std::string to_digest = spec::SpecDigest(to_spec);
  if (from.spec_digest != from_digest) {
    return Status::FailedPrecondition("report " + std::to_string(from_id) + " is for spec sha256:" +
                                      from.spec_digest + ", not sha256:" + from_digest);
  }
  if (!from.passed) {
    return Status::FailedPrecondition("report " + std::to_string(from_id) +
                                      " did not pass; only a passing report is carried");
  }
  if (from.model_sha256 != from_spec.model.sha256) {
    return Status::FailedPrecondition("report " + std::to_string(from_id) +
                                      " is for another model than the spec names");
  }
  if (from_digest == to_digest) {
    return Status::FailedPrecondition("the specs are the same (sha256:" + to_digest +
                                      "): nothing to carry");
  }
  if (Status s = spec::CheckOnlyScalingDiffers(from_spec, to_spec); !s.ok()) {
    return Status::FailedPrecondition(
        "cannot carry the validation report of sha256:" + from_digest + " to sha256:" + to_digest +
        ": " + s.message() + "; run `sextant validate` on the new spec");
  }
  report::ValidationReport r = from;
  r.spec_name = to_spec.name;
  r.spec_digest = to_digest;
  r.created_at = std::move(created_at);
  r.carried_from = report::CarriedFrom{from_digest, from_id, Sha256Hex(from_signed_json),
                                       std::string(kCarriedForScaling)};
  return r;
}

Result<std::vector<CarriedReport>> CarryPassingReports(ReportRepository& store,
                                                       const report::SigningKey& key,
                                                       const spec::DeploymentSpec& from_spec,
                                                       const spec::DeploymentSpec& to_spec) {
  // Refuse a non-scaling change before looking at reports: the message then names the field.
  if (Status s = spec::CheckOnlyScalingDiffers(from_spec, to_spec); !s.ok()) {
    return Status::FailedPrecondition(s.message() + "; run `sextant validate` on the new spec");
  }
  const std::string from_digest = spec::SpecDigest(from_spec);
  SEXTANT_ASSIGN_OR_RETURN(auto stored, store.List(from_digest));
  // Newest first: the first verifying passing report of each backend.
  std::vector<std::pair<StoredReport, report::ValidationReport>> chosen;
  std::set<std::string> backends;
  std::string rejected;
  for (const auto& s : stored) {
    if (!s.passed) continue;
    auto verified = VerifyStoredReport(s, key.public_key());
    if (!verified.ok()) {
      if (rejected.empty()) {
        rejected = "; report " + std::to_string(s.id) +
                   " does not verify with this console's key: " + verified.status().message();
      }
      continue;
    }
    if (verified->model_sha256 != from_spec.model.sha256) continue;
    if (!backends.insert(verified->backend).second) continue;
    chosen.emplace_back(s, std::move(verified).value());
  }
  if (chosen.empty()) {
    return Status::FailedPrecondition("no passing report signed by this console for spec " +
                                      from_spec.name + " (sha256:" + from_digest +
                                      ") to carry; run `sextant validate` on the spec" + rejected);
  }
  std::reverse(chosen.begin(), chosen.end());
  const std::string now = FormatRfc3339(NowMs());
  std::vector<CarriedReport> out;
  for (const auto& [s, from] : chosen) {
    CarriedReport c;
    c.from_id = s.id;
    c.backend = from.backend;
    SEXTANT_ASSIGN_OR_RETURN(
        c.report, CarryReport(from, s.id, s.signed_report.report_json, from_spec, to_spec, now));
    SEXTANT_ASSIGN_OR_RETURN(c.signed_report, report::SignReport(c.report, key));
    SEXTANT_ASSIGN_OR_RETURN(c.id, store.Add(c.report, c.signed_report));
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace sextant::console
