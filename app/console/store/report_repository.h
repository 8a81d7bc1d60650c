// Signed validation reports, table validation_reports of the console database.
//
// A stored report keeps the exact signed bytes (report_json) with the signature and key id; the
// other columns are copies of report fields for listing and lookup, and are checked against the
// signed bytes when a report is verified (VerifyStoredReport). Part of ConsoleDatabase
// (console_database.h): its threading model and error mapping apply.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "app/common/signing.h"
#include "app/common/validation_report.h"
#include "engine/base/status.h"

namespace sextant::console {

class ConsoleDatabase;

struct StoredReport {
  int64_t id = 0;
  std::string spec_digest;
  std::string spec_name;
  std::string model_sha256;
  bool passed = false;
  std::string created_at;
  report::SignedReport signed_report;
};

class ReportRepository {
 public:
  explicit ReportRepository(ConsoleDatabase* db) : db_(db) {}

  // Stores a report with its signature; returns its id.
  Result<int64_t> Add(const report::ValidationReport& report,
                      const report::SignedReport& signed_report);
  // NOT_FOUND when there is no report with this id.
  Result<StoredReport> Get(int64_t id);
  // Newest first; spec_digest (when not empty) keeps the reports of one spec. limit 0: all.
  Result<std::vector<StoredReport>> List(const std::string& spec_digest = {}, int limit = 0);
  // The newest passing report of a spec, if any (what `push` requires).
  Result<std::optional<StoredReport>> LatestPassing(const std::string& spec_digest);

 private:
  ConsoleDatabase* db_;
};

// Verifies a stored report: the signature (VerifySignedReport) and that the row's columns agree
// with the signed report (DATA_LOSS naming the column otherwise).
Result<report::ValidationReport> VerifyStoredReport(const StoredReport& stored,
                                                    const report::VerifyingKey& key);

}  // namespace sextant::console
