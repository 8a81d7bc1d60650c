#include "app/console/store/report_store.h"

#include <sqlite3.h>

#include <memory>

namespace sextant::console {
namespace {

// Keep identical to the validation_reports migration in app/console/store/console_store.cpp.
constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS validation_reports(
  id INTEGER PRIMARY KEY, spec_digest TEXT NOT NULL, spec_name TEXT NOT NULL,
  model_sha256 TEXT NOT NULL, passed INTEGER NOT NULL, created_at TEXT NOT NULL,
  report_json TEXT NOT NULL, signature TEXT NOT NULL, key_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS validation_reports_digest ON validation_reports(spec_digest);
)sql";

struct StmtDeleter {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

Status SqlError(sqlite3* db, std::string_view what) {
  return Status::Unavailable(std::string(what) + ": " + (db ? sqlite3_errmsg(db) : "no database"));
}

Result<Stmt> Prepare(sqlite3* db, const char* sql) {
  if (db == nullptr) return Status::FailedPrecondition("report store has no database");
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) {
    return SqlError(db, "report store: prepare");
  }
  return Stmt(s);
}

std::string Text(sqlite3_stmt* s, int col) {
  const auto* p = sqlite3_column_text(s, col);
  return p ? std::string(reinterpret_cast<const char*>(p),
                         static_cast<size_t>(sqlite3_column_bytes(s, col)))
           : std::string();
}

constexpr char kColumns[] =
    "id, spec_digest, spec_name, model_sha256, passed, created_at, report_json, signature, "
    "key_id";

StoredReport ReadRow(sqlite3_stmt* s) {
  StoredReport r;
  r.id = sqlite3_column_int64(s, 0);
  r.spec_digest = Text(s, 1);
  r.spec_name = Text(s, 2);
  r.model_sha256 = Text(s, 3);
  r.passed = sqlite3_column_int(s, 4) != 0;
  r.created_at = Text(s, 5);
  r.signed_report.report_json = Text(s, 6);
  r.signed_report.signature = Text(s, 7);
  r.signed_report.key_id = Text(s, 8);
  return r;
}

Status Bind(sqlite3* db, sqlite3_stmt* s, int i, const std::string& v) {
  if (sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT) !=
      SQLITE_OK) {
    return SqlError(db, "report store: bind");
  }
  return Status();
}

}  // namespace

Status ReportStore::EnsureSchema(sqlite3* db) {
  char* err = nullptr;
  if (sqlite3_exec(db, kSchema, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return Status::Unavailable("report store: cannot create validation_reports: " + msg);
  }
  return Status();
}

Result<int64_t> ReportStore::Add(const report::ValidationReport& report,
                                 const report::SignedReport& signed_report) {
  const std::string sql =
      "INSERT INTO validation_reports(spec_digest, spec_name, model_sha256, passed, created_at, "
      "report_json, signature, key_id) VALUES(?,?,?,?,?,?,?,?)";
  SEXTANT_ASSIGN_OR_RETURN(Stmt s, Prepare(db_, sql.c_str()));
  SEXTANT_RETURN_IF_ERROR(Bind(db_, s.get(), 1, report.spec_digest));
  SEXTANT_RETURN_IF_ERROR(Bind(db_, s.get(), 2, report.spec_name));
  SEXTANT_RETURN_IF_ERROR(Bind(db_, s.get(), 3, report.model_sha256));
  sqlite3_bind_int(s.get(), 4, report.passed ? 1 : 0);
  SEXTANT_RETURN_IF_ERROR(Bind(db_, s.get(), 5, report.created_at));
  SEXTANT_RETURN_IF_ERROR(Bind(db_, s.get(), 6, signed_report.report_json));
  SEXTANT_RETURN_IF_ERROR(Bind(db_, s.get(), 7, signed_report.signature));
  SEXTANT_RETURN_IF_ERROR(Bind(db_, s.get(), 8, signed_report.key_id));
  if (sqlite3_step(s.get()) != SQLITE_DONE) return SqlError(db_, "report store: insert");
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
}

Result<StoredReport> ReportStore::Get(int64_t id) {
  const std::string sql =
      std::string("SELECT ") + kColumns + " FROM validation_reports WHERE id = ?";
  SEXTANT_ASSIGN_OR_RETURN(Stmt s, Prepare(db_, sql.c_str()));
  sqlite3_bind_int64(s.get(), 1, id);
  const int rc = sqlite3_step(s.get());
  if (rc == SQLITE_DONE) return Status::NotFound("no validation report " + std::to_string(id));
  if (rc != SQLITE_ROW) return SqlError(db_, "report store: select");
  return ReadRow(s.get());
}

Result<std::vector<StoredReport>> ReportStore::List(const std::string& spec_digest, int limit) {
  std::string sql = std::string("SELECT ") + kColumns + " FROM validation_reports";
  if (!spec_digest.empty()) sql += " WHERE spec_digest = ?1";
  sql += " ORDER BY id DESC";
  if (limit > 0) sql += " LIMIT " + std::to_string(limit);
  SEXTANT_ASSIGN_OR_RETURN(Stmt s, Prepare(db_, sql.c_str()));
  if (!spec_digest.empty()) SEXTANT_RETURN_IF_ERROR(Bind(db_, s.get(), 1, spec_digest));
  std::vector<StoredReport> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) out.push_back(ReadRow(s.get()));
  if (rc != SQLITE_DONE) return SqlError(db_, "report store: list");
  return out;
}

Result<std::optional<StoredReport>> ReportStore::LatestPassing(const std::string& spec_digest) {
  const std::string sql = std::string("SELECT ") + kColumns +
                          " FROM validation_reports WHERE spec_digest = ? AND passed = 1 "
                          "ORDER BY id DESC LIMIT 1";
  SEXTANT_ASSIGN_OR_RETURN(Stmt s, Prepare(db_, sql.c_str()));
  SEXTANT_RETURN_IF_ERROR(Bind(db_, s.get(), 1, spec_digest));
  const int rc = sqlite3_step(s.get());
  if (rc == SQLITE_DONE) return std::optional<StoredReport>();
  if (rc != SQLITE_ROW) return SqlError(db_, "report store: select");
  return std::optional<StoredReport>(ReadRow(s.get()));
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
