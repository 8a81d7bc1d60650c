#include "app/agent/state/desired_state.h"

#include <nlohmann/json.hpp>

#include <cctype>
#include <chrono>

#include "engine/base/sha256.h"

namespace sextant::agent {

namespace {

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS deployments (
  name TEXT PRIMARY KEY,
  generation INTEGER NOT NULL,
  spec_json TEXT NOT NULL,
  spec_digest TEXT NOT NULL,
  model_uri TEXT NOT NULL,
  model_sha256 TEXT NOT NULL,
  applied_at_unix_ms INTEGER NOT NULL,
  applied_by TEXT NOT NULL
);
-- The highest generation ever given to a name, so a delete followed by a new apply keeps
-- generations increasing.
CREATE TABLE IF NOT EXISTS generations (
  name TEXT PRIMARY KEY,
  last_generation INTEGER NOT NULL
);
)sql";

constexpr const char* kColumns =
    "name, generation, spec_json, spec_digest, model_uri, model_sha256, applied_at_unix_ms, "
    "applied_by";

DeploymentRecord ReadRecord(const SqliteStmt& s) {
  DeploymentRecord r;
  r.name = s.Text(0);
  r.generation = s.Int(1);
  r.spec_json = s.Text(2);
  r.spec_digest = s.Text(3);
  r.model_uri = s.Text(4);
  r.model_sha256 = s.Text(5);
  r.applied_at_unix_ms = s.Int(6);
  r.applied_by = s.Text(7);
  return r;
}

Result<std::optional<DeploymentRecord>> Lookup(SqliteDb& db, const std::string& name) {
  SEXTANT_ASSIGN_OR_RETURN(
      auto stmt, db.Prepare(std::string("SELECT ") + kColumns + " FROM deployments WHERE name=?"));
  stmt.Bind(1, name);
  SEXTANT_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return std::optional<DeploymentRecord>();
  return std::optional<DeploymentRecord>(ReadRecord(stmt));
}

// Rolls back unless committed.
class Transaction {
 public:
  explicit Transaction(SqliteDb& db) : db_(db) {}
  Status Begin() { return db_.Exec("BEGIN IMMEDIATE"); }
  Status Commit() {
    SEXTANT_RETURN_IF_ERROR(db_.Exec("COMMIT"));
    done_ = true;
    return Status();
  }
  ~Transaction() {
    if (!done_) (void)db_.Exec("ROLLBACK");
  }

 private:
  SqliteDb& db_;
  bool done_ = false;
};

}  // namespace

Status ValidateDeploymentName(const std::string& name) {
  if (name.empty() || name.size() > 63) {
    return Status::InvalidArgument("deployment name must be 1 to 63 characters, got " +
                                   std::to_string(name.size()));
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0);
    if (!ok) {
      return Status::InvalidArgument("deployment name '" + name + "': character " +
                                     std::to_string(i) + " must be [a-z0-9]" +
                                     (i > 0 ? " or '-'" : ""));
    }
  }
  return Status();
}

Result<std::string> NormalizeDigest(const std::string& digest, const std::string& field) {
  std::string hex = digest;
  if (hex.rfind("sha256:", 0) == 0) hex = hex.substr(7);
  if (hex.size() != 64) {
    return Status::InvalidArgument(field + ": expected sha256:<64 hex digits>, got '" + digest +
                                   "'");
  }
  for (char& c : hex) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return Status::InvalidArgument(field + ": '" + digest + "' is not hexadecimal");
    }
  }
  return "sha256:" + hex;
}

Result<std::unique_ptr<DesiredState>> DesiredState::Open(const std::filesystem::path& dir) {
  const auto path = dir / "desired.db";
  SEXTANT_ASSIGN_OR_RETURN(auto db, SqliteDb::Open(path));
  SEXTANT_RETURN_IF_ERROR(db->Exec(kSchema));
  return std::unique_ptr<DesiredState>(new DesiredState(std::move(db), path));
}

Result<ApplyResult> DesiredState::Apply(const ApplyRequest& req) {
  SEXTANT_RETURN_IF_ERROR(ValidateDeploymentName(req.name));
  SEXTANT_ASSIGN_OR_RETURN(std::string digest, NormalizeDigest(req.spec_digest, "spec_digest"));
  std::string model_sha = req.model_sha256;
  if (model_sha.rfind("sha256:", 0) == 0) model_sha = model_sha.substr(7);
  SEXTANT_ASSIGN_OR_RETURN(std::string model_norm, NormalizeDigest(model_sha, "model_sha256"));
  model_sha = model_norm.substr(7);
  if (req.model_uri.empty()) return Status::InvalidArgument("model_uri is empty");
  {
    auto parsed = nlohmann::json::parse(req.spec_json, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded() || !parsed.is_object()) {
      return Status::InvalidArgument("spec_json is not a JSON object");
    }
  }
  const std::string actual = "sha256:" + Sha256Hex(req.spec_json);
  if (actual != digest) {
    return Status::InvalidArgument("spec_digest " + digest +
                                   " does not match sha256 of spec_json (" + actual + ")");
  }

  ApplyResult result;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Transaction tx(*db_);
    SEXTANT_RETURN_IF_ERROR(tx.Begin());
    SEXTANT_ASSIGN_OR_RETURN(auto current, Lookup(*db_, req.name));
    if (req.require_absent && current) {
      return Status::FailedPrecondition("deployment '" + req.name + "' exists at generation " +
                                        std::to_string(current->generation));
    }
    if (req.if_generation != 0) {
      const int64_t have = current ? current->generation : 0;
      if (have != req.if_generation) {
        return Status::FailedPrecondition("deployment '" + req.name + "' is at generation " +
                                          std::to_string(have) + ", not " +
                                          std::to_string(req.if_generation));
      }
    }
    if (current && current->spec_digest == digest) {
      result.record = *current;
      result.changed = false;
      return result;
    }
    int64_t last = 0;
    {
      SEXTANT_ASSIGN_OR_RETURN(
          auto stmt, db_->Prepare("SELECT last_generation FROM generations WHERE name=?"));
      stmt.Bind(1, req.name);
      SEXTANT_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (row) last = stmt.Int(0);
    }
    DeploymentRecord rec;
    rec.name = req.name;
    rec.generation = std::max(last, current ? current->generation : 0) + 1;
    rec.spec_json = req.spec_json;
    rec.spec_digest = digest;
    rec.model_uri = req.model_uri;
    rec.model_sha256 = model_sha;
    rec.applied_at_unix_ms = NowUnixMs();
    rec.applied_by = req.applied_by;
    {
      SEXTANT_ASSIGN_OR_RETURN(
          auto stmt, db_->Prepare("INSERT OR REPLACE INTO deployments (name, generation, "
                                  "spec_json, spec_digest, model_uri, model_sha256, "
                                  "applied_at_unix_ms, applied_by) VALUES (?,?,?,?,?,?,?,?)"));
      stmt.Bind(1, rec.name)
          .Bind(2, rec.generation)
          .Bind(3, rec.spec_json)
          .Bind(4, rec.spec_digest)
          .Bind(5, rec.model_uri)
          .Bind(6, rec.model_sha256)
          .Bind(7, rec.applied_at_unix_ms)
          .Bind(8, rec.applied_by);
      SEXTANT_RETURN_IF_ERROR(stmt.Run());
    }
    {
      SEXTANT_ASSIGN_OR_RETURN(
          auto stmt,
          db_->Prepare("INSERT OR REPLACE INTO generations (name, last_generation) VALUES (?,?)"));
      stmt.Bind(1, rec.name).Bind(2, rec.generation);
      SEXTANT_RETURN_IF_ERROR(stmt.Run());
    }
    SEXTANT_RETURN_IF_ERROR(tx.Commit());
    result.record = std::move(rec);
    result.changed = true;
  }
  Notify({DeploymentChange::Kind::kApplied, result.record});
  return result;
}

Result<DeploymentRecord> DesiredState::Get(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  SEXTANT_ASSIGN_OR_RETURN(auto rec, Lookup(*db_, name));
  if (!rec) return Status::NotFound("deployment '" + name + "' not found");
  return *rec;
}

Result<std::vector<DeploymentRecord>> DesiredState::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  SEXTANT_ASSIGN_OR_RETURN(auto stmt, db_->Prepare(std::string("SELECT ") + kColumns +
                                                   " FROM deployments ORDER BY name"));
  std::vector<DeploymentRecord> out;
  while (true) {
    SEXTANT_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    out.push_back(ReadRecord(stmt));
  }
  return out;
}

Result<DeploymentRecord> DesiredState::Delete(const std::string& name, int64_t if_generation) {
  DeploymentRecord last;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Transaction tx(*db_);
    SEXTANT_RETURN_IF_ERROR(tx.Begin());
    SEXTANT_ASSIGN_OR_RETURN(auto current, Lookup(*db_, name));
    if (!current) return Status::NotFound("deployment '" + name + "' not found");
    if (if_generation != 0 && current->generation != if_generation) {
      return Status::FailedPrecondition("deployment '" + name + "' is at generation " +
                                        std::to_string(current->generation) + ", not " +
                                        std::to_string(if_generation));
    }
    SEXTANT_ASSIGN_OR_RETURN(auto stmt, db_->Prepare("DELETE FROM deployments WHERE name=?"));
    stmt.Bind(1, name);
    SEXTANT_RETURN_IF_ERROR(stmt.Run());
    SEXTANT_RETURN_IF_ERROR(tx.Commit());
    last = *current;
  }
  Notify({DeploymentChange::Kind::kDeleted, last});
  return last;
}

int DesiredState::Subscribe(DeploymentListener listener) {
  std::lock_guard<std::mutex> lock(listeners_mu_);
  const int id = next_listener_id_++;
  listeners_[id] = std::move(listener);
  return id;
}

void DesiredState::Unsubscribe(int id) {
  std::lock_guard<std::mutex> lock(listeners_mu_);
  listeners_.erase(id);
}

void DesiredState::Notify(const DeploymentChange& change) {
  std::vector<DeploymentListener> copy;
  {
    std::lock_guard<std::mutex> lock(listeners_mu_);
    for (const auto& [id, l] : listeners_) copy.push_back(l);
  }
  for (const auto& l : copy) l(change);
}

Status DesiredState::IntegrityCheck() const {
  std::lock_guard<std::mutex> lock(mu_);
  return CheckIntegrity(*db_);
}

}  // namespace sextant::agent
