// InferenceServer: the agent's HTTP API on the customer network (default 127.0.0.1:8080),
// optionally TLS, on the event-driven listener of http_server.h. It serves
//   GET  /v1/models                 the deployments the caller's key may use, OpenAI "list" form
//   POST /v1/completions            text completion, streamed (SSE) or whole
//   POST /v1/chat/completions       chat completion, streamed (SSE) or whole
//   GET  /healthz                   200 while the process is up (no key)
//   GET  /readyz                    200 when every desired deployment has a ready replica, else
//                                   503 naming the first that has none (no key)
//   GET  /metrics                   Prometheus text format 0.0.4 (the given registry); a key is
//                                   needed when options.metrics_need_key
//
// Authentication: `Authorization: Bearer KEY` with a key of the ApiKeyStore (an application's
// key stands for the policy's customer-app role); without one, or with an unknown or revoked
// one, 401 with an OpenAI-shaped error. A key scoped to a deployment gets 403 for any other.
//
// Audit: every authenticated inference call is written to the audit log (identity
// "apikey:NAME", role customer-app, rpc "POST /v1/...", target the deployment, outcome allowed
// or denied) before the prompt is looked at further, through the AuditBatcher (one fsync for
// every call that arrives meanwhile). A call whose record cannot be written is not served (503).
// Nothing from the payload (prompt, messages, output) is in a record, a log line or a label.
//
// Bounds before work: the listener's (connections, head, body, inflated body: http_server.h),
// then JSON depth and value count (openai_api.h), then the prompt is tokenized only up to the
// context length (Tokenizer::EncodeAtMost). A request goes to the least-loaded ready replica of
// the deployment named by "model"; each replica batches continuously. A full queue answers 429
// with Retry-After; a loading deployment 503 with Retry-After, a Failed one 503 with its
// reason, an unknown one 404. No thread waits on a generation: tokens are written to the client
// from the engine's thread as they come, and a client that goes away cancels its generation.
//
// Thread-safety: Start/Shutdown from one thread; requests are served on the listener's threads.
#pragma once

#include <chrono>
#include <memory>

#include "app/agent/audit/audit_batcher.h"
#include "app/agent/metrics/registry.h"
#include "app/agent/replicas/replica_manager.h"
#include "app/agent/replicas/serving_metrics.h"
#include "app/agent/state/api_keys.h"
#include "connectors/http/http_server.h"
#include "connectors/http/openai_api.h"
#include "engine/base/status.h"

namespace sextant::http {

struct InferenceServerOptions {
  HttpServerOptions listener;  // address, TLS, connection, time and size bounds
  JsonLimits json;
  bool metrics_need_key = false;  // /metrics answers 401 without a valid key
};

struct InferenceServerDeps {
  agent::ReplicaManager* replicas = nullptr;  // required
  const agent::ApiKeyStore* keys = nullptr;   // required
  agent::AuditBatcher* audit = nullptr;       // required
  agent::ServingMetrics* metrics = nullptr;   // optional: request/token/latency series
  const agent::Registry* registry = nullptr;  // optional: what /metrics renders (else 404)
};

class InferenceServer {
 public:
  // Every dependency must outlive the server.
  InferenceServer(InferenceServerOptions options, InferenceServerDeps deps);
  // Shutdown(0) when running.
  ~InferenceServer();
  InferenceServer(const InferenceServer&) = delete;
  InferenceServer& operator=(const InferenceServer&) = delete;

  // Binds and starts serving. Errors: FAILED_PRECONDITION without replicas, keys or audit;
  // HttpServer::Start's (TLS files, an address that cannot be bound, naming the OS error).
  Status Start();
  // The bound port (after Start).
  int port() const;
  bool tls() const;
  HttpServer::Stats listener_stats() const;

  // Stops accepting inference requests (new ones get 503), lets in-flight ones finish for up to
  // `grace`, cancels what remains, then closes the listener. Idempotent.
  void Shutdown(std::chrono::milliseconds grace);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sextant::http
