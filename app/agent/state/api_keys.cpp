#include "app/agent/state/api_keys.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "engine/base/sha256.h"

namespace sextant::agent {

namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS api_keys (
  name TEXT PRIMARY KEY,
  key_sha256 TEXT NOT NULL UNIQUE,   -- hex sha256 of the whole key; the key itself is never stored
  prefix TEXT NOT NULL,              -- the key's first characters, to recognise it in a list
  deployment TEXT NOT NULL,          -- '' = every deployment
  created_at_unix_ms INTEGER NOT NULL,
  created_by TEXT NOT NULL,
  revoked_at_unix_ms INTEGER         -- NULL while the key is active
);
)sql";

constexpr size_t kSecretBytes = 32;
constexpr size_t kPrefixShown = 4;        // characters of the random part shown by List()
constexpr size_t kMaxPresentedKey = 256;  // longer is not a key of ours

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Base64Url(const uint8_t* data, size_t n) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; ++i) {
    acc = (acc << 8) | data[i];
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kAlphabet[(acc >> bits) & 63];
    }
  }
  if (bits > 0) out += kAlphabet[(acc << (6 - bits)) & 63];
  return out;
}

std::array<uint8_t, 32> HashKey(std::string_view key) {
  return Sha256Digest(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(key.data()), key.size()));
}

}  // namespace

Status ValidateApiKeyName(const std::string& name) {
  if (name.empty() || name.size() > 63) {
    return Status::InvalidArgument("key name: must be 1 to 63 characters, got " +
                                   std::to_string(name.size()));
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (alnum || (i > 0 && (c == '-' || c == '_' || c == '.'))) continue;
    return Status::InvalidArgument(
        "key name '" + name + "': character " + std::to_string(i + 1) +
        " is not allowed (lowercase letters and digits, then also '-', '_' and '.')");
  }
  return Status();
}

Result<std::unique_ptr<ApiKeyStore>> ApiKeyStore::Open(const std::filesystem::path& dir) {
  const auto path = dir / "api_keys.db";
  SEXTANT_ASSIGN_OR_RETURN(auto db, sqlite::SqliteDb::Open(path));
  SEXTANT_RETURN_IF_ERROR(db->Exec(kSchema));
  std::unique_ptr<ApiKeyStore> store(new ApiKeyStore(std::move(db), path));
  {
    std::lock_guard<std::mutex> lock(store->mu_);
    SEXTANT_RETURN_IF_ERROR(store->LoadLocked());
  }
  return store;
}

Status ApiKeyStore::LoadLocked() const {
  SEXTANT_ASSIGN_OR_RETURN(auto version, db_->Prepare("PRAGMA data_version"));
  SEXTANT_ASSIGN_OR_RETURN(bool row, version.Step());
  const int64_t data_version = row ? version.Int(0) : -1;
  SEXTANT_ASSIGN_OR_RETURN(auto stmt,
                           db_->Prepare("SELECT name, key_sha256, deployment FROM api_keys "
                                        "WHERE revoked_at_unix_ms IS NULL ORDER BY name"));
  auto snapshot = std::make_shared<Snapshot>();
  while (true) {
    SEXTANT_ASSIGN_OR_RETURN(bool more, stmt.Step());
    if (!more) break;
    ActiveKey k;
    auto bytes = FromHex(stmt.Text(1));
    if (!bytes.ok() || bytes->size() != k.sha256.size()) {
      return Status::DataLoss(path_.string() + ": key '" + stmt.Text(0) +
                              "' has a malformed key_sha256");
    }
    std::copy(bytes->begin(), bytes->end(), k.sha256.begin());
    k.identity.name = stmt.Text(0);
    k.identity.deployment = stmt.Text(2);
    snapshot->push_back(std::move(k));
  }
  active_ = std::move(snapshot);
  data_version_ = data_version;
  return Status();
}

void ApiKeyStore::RefreshIfChanged() const {
  const int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
  int64_t due = next_check_ns_.load(std::memory_order_relaxed);
  if (now < due) return;
  const int64_t next =
      now + std::chrono::duration_cast<std::chrono::nanoseconds>(kRefreshInterval).count();
  // One caller checks; the others use the keys loaded so far.
  if (!next_check_ns_.compare_exchange_strong(due, next)) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto version = db_->Prepare("PRAGMA data_version");
  if (!version.ok()) return;
  auto row = version->Step();
  if (!row.ok() || !*row || version->Int(0) == data_version_) return;
  (void)LoadLocked();  // on error the previous keys stay in force
}

Result<std::string> ApiKeyStore::Add(const std::string& name, const std::string& deployment,
                                     const std::string& created_by) {
  SEXTANT_RETURN_IF_ERROR(ValidateApiKeyName(name));
  if (!deployment.empty()) {
    // Deployment names: [a-z0-9][a-z0-9-]{0,62} (desired_state.h).
    bool ok = deployment.size() <= 63;
    for (size_t i = 0; ok && i < deployment.size(); ++i) {
      const char c = deployment[i];
      ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && c == '-');
    }
    if (!ok) {
      return Status::InvalidArgument("--deployment '" + deployment +
                                     "' is not a deployment name ([a-z0-9][a-z0-9-]{0,62})");
    }
  }
  uint8_t secret[kSecretBytes];
  if (RAND_bytes(secret, sizeof(secret)) != 1) {
    return Status::Internal("cannot draw random bytes for a key (OpenSSL RAND_bytes)");
  }
  const std::string random = Base64Url(secret, sizeof(secret));
  OPENSSL_cleanse(secret, sizeof(secret));
  const std::string key = std::string(kApiKeyPrefix) + random;
  const std::string prefix = std::string(kApiKeyPrefix) + random.substr(0, kPrefixShown);

  std::lock_guard<std::mutex> lock(mu_);
  SEXTANT_RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE"));
  auto fail = [&](Status s) {
    (void)db_->Exec("ROLLBACK");
    return s;
  };
  auto count = db_->Prepare("SELECT COUNT(*), SUM(name = ?) FROM api_keys");
  if (!count.ok()) return fail(count.status());
  count->Bind(1, name);
  auto row = count->Step();
  if (!row.ok()) return fail(row.status());
  if (count->Int(1) > 0) {
    return fail(Status::AlreadyExists("a key named '" + name +
                                      "' exists (revoked keys keep their name); choose another"));
  }
  if (count->Int(0) >= static_cast<int64_t>(kMaxKeys)) {
    return fail(Status::ResourceExhausted("the store holds " + std::to_string(kMaxKeys) +
                                          " keys, the most it takes"));
  }
  auto insert = db_->Prepare(
      "INSERT INTO api_keys (name, key_sha256, prefix, deployment, created_at_unix_ms, "
      "created_by) VALUES (?,?,?,?,?,?)");
  if (!insert.ok()) return fail(insert.status());
  const auto hash = HashKey(key);
  insert->Bind(1, name)
      .Bind(2, ToHex(hash))
      .Bind(3, prefix)
      .Bind(4, deployment)
      .Bind(5, NowUnixMs())
      .Bind(6, created_by);
  if (Status s = insert->Run(); !s.ok()) return fail(s);
  if (Status s = db_->Exec("COMMIT"); !s.ok()) return fail(s);
  SEXTANT_RETURN_IF_ERROR(LoadLocked());
  return key;
}

Result<std::vector<ApiKeyInfo>> ApiKeyStore::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  SEXTANT_ASSIGN_OR_RETURN(
      auto stmt, db_->Prepare("SELECT name, deployment, prefix, created_at_unix_ms, created_by, "
                              "revoked_at_unix_ms IS NOT NULL, revoked_at_unix_ms FROM api_keys "
                              "ORDER BY name"));
  std::vector<ApiKeyInfo> out;
  while (true) {
    SEXTANT_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    ApiKeyInfo k;
    k.name = stmt.Text(0);
    k.deployment = stmt.Text(1);
    k.prefix = stmt.Text(2);
    k.created_at_unix_ms = stmt.Int(3);
    k.created_by = stmt.Text(4);
    if (stmt.Int(5) != 0) k.revoked_at_unix_ms = stmt.Int(6);
    out.push_back(std::move(k));
  }
  return out;
}

Status ApiKeyStore::Revoke(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  SEXTANT_RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE"));
  auto fail = [&](Status s) {
    (void)db_->Exec("ROLLBACK");
    return s;
  };
  auto find = db_->Prepare("SELECT revoked_at_unix_ms IS NOT NULL FROM api_keys WHERE name = ?");
  if (!find.ok()) return fail(find.status());
  find->Bind(1, name);
  auto row = find->Step();
  if (!row.ok()) return fail(row.status());
  if (!*row) return fail(Status::NotFound("no key named '" + name + "'"));
  if (find->Int(0) != 0) {
    return fail(Status::FailedPrecondition("the key '" + name + "' is already revoked"));
  }
  auto update = db_->Prepare(
      "UPDATE api_keys SET revoked_at_unix_ms = ? WHERE name = ? AND "
      "revoked_at_unix_ms IS NULL");
  if (!update.ok()) return fail(update.status());
  update->Bind(1, NowUnixMs()).Bind(2, name);
  if (Status s = update->Run(); !s.ok()) return fail(s);
  if (Status s = db_->Exec("COMMIT"); !s.ok()) return fail(s);
  return LoadLocked();
}

std::optional<ApiKeyIdentity> ApiKeyStore::Verify(std::string_view presented) const {
  if (presented.empty() || presented.size() > kMaxPresentedKey) return std::nullopt;
  RefreshIfChanged();
  std::shared_ptr<const Snapshot> keys;
  {
    std::lock_guard<std::mutex> lock(mu_);
    keys = active_;
  }
  const auto hash = HashKey(presented);
  const ActiveKey* match = nullptr;
  for (const ActiveKey& k : *keys) {
    // Every stored hash is compared in full, whatever matched before.
    const bool equal = CRYPTO_memcmp(k.sha256.data(), hash.data(), hash.size()) == 0;
    if (equal) match = &k;
  }
  if (match == nullptr) return std::nullopt;
  return match->identity;
}

size_t ApiKeyStore::active_keys() const {
  std::lock_guard<std::mutex> lock(mu_);
  return active_->size();
}

}  // namespace sextant::agent
