// The inference API's access as the agent sets it up, for tests and benchmarks on 127.0.0.1:
// the key store and the audit log in a state directory, one application key made the way a
// customer makes one (ApiKeyStore::Add, what `sextant-agent apikeys add` runs), and the batching
// audit writer every inference call goes through.
// Thread-safety: set up on one thread; key() and Authorize() from any.
#pragma once

#include <httplib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "app/agent/audit/audit_batcher.h"
#include "app/agent/audit/audit_log.h"
#include "app/agent/state/api_keys.h"
#include "connectors/http/inference_server.h"

namespace sextant::testing {

class ApiAccess {
 public:
  // Opens (creating) the key store and audit log in `state_dir` (which must exist) and adds a
  // key for every deployment, named "test-app" (or "test-app-N" when the store already has
  // that name). Check ok() before use.
  explicit ApiAccess(const std::filesystem::path& state_dir) {
    auto log = agent::AuditLog::Open(state_dir);
    auto keys = agent::ApiKeyStore::Open(state_dir);
    if (!log.ok() || !keys.ok()) return;
    log_ = std::move(*log);
    keys_ = std::move(*keys);
    Result<std::string> key = keys_->Add("test-app", "", "local:test");
    for (int n = 2; !key.ok() && key.status().code() == StatusCode::kAlreadyExists && n < 100;
         ++n) {
      key = keys_->Add("test-app-" + std::to_string(n), "", "local:test");
    }
    if (!key.ok()) return;
    key_ = *key;
    batcher_ = std::make_unique<agent::AuditBatcher>(*log_);
  }
  ~ApiAccess() {
    if (batcher_) batcher_->Stop();
  }

  bool ok() const { return batcher_ != nullptr; }
  const std::string& key() const { return key_; }
  agent::ApiKeyStore& keys() { return *keys_; }
  agent::AuditLog& log() { return *log_; }
  agent::AuditBatcher& audit() { return *batcher_; }

  http::InferenceServerDeps Deps(agent::ReplicaManager& replicas, agent::ServingMetrics* metrics,
                                 const agent::Registry* registry) {
    return {.replicas = &replicas,
            .keys = keys_.get(),
            .audit = batcher_.get(),
            .metrics = metrics,
            .registry = registry};
  }
  // Every request of `client` carries the key.
  void Authorize(httplib::ClientImpl& client) const { client.set_bearer_token_auth(key_); }
  void Authorize(httplib::Client& client) const { client.set_bearer_token_auth(key_); }

 private:
  std::unique_ptr<agent::AuditLog> log_;
  std::unique_ptr<agent::ApiKeyStore> keys_;
  std::unique_ptr<agent::AuditBatcher> batcher_;
  std::string key_;
};

// Options for a server on 127.0.0.1, any free port.
inline http::InferenceServerOptions LoopbackApi() {
  http::InferenceServerOptions o;
  o.listener.host = "127.0.0.1";
  o.listener.port = 0;
  return o;
}

}  // namespace sextant::testing
