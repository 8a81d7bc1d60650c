// Carried validation reports: a report for a spec that was not re-run because it differs from a
// validated spec only in scaling fields (spec/spec_diff.h: replica bounds and the `scaling`
// section decide how many replicas run, never what they output). The carried report has the
// new spec's digest, the results of the passing report it was carried from (outputs, figures,
// backend, verdict), a `carriedFrom` naming that report (spec digest, store id, sha256 of its
// signed bytes) and the reason; it is signed by the console's key and stored like any report,
// so `push` and every agent check it exactly as they check a report measured here.
//
// Thread-safety: free functions; CarryPassingReports may run on any thread (the console
// database's repositories are thread-safe, see app/console/store/console_database.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "app/common/deployment_spec.h"
#include "app/common/signing.h"
#include "app/common/validation_report.h"
#include "app/console/store/report_repository.h"
#include "engine/base/status.h"

namespace sextant::console {

inline constexpr std::string_view kCarriedForScaling = "spec differs only in scaling";

// The report `from` (stored as from_id, signed bytes from_signed_json), measured on from_spec,
// carried to to_spec. FAILED_PRECONDITION when the specs differ in anything but scaling fields
// (naming the field and asking for `sextant validate`), when `from` is not a passing report of
// from_spec's digest and model, or when the specs have the same digest.
Result<report::ValidationReport> CarryReport(const report::ValidationReport& from, int64_t from_id,
                                             std::string_view from_signed_json,
                                             const spec::DeploymentSpec& from_spec,
                                             const spec::DeploymentSpec& to_spec,
                                             std::string created_at);

struct CarriedReport {
  int64_t id = 0;       // the new report's id in the store
  int64_t from_id = 0;  // the report it was carried from
  std::string backend;
  report::ValidationReport report;
  report::SignedReport signed_report;
};

// For each backend, the newest passing report of from_spec's digest that verifies with the
// key's public half is carried to to_spec, signed with key and stored (oldest first, so the
// carry of the newest report is the newest report of to_spec). Returns what was stored.
// FAILED_PRECONDITION when from_spec has no such report or the specs differ in more than
// scaling.
Result<std::vector<CarriedReport>> CarryPassingReports(ReportRepository& store,
                                                       const report::SigningKey& key,
                                                       const spec::DeploymentSpec& from_spec,
                                                       const spec::DeploymentSpec& to_spec);

}  // namespace sextant::console
