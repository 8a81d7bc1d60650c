#include "app/console/store/report_repository.h"

#include "app/common/sqlite/sqlite_db.h"
#include "app/console/store/console_database.h"

namespace sextant::console {
namespace {

constexpr char kColumns[] =
    "SELECT id, spec_digest, spec_name, model_sha256, passed, created_at, report_json, "
    "signature, key_id FROM validation_reports";

StoredReport ReadRow(const sqlite::SqliteStmt& s) {
  StoredReport r;
  r.id = s.Int(0);
  r.spec_digest = s.Text(1);
  r.spec_name = s.Text(2);
  r.model_sha256 = s.Text(3);
  r.passed = s.Int(4) != 0;
  r.created_at = s.Text(5);
  r.signed_report.report_json = s.Text(6);
  r.signed_report.signature = s.Text(7);
  r.signed_report.key_id = s.Text(8);
  return r;
}

}  // namespace

Result<int64_t> ReportRepository::Add(const report::ValidationReport& report,
                                      const report::SignedReport& signed_report) {
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(
      auto q, s.sql().Prepare("INSERT INTO validation_reports(spec_digest, spec_name, "
                              "model_sha256, passed, created_at, report_json, signature, key_id) "
                              "VALUES(?,?,?,?,?,?,?,?)"));
  q.Bind(1, report.spec_digest).Bind(2, report.spec_name).Bind(3, report.model_sha256);
  q.Bind(4, report.passed).Bind(5, report.created_at).Bind(6, signed_report.report_json);
  q.Bind(7, signed_report.signature).Bind(8, signed_report.key_id);
  SEXTANT_RETURN_IF_ERROR(q.Run().WithContext("store validation report"));
  return s.sql().LastInsertRowid();
}

Result<StoredReport> ReportRepository::Get(int64_t id) {
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(auto q, s.sql().Prepare(std::string(kColumns) + " WHERE id = ?"));
  q.Bind(1, id);
  SEXTANT_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return Status::NotFound("no validation report " + std::to_string(id));
  return ReadRow(q);
}

Result<std::vector<StoredReport>> ReportRepository::List(const std::string& spec_digest,
                                                         int limit) {
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(
      auto q, s.sql().Prepare(std::string(kColumns) +
                              " WHERE ?1 = '' OR spec_digest = ?1 ORDER BY id DESC LIMIT ?2"));
  q.Bind(1, spec_digest).Bind(2, limit > 0 ? limit : -1);
  std::vector<StoredReport> out;
  while (true) {
    SEXTANT_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back(ReadRow(q));
  }
  return out;
}

Result<std::optional<StoredReport>> ReportRepository::LatestPassing(
    const std::string& spec_digest) {
  DbSession s = db_->Lock();
  SEXTANT_ASSIGN_OR_RETURN(
      auto q, s.sql().Prepare(std::string(kColumns) +
                              " WHERE spec_digest = ? AND passed = 1 ORDER BY id DESC LIMIT 1"));
  q.Bind(1, spec_digest);
  SEXTANT_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return std::optional<StoredReport>();
  return std::optional<StoredReport>(ReadRow(q));
}

Result<report::ValidationReport> VerifyStoredReport(const StoredReport& stored,
                                                    const report::VerifyingKey& key) {
  SEXTANT_ASSIGN_OR_RETURN(report::ValidationReport r,
                           report::VerifySignedReport(stored.signed_report, key));
  auto differs = [](const char* column) {
    return Status::DataLoss(std::string("column ") + column +
                            " of the stored report differs from the signed report");
  };
  if (r.spec_digest != stored.spec_digest) return differs("spec_digest");
  if (r.spec_name != stored.spec_name) return differs("spec_name");
  if (r.model_sha256 != stored.model_sha256) return differs("model_sha256");
  if (r.passed != stored.passed) return differs("passed");
  if (r.created_at != stored.created_at) return differs("created_at");
  return r;
}

}  // namespace sextant::console
