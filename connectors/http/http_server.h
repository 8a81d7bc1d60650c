// HttpServer: the agent's HTTP/1.1 listener, event-driven and bounded. One I/O thread runs an
// epoll loop over every connection: it accepts, completes TLS handshakes, reads request heads
// and bodies, and writes responses, never blocking on one client. Handlers run on a bounded
// worker pool (or on the I/O thread itself when they are quick and never block: health,
// readiness, metrics), and may answer later from any thread through their HttpExchange, so a
// long generation holds no thread while it waits for tokens.
//
// What a client cannot do, by construction:
//   - hold a thread or a slot by being slow: a request head must arrive within header_timeout
//     of the connection (TLS handshake included) or of its first byte, a body within
//     body_timeout, an idle keep-alive connection closes after idle_timeout, a response the
//     client does not read within write_timeout is abandoned;
//   - open connections without bound: max_connections in all, max_connections_per_client per
//     peer address (beyond either, 503 and close);
//   - make the listener buffer without bound: a head over max_head_bytes is refused (431), a
//     body over max_body_bytes (413, before it is read), a coded body that inflates past
//     max_decoded_body_bytes (413, inflating stops there), all request bodies together over
//     max_buffered_body_bytes (503 with Retry-After), a response more than
//     max_pending_output_bytes ahead of its reader (abandoned);
//   - queue work without bound: more than max_queued_tasks requests waiting for a worker is 503.
// Request parsing rules: http_request.h. Responses are HTTP/1.1 (keep-alive unless the client
// or an error says close); streams use chunked transfer coding (HTTP/1.0: close-delimited).
//
// TLS (OpenSSL, TLS 1.2 minimum) when a certificate and key are given; with a client CA as
// well, every client must present a certificate signed by it (the handshake fails otherwise).
//
// Thread-safety: Route/SetErrorBody before Start; Start/Stop from one thread; port(), tls(),
// stats() from any thread. HttpExchange: see below.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "connectors/http/http_request.h"
#include "engine/base/status.h"

namespace sextant::http {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port (see port())
  // TLS: cert and key both set serves HTTPS; client_ca also requires client certificates.
  std::filesystem::path tls_cert;
  std::filesystem::path tls_key;
  std::filesystem::path tls_client_ca;

  int max_connections = 4096;
  int max_connections_per_client = 256;
  std::chrono::milliseconds header_timeout{10000};
  std::chrono::milliseconds idle_timeout{5000};
  std::chrono::milliseconds body_timeout{30000};
  std::chrono::milliseconds write_timeout{30000};
  size_t max_head_bytes = 16384;
  size_t max_body_bytes = 4 << 20;
  size_t max_decoded_body_bytes = 4 << 20;
  size_t max_buffered_body_bytes = 64 << 20;
  size_t max_pending_output_bytes = 8 << 20;
  int workers = 16;
  size_t max_queued_tasks = 1024;
};

struct HttpRequest {
  std::string method;
  std::string path;    // without the query string
  std::string target;  // as sent
  std::vector<HttpHeaderField> fields;
  std::string body;  // content coding removed
  std::string peer;  // the client's address (no port)

  const std::string* Header(std::string_view lowercase_name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// The answer to one request. Safe from any thread; the handler may keep it and answer later.
// Exactly one response: the first Send or StartStream wins, later ones are ignored.
class HttpExchange {
 public:
  struct Core;  // the server side it reports to
  HttpExchange(std::shared_ptr<Core> core, uint64_t connection, bool http11, bool keep_alive,
               size_t max_pending);
  ~HttpExchange();

  // A whole response.
  void Send(HttpResponse response);
  // Starts a streamed response; Write() appends, End() finishes it.
  void StartStream(int status, std::string content_type,
                   std::vector<std::pair<std::string, std::string>> headers = {});
  // False once the response is abandoned (client gone, timed out, shutdown) or when the client
  // has left more than max_pending_output_bytes unread (the response is then abandoned).
  bool Write(std::string_view data);
  void End();
  // `fn` runs once if the response is abandoned before it was fully written: on the I/O thread
  // when that happens, or at once on this thread when it already has. Keep it short.
  void OnAbandoned(std::function<void()> fn);
  bool abandoned() const;

 private:
  friend class HttpServer;
  struct State;  // shared with the connection, which outlives no handle's need of it
  std::shared_ptr<Core> core_;
  std::shared_ptr<State> state_;
};

using HttpHandler = std::function<void(HttpRequest&, std::shared_ptr<HttpExchange>)>;
// The body of a response the server itself makes (404, 408, 413, 503 ...).
using HttpErrorBody = std::function<HttpResponse(int status, const std::string& message)>;

class HttpServer {
 public:
  explicit HttpServer(HttpServerOptions options);
  // Stop().
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  enum class RunOn { kWorker, kIoThread };
  // Serves `path` (exact, query string ignored) for `method`. kIoThread handlers must return
  // quickly and never block: they run between the reads and writes of every connection.
  void Route(std::string method, std::string path, HttpHandler handler,
             RunOn run_on = RunOn::kWorker);
  void SetErrorBody(HttpErrorBody error_body);

  // Binds and starts serving. Errors: INVALID_ARGUMENT for TLS files that cannot be loaded
  // (naming the file and OpenSSL's reason), UNAVAILABLE when the address cannot be bound
  // (naming the address and the OS error, e.g. "Address already in use"). The port is never
  // shared (no SO_REUSEPORT).
  Status Start();
  int port() const;
  bool tls() const;
  // Closes the listener and every connection (open responses are abandoned), stops the
  // workers (queued requests are dropped, running handlers finish). Idempotent.
  void Stop();

  struct Stats {
    int64_t connections_open = 0;
    int64_t connections_accepted = 0;
    int64_t refused_per_client = 0;  // over max_connections_per_client
    int64_t refused_total = 0;       // over max_connections
    int64_t timed_out = 0;           // head, body or write deadline passed
    int64_t refused_busy = 0;        // worker queue or body budget full
    int64_t tls_handshake_failures = 0;
  };
  Stats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sextant::http
