// InferenceServer: the agent's HTTP listener on the customer network (default port 8080),
// optionally TLS. It serves
//   GET  /v1/models                 the deployments, OpenAI "list" form
//   POST /v1/completions            text completion, streamed (SSE) or whole
//   POST /v1/chat/completions       chat completion, streamed (SSE) or whole
//   GET  /healthz                   200 while the process is up
//   GET  /readyz                    200 when every desired deployment has a ready replica, else
//                                   503 naming the first that has none
//   GET  /metrics                   Prometheus text format 0.0.4 (the given registry)
// Request formats and chat templates: openai_api.h. A request goes to the least-loaded ready
// replica of the deployment named by "model"; each replica's engine batches concurrent requests
// continuously. When the replica's queue is full the answer is 429 with Retry-After (seconds,
// estimated from recent request durations); a deployment that is loading answers 503 with
// Retry-After, a Failed one 503 with its reason, an unknown one 404.
//
// Nothing from a request's payload (prompt, messages, output) is written to a log line or a
// metric label: logs carry the deployment, status, token counts and timings only.
//
// Thread-safety: Start/Shutdown from one thread; requests are served on the server's own pool.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "app/agent/metrics/registry.h"
#include "app/agent/replicas/replica_manager.h"
#include "app/agent/replicas/serving_metrics.h"
#include "engine/base/status.h"

namespace sextant::http {

struct InferenceServerOptions {
  std::string host = "0.0.0.0";
  int port = 8080;  // 0: any free port (see InferenceServer::port())
  // TLS: both set serves HTTPS; both empty serves plain HTTP; one alone is an error.
  std::filesystem::path tls_cert;
  std::filesystem::path tls_key;
  int connection_threads = 128;  // connections served at once (each stream holds one)
  int keep_alive_seconds = 5;
  size_t max_body_bytes = 4 << 20;
};

class InferenceServer {
 public:
  // `replicas` must outlive the server. `metrics` (request/token/latency series) and `registry`
  // (what /metrics renders) may be null: no recording / 404 at /metrics.
  InferenceServer(InferenceServerOptions options, agent::ReplicaManager& replicas,
                  agent::ServingMetrics* metrics, const agent::Registry* registry);
  // Shutdown(0) when running.
  ~InferenceServer();
  InferenceServer(const InferenceServer&) = delete;
  InferenceServer& operator=(const InferenceServer&) = delete;

  // Binds and starts serving on a background thread. Errors: INVALID_ARGUMENT for a TLS
  // cert/key that cannot be loaded (naming the file), UNAVAILABLE when the address cannot be
  // bound (naming it).
  Status Start();
  // The bound port (after Start).
  int port() const;
  bool tls() const;

  // Stops accepting inference requests (new ones get 503), lets in-flight ones finish for up to
  // `grace`, cancels what remains, then closes the listener. Idempotent.
  void Shutdown(std::chrono::milliseconds grace);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sextant::http
