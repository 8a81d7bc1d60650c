// DesiredState: the deployments an agent must run, with generations, durable in SQLite
// (<state>/desired.db, WAL, synchronous=FULL). An acknowledged Apply or Delete has been fsynced
// before it returns, so a crash at any point loses no acknowledged change, and applying the same
// spec twice never creates a second generation. On start the agent opens it and the replica
// manager brings every deployment up with no control plane present.
//
// The replica manager reads deployments through List()/Get() and learns of changes through
// Subscribe(): the listener runs after the change is durable.
//
// Thread-safety: every method is safe from any thread. Listeners run on the thread that made the
// change, with no DesiredState lock held; they may call List()/Get() but should return quickly.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "app/common/sqlite/sqlite_db.h"
#include "engine/base/status.h"

namespace sextant::agent {

using sqlite::SqliteDb;  // the SQLite wrapper the agent's stores share with the console
using sqlite::SqliteStmt;

struct DeploymentRecord {
  std::string name;
  int64_t generation = 0;
  std::string spec_json;    // canonical JSON of the spec
  std::string spec_digest;  // "sha256:<hex>"
  std::string model_uri;
  std::string model_sha256;
  int64_t applied_at_unix_ms = 0;
  std::string applied_by;  // identity
};

struct ApplyRequest {
  std::string name;
  std::string spec_json;
  std::string spec_digest;  // "sha256:<hex>" or bare hex; must match sha256(spec_json)
  std::string model_uri;
  std::string model_sha256;
  std::string applied_by;
  int64_t if_generation = 0;  // when non-zero, the current generation must equal it
  bool require_absent = false;
};

struct ApplyResult {
  DeploymentRecord record;
  bool changed = false;  // false: the same spec digest was already the desired one
};

struct DeploymentChange {
  enum class Kind { kApplied, kDeleted };
  Kind kind;
  DeploymentRecord record;  // for kDeleted: the last record
};

using DeploymentListener = std::function<void(const DeploymentChange&)>;

// Checks a deployment name: [a-z0-9][a-z0-9-]{0,62}. The error names the offending character.
Status ValidateDeploymentName(const std::string& name);
// Normalizes "sha256:<hex>" / "<hex>" to "sha256:<lowercase hex>"; error when not 64 hex digits.
Result<std::string> NormalizeDigest(const std::string& digest, const std::string& field);

class DesiredState {
 public:
  // Opens or creates <dir>/desired.db (dir must exist).
  static Result<std::unique_ptr<DesiredState>> Open(const std::filesystem::path& dir);

  // Idempotent create/update. INVALID_ARGUMENT for a bad name, digest or JSON, or a digest
  // that does not match the JSON; FAILED_PRECONDITION when if_generation / require_absent do
  // not hold. The record is durable when this returns OK.
  Result<ApplyResult> Apply(const ApplyRequest& request);
  // NOT_FOUND when unknown.
  Result<DeploymentRecord> Get(const std::string& name) const;
  // Sorted by name.
  Result<std::vector<DeploymentRecord>> List() const;
  // Removes it; NOT_FOUND when unknown; FAILED_PRECONDITION when if_generation != 0 and differs.
  Result<DeploymentRecord> Delete(const std::string& name, int64_t if_generation = 0);

  // Returns an id for Unsubscribe.
  int Subscribe(DeploymentListener listener);
  void Unsubscribe(int id);

  const std::filesystem::path& path() const { return path_; }
  Status IntegrityCheck() const;

 private:
  DesiredState(std::unique_ptr<SqliteDb> db, std::filesystem::path path)
      : db_(std::move(db)), path_(std::move(path)) {}
  void Notify(const DeploymentChange& change);

  mutable std::mutex mu_;
  std::unique_ptr<SqliteDb> db_;  // GUARDED_BY(mu_)
  std::filesystem::path path_;

  std::mutex listeners_mu_;
  int next_listener_id_ = 1;
  std::map<int, DeploymentListener> listeners_;  // GUARDED_BY(listeners_mu_)
};

}  // namespace sextant::agent
