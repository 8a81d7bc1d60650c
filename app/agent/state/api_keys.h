// ApiKeyStore: the keys the customer's applications present to the agent's inference API
// (`Authorization: Bearer KEY`), in <state>/api_keys.db (SQLite, WAL, synchronous=FULL). An API
// key stands for the policy's customer-app role: inference on the HTTP API and nothing else.
//
// Only a key's SHA-256 is stored, never the key: Add() returns the key once and it cannot be
// read back. A key is 32 random bytes (base64url after the "sk-sxt-" prefix), so a plain
// SHA-256 is as hard to invert as the key is to guess; no slow hash is needed.
//
// Keys are managed from the command line (`sextant-agent apikeys add|list|revoke`, another
// process) while the agent serves: Verify() notices a commit from any connection (SQLite's
// data_version) at most kRefreshInterval after it and reloads, so a new key works and a revoked
// key stops working without a restart.
//
// Verify() compares the presented key's SHA-256 with every active key's using a constant-time
// comparison and no early exit, so its timing says nothing about which stored hash came close.
//
// Thread-safety: every method is safe from any thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "app/common/sqlite/sqlite_db.h"
#include "engine/base/status.h"

namespace sextant::agent {

inline constexpr char kApiKeyPrefix[] = "sk-sxt-";

struct ApiKeyInfo {
  std::string name;
  std::string deployment;  // "" = every deployment
  std::string prefix;      // the key's first characters, to recognise it ("sk-sxt-AbCd")
  int64_t created_at_unix_ms = 0;
  std::string created_by;
  std::optional<int64_t> revoked_at_unix_ms;  // set once revoked
};

// Who presented a valid key.
struct ApiKeyIdentity {
  std::string name;
  std::string deployment;  // "" = every deployment
  // "apikey:<name>": the identity in audit records and logs.
  std::string AuditIdentity() const { return "apikey:" + name; }
  bool Allows(const std::string& deployment_name) const {
    return deployment.empty() || deployment == deployment_name;
  }
};

// Checks a key name: [a-z0-9][a-z0-9._-]{0,62}; the error names the offending character.
Status ValidateApiKeyName(const std::string& name);

class ApiKeyStore {
 public:
  static constexpr std::chrono::milliseconds kRefreshInterval{100};
  static constexpr size_t kMaxKeys = 10000;  // active and revoked

  // Opens or creates <dir>/api_keys.db (dir must exist).
  static Result<std::unique_ptr<ApiKeyStore>> Open(const std::filesystem::path& dir);

  // Creates a key named `name`, valid for `deployment` ("" = every deployment), and returns it:
  // the only time it exists outside the caller's hands. Errors: INVALID_ARGUMENT for a bad name
  // or deployment name, ALREADY_EXISTS when the name is taken (revoked keys keep their name),
  // RESOURCE_EXHAUSTED beyond kMaxKeys.
  Result<std::string> Add(const std::string& name, const std::string& deployment,
                          const std::string& created_by);
  // Every key, by name.
  Result<std::vector<ApiKeyInfo>> List() const;
  // Revokes a key: it stops working at once in this process and within kRefreshInterval in
  // others. NOT_FOUND when unknown, FAILED_PRECONDITION when already revoked.
  Status Revoke(const std::string& name);

  // The key's identity when `presented` is an active key, else nullopt. Reloads first when the
  // file changed (see above). A store that cannot be read keeps the keys it last loaded.
  std::optional<ApiKeyIdentity> Verify(std::string_view presented) const;
  // Active keys as last loaded.
  size_t active_keys() const;

  const std::filesystem::path& path() const { return path_; }

 private:
  struct ActiveKey {
    std::array<uint8_t, 32> sha256;
    ApiKeyIdentity identity;
  };
  using Snapshot = std::vector<ActiveKey>;

  ApiKeyStore(std::unique_ptr<sqlite::SqliteDb> db, std::filesystem::path path)
      : db_(std::move(db)), path_(std::move(path)) {}
  // REQUIRES: mu_ held.
  Status LoadLocked() const;
  void RefreshIfChanged() const;

  mutable std::mutex mu_;
  std::unique_ptr<sqlite::SqliteDb> db_;            // GUARDED_BY(mu_)
  mutable int64_t data_version_ = -1;               // GUARDED_BY(mu_)
  mutable std::shared_ptr<const Snapshot> active_;  // GUARDED_BY(mu_)
  mutable std::atomic<int64_t> next_check_ns_{0};   // steady clock
  std::filesystem::path path_;
};

}  // namespace sextant::agent
