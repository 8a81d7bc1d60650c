// The agent's HTTP/1.1 listener: one epoll loop (the I/O thread) and a bounded worker pool. See
// http_server.h for what it guarantees; the comments here say how.
#include "connectors/http/http_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace sextant::http {

namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kListenerId = 0;
constexpr uint64_t kWakeId = 1;
constexpr uint64_t kFirstConnectionId = 2;
constexpr size_t kReadChunk = 16 * 1024;
constexpr auto kScanInterval = std::chrono::milliseconds(100);
constexpr auto kAcceptPause = std::chrono::milliseconds(100);
// After an error response the connection reads (and drops) what the client still sends for a
// moment, so the client sees the response instead of a reset.
constexpr auto kLinger = std::chrono::milliseconds(1000);
constexpr size_t kLingerBytes = 1 << 20;

std::string OsError(int err) { return std::strerror(err); }

std::string OpenSslError() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

std::string AddressText(const sockaddr_storage& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (a.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(a).sin_addr, buf, sizeof(buf));
  } else if (a.ss_family == AF_INET6) {
    const auto& a6 = reinterpret_cast<const sockaddr_in6&>(a);
    if (IN6_IS_ADDR_V4MAPPED(&a6.sin6_addr)) {
      inet_ntop(AF_INET, &a6.sin6_addr.s6_addr[12], buf, sizeof(buf));
    } else {
      inet_ntop(AF_INET6, &a6.sin6_addr, buf, sizeof(buf));
    }
  }
  return buf;
}

bool SafeHeaderText(std::string_view s) {
  return s.find_first_of("\r\n") == std::string_view::npos;
}

std::string FormatHead(int status, std::string_view content_type,
                       const std::vector<std::pair<std::string, std::string>>& headers,
                       bool keep_alive, std::string_view framing) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " ";
  out += ReasonPhrase(status);
  out += "\r\n";
  if (!content_type.empty() && SafeHeaderText(content_type)) {
    out += "Content-Type: ";
    out += content_type;
    out += "\r\n";
  }
  for (const auto& [name, value] : headers) {
    if (!SafeHeaderText(name) || !SafeHeaderText(value) || name.empty()) continue;
    out += name + ": " + value + "\r\n";
  }
  out += framing;
  out += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  return out;
}

// A bounded pool: TrySubmit refuses when max_queue tasks wait.
class WorkerPool {
 public:
  WorkerPool(int threads, size_t max_queue) : max_queue_(max_queue) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
  }
  ~WorkerPool() { Stop(); }

  bool TrySubmit(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ || queue_.size() >= max_queue_) return false;
      queue_.push_back(std::move(task));
    }
    cv_.notify_one();
    return true;
  }
  // Drops what is queued; running tasks finish.
  void Stop() {
    std::deque<std::function<void()>> dropped;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      dropped.swap(queue_);
    }
    cv_.notify_all();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
    threads_.clear();
  }

 private:
  void Run() {
    while (true) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();
    }
  }

  const size_t max_queue_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // GUARDED_BY(mu_)
  bool stopping_ = false;                    // GUARDED_BY(mu_)
  std::vector<std::thread> threads_;
};

}  // namespace

// ---- HttpExchange -------------------------------------------------------------------------------

// What exchanges share with the I/O thread: the connections that have news for it. Outlives the
// server while an exchange holds it (an engine thread may answer after Stop()).
struct HttpExchange::Core {
  std::mutex mu;
  std::vector<uint64_t> ready;  // GUARDED_BY(mu)
  int wake_fd = -1;
  std::atomic<bool> stopped{false};

  Core() { wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }
  ~Core() {
    if (wake_fd >= 0) ::close(wake_fd);
  }
  void Notify(uint64_t connection) {
    if (stopped.load()) return;
    {
      std::lock_guard<std::mutex> lock(mu);
      ready.push_back(connection);
    }
    const uint64_t one = 1;
    (void)!::write(wake_fd, &one, sizeof(one));
  }
};

struct HttpExchange::State {
  uint64_t connection = 0;
  bool http11 = true;
  bool keep_alive = true;
  size_t max_pending = 0;

  mutable std::mutex mu;
  std::string out;           // GUARDED_BY(mu): formatted bytes the I/O thread has not taken
  bool responded = false;    // GUARDED_BY(mu)
  bool chunked = false;      // GUARDED_BY(mu)
  bool streaming = false;    // GUARDED_BY(mu)
  bool ended = false;        // GUARDED_BY(mu): the response is complete
  bool close_after = false;  // GUARDED_BY(mu)
  bool abandoned = false;    // GUARDED_BY(mu)
  bool notified = false;     // GUARDED_BY(mu): the connection is in the core's ready list
  bool give_up = false;      // GUARDED_BY(mu): the client fell too far behind; close now
  std::function<void()> on_abandoned;  // GUARDED_BY(mu)
  std::atomic<size_t> unsent{0};       // bytes the I/O thread holds and has not written
};

HttpExchange::HttpExchange(std::shared_ptr<Core> core, uint64_t connection, bool http11,
                           bool keep_alive, size_t max_pending)
    : core_(std::move(core)), state_(std::make_shared<State>()) {
  state_->connection = connection;
  state_->http11 = http11;
  state_->keep_alive = keep_alive && http11;
  state_->max_pending = max_pending;
}

HttpExchange::~HttpExchange() {
  // A handler that dropped its exchange without answering: the client gets a 500, not silence.
  bool notify = false;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (!state_->responded && !state_->abandoned) {
      state_->responded = state_->ended = true;
      state_->close_after = true;
      state_->out =
          FormatHead(500, "text/plain", {}, false, "Content-Length: 15\r\n") + "internal error\n";
      notify = !state_->notified;
    } else if (state_->streaming && !state_->ended && !state_->abandoned) {
      // A stream nobody will finish: close the connection at its end.
      state_->ended = true;
      state_->close_after = true;
      notify = !state_->notified;
    }
  }
  if (notify) core_->Notify(state_->connection);
}

void HttpExchange::Send(HttpResponse r) {
  bool notify = false;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (state_->responded || state_->abandoned) return;
    state_->responded = state_->ended = true;
    state_->close_after = !state_->keep_alive;
    state_->out = FormatHead(r.status, r.content_type, r.headers, state_->keep_alive,
                             "Content-Length: " + std::to_string(r.body.size()) + "\r\n");
    state_->out += r.body;
    notify = !std::exchange(state_->notified, true);
  }
  if (notify) core_->Notify(state_->connection);
}

void HttpExchange::StartStream(int status, std::string content_type,
                               std::vector<std::pair<std::string, std::string>> headers) {
  bool notify = false;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (state_->responded || state_->abandoned) return;
    state_->responded = state_->streaming = true;
    state_->chunked = state_->http11;
    // HTTP/1.0 has no chunked coding: the end of the stream is the end of the connection.
    state_->close_after = !state_->keep_alive || !state_->chunked;
    state_->out = FormatHead(status, content_type, headers, !state_->close_after,
                             state_->chunked ? "Transfer-Encoding: chunked\r\n" : "");
    notify = !std::exchange(state_->notified, true);
  }
  if (notify) core_->Notify(state_->connection);
}

bool HttpExchange::Write(std::string_view data) {
  bool notify = false;
  bool abandon = false;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (state_->abandoned || state_->give_up || !state_->streaming || state_->ended) return false;
    if (data.empty()) return true;
    if (state_->out.size() + state_->unsent.load() + data.size() > state_->max_pending) {
      // The client reads more slowly than the response is made: give up on it (the I/O thread
      // closes the connection, which abandons the response).
      abandon = true;
      state_->give_up = true;
    } else if (state_->chunked) {
      char size[24];
      std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
      state_->out += size;
      state_->out += data;
      state_->out += "\r\n";
    } else {
      state_->out += data;
    }
    notify = !std::exchange(state_->notified, true);
  }
  if (notify) core_->Notify(state_->connection);
  return !abandon;
}

void HttpExchange::End() {
  bool notify = false;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (state_->abandoned || !state_->streaming || state_->ended) return;
    state_->ended = true;
    if (state_->chunked) state_->out += "0\r\n\r\n";
    notify = !std::exchange(state_->notified, true);
  }
  if (notify) core_->Notify(state_->connection);
}

void HttpExchange::OnAbandoned(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (!state_->abandoned) {
      state_->on_abandoned = std::move(fn);
      return;
    }
  }
  if (fn) fn();
}

bool HttpExchange::abandoned() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->abandoned;
}

const std::string* HttpRequest::Header(std::string_view lowercase_name) const {
  for (const HttpHeaderField& f : fields) {
    if (f.name == lowercase_name) return &f.value;
  }
  return nullptr;
}

// ---- HttpServer ---------------------------------------------------------------------------------

struct HttpServer::Impl {
  enum class Phase {
    kHandshake,  // TLS handshake (counts against the head deadline)
    kHead,       // reading a request head
    kBody,       // reading a body of a known length
    kHandling,   // a handler has the request; its response is written as it comes
    kClosing,    // an error response is written, then the connection lingers and closes
  };

  // One client connection; touched by the I/O thread only. Closed connections stay in
  // `connections` (closed = true, descriptor gone) until the end of the loop iteration, so no
  // code path is left holding a destroyed one.
  struct Connection {
    uint64_t id = 0;
    int fd = -1;
    SSL* ssl = nullptr;
    std::string peer;
    bool closed = false;
    Phase phase = Phase::kHead;
    std::string in;   // bytes read and not consumed
    std::string out;  // bytes to write, from out_offset
    size_t out_offset = 0;
    RequestHead head;
    size_t body_reserved = 0;         // counted against max_buffered_body_bytes while held here
    Clock::time_point deadline;       // of the handshake, head, body or closing phase
    Clock::time_point last_progress;  // last time bytes were written
    bool request_started = false;     // a byte of the current request has arrived
    bool peer_closed = false;         // the client shut its side after a complete request
    bool shut_write = false;          // kClosing: our side is shut, input is being drained
    size_t lingered = 0;
    std::shared_ptr<HttpExchange::State> exchange;  // kHandling
    bool tls_read_wants_write = false;
    bool tls_write_wants_read = false;
    bool tls_handshake_wants_write = false;
    uint32_t events = 0;  // current epoll interest
  };

  struct RouteEntry {
    std::string method;
    std::string path;
    HttpHandler handler;
    RunOn run_on;
  };

  HttpServerOptions options;
  HeadLimits head_limits;
  std::vector<RouteEntry> routes;
  HttpErrorBody error_body;
  std::shared_ptr<HttpExchange::Core> core = std::make_shared<HttpExchange::Core>();

  SSL_CTX* ssl_ctx = nullptr;
  int listen_fd = -1;
  int epoll_fd = -1;
  int bound_port = 0;
  std::thread io;
  std::unique_ptr<WorkerPool> workers;
  std::atomic<bool> stopping{false};
  bool started = false;
  bool stopped = false;

  // I/O thread only.
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> connections;
  std::unordered_map<std::string, int> per_client;
  std::vector<uint64_t> closed_ids;  // to erase at the end of the iteration
  std::vector<uint64_t> resume;      // keep-alive connections whose next request may be buffered
  uint64_t next_id = kFirstConnectionId;
  bool accept_paused = false;
  Clock::time_point accept_resume;

  std::atomic<size_t> body_bytes{0};  // request bodies held, all connections together

  struct Counters {
    std::atomic<int64_t> open{0}, accepted{0}, refused_per_client{0}, refused_total{0},
        timed_out{0}, refused_busy{0}, tls_failures{0};
  } counters;

  explicit Impl(HttpServerOptions o) : options(std::move(o)) {
    head_limits.max_bytes = options.max_head_bytes;
  }
  ~Impl() {
    if (ssl_ctx != nullptr) SSL_CTX_free(ssl_ctx);
    if (epoll_fd >= 0) ::close(epoll_fd);
    if (listen_fd >= 0) ::close(listen_fd);
  }

  Status MakeTlsContext();
  Status Listen();
  void Loop();
  void AcceptAll();
  void Refuse(int fd, const std::string& message);
  void OnEvent(Connection& c, uint32_t events);
  void Handshake(Connection& c);
  // Reads what is available, up to what the phase can use.
  void ReadInput(Connection& c);
  ssize_t ReadSome(Connection& c, char* buf, size_t n);
  ssize_t WriteSome(Connection& c, const char* buf, size_t n);
  void Process(Connection& c);
  void Dispatch(Connection& c, std::string body);
  void TakeOutput(Connection& c);
  void Flush(Connection& c);
  void FinishResponse(Connection& c);
  void RespondError(Connection& c, int status, const std::string& message,
                    std::vector<std::pair<std::string, std::string>> headers = {});
  void Linger(Connection& c);
  void Close(Connection& c);
  void UpdateInterest(Connection& c);
  void ScanDeadlines();
  void DrainReady();
  void ResumeKeepAlive();
  void ReleaseBody(size_t n) { body_bytes.fetch_sub(n); }
  void ForgetPeer(const std::string& peer) {
    auto it = per_client.find(peer);
    if (it != per_client.end() && --it->second <= 0) per_client.erase(it);
  }
  HttpResponse ErrorResponse(int status, const std::string& message) const {
    if (error_body) return error_body(status, message);
    return {status, "text/plain", {}, message + "\n"};
  }
  const RouteEntry* FindRoute(const std::string& method, const std::string& path,
                              bool* path_known) const {
    *path_known = false;
    for (const RouteEntry& r : routes) {
      if (r.path != path) continue;
      *path_known = true;
      if (r.method == method) return &r;
    }
    return nullptr;
  }
};

Status HttpServer::Impl::MakeTlsContext() {
  for (const auto& f : {options.tls_cert, options.tls_key}) {
    if (!std::filesystem::is_regular_file(f)) {
      return Status::InvalidArgument("http TLS file " + f.string() + " does not exist");
    }
  }
  ssl_ctx = SSL_CTX_new(TLS_server_method());
  if (ssl_ctx == nullptr) return Status::Internal("http TLS: " + OpenSslError());
  SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(
      ssl_ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_use_certificate_chain_file(ssl_ctx, options.tls_cert.c_str()) != 1) {
    return Status::InvalidArgument("http TLS: cannot load certificate " +
                                   options.tls_cert.string() + ": " + OpenSslError());
  }
  if (SSL_CTX_use_PrivateKey_file(ssl_ctx, options.tls_key.c_str(), SSL_FILETYPE_PEM) != 1) {
    return Status::InvalidArgument("http TLS: cannot load key " + options.tls_key.string() + ": " +
                                   OpenSslError());
  }
  if (SSL_CTX_check_private_key(ssl_ctx) != 1) {
    return Status::InvalidArgument("http TLS: key " + options.tls_key.string() +
                                   " does not match certificate " + options.tls_cert.string());
  }
  if (!options.tls_client_ca.empty()) {
    if (!std::filesystem::is_regular_file(options.tls_client_ca) ||
        SSL_CTX_load_verify_locations(ssl_ctx, options.tls_client_ca.c_str(), nullptr) != 1) {
      return Status::InvalidArgument("http TLS: cannot load client CA " +
                                     options.tls_client_ca.string() + ": " + OpenSslError());
    }
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.tls_client_ca.c_str());
    if (names != nullptr) SSL_CTX_set_client_CA_list(ssl_ctx, names);
    SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  return Status();
}

Status HttpServer::Impl::Listen() {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string address = options.host + ":" + std::to_string(options.port);
  const std::string port = std::to_string(options.port);
  if (int rc = ::getaddrinfo(options.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return Status::Unavailable("http listener: cannot resolve " + address + ": " +
                               ::gai_strerror(rc));
  }
  std::string why = "no address";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      why = OsError(errno);
      continue;
    }
    // SO_REUSEADDR lets a restarted agent bind while old connections sit in TIME_WAIT; on Linux
    // it never lets two listeners share a port. SO_REUSEPORT (which would) is left off.
    const int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, SOMAXCONN) != 0) {
      why = OsError(errno);
      ::close(fd);
      continue;
    }
    sockaddr_storage bound{};
    socklen_t len = sizeof(bound);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
    bound_port =
        ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6&>(bound).sin6_port
                                          : reinterpret_cast<sockaddr_in&>(bound).sin_port);
    listen_fd = fd;
    break;
  }
  ::freeaddrinfo(found);
  if (listen_fd < 0) {
    return Status::Unavailable("http listener: cannot bind " + address + ": " + why);
  }
  return Status();
}

void HttpServer::Impl::Loop() {
  epoll_event events[256];
  Clock::time_point next_scan = Clock::now() + kScanInterval;
  while (!stopping.load()) {
    const int timeout = resume.empty() ? static_cast<int>(kScanInterval.count()) : 0;
    const int n = ::epoll_wait(epoll_fd, events, 256, timeout);
    for (int i = 0; i < n; ++i) {
      const uint64_t id = events[i].data.u64;
      if (id == kListenerId) {
        AcceptAll();
      } else if (id == kWakeId) {
        uint64_t count = 0;
        (void)!::read(core->wake_fd, &count, sizeof(count));
      } else {
        auto it = connections.find(id);
        if (it != connections.end() && !it->second->closed) {
          OnEvent(*it->second, events[i].events);
        }
      }
    }
    DrainReady();
    ResumeKeepAlive();
    const Clock::time_point now = Clock::now();
    if (now >= next_scan) {
      ScanDeadlines();
      next_scan = now + kScanInterval;
    }
    if (accept_paused && now >= accept_resume) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = kListenerId;
      if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &ev) == 0) accept_paused = false;
    }
    for (uint64_t id : closed_ids) connections.erase(id);
    closed_ids.clear();
  }
  core->stopped = true;
  for (auto& [id, c] : connections) {
    if (!c->closed) Close(*c);
  }
  connections.clear();
  closed_ids.clear();
  ::close(listen_fd);
  listen_fd = -1;
}

void HttpServer::Impl::AcceptAll() {
  for (int i = 0; i < 256; ++i) {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    const int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors: stop polling the listener for a moment rather than spin on it.
        ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, listen_fd, nullptr);
        accept_paused = true;
        accept_resume = Clock::now() + kAcceptPause;
        ++counters.refused_total;
      }
      return;
    }
    const std::string peer = AddressText(addr);
    const int open = static_cast<int>(connections.size() - closed_ids.size());
    if (open >= options.max_connections) {
      ++counters.refused_total;
      Refuse(fd, "the listener is at its connection limit");
      continue;
    }
    auto known = per_client.find(peer);
    if (known != per_client.end() && known->second >= options.max_connections_per_client) {
      ++counters.refused_per_client;
      Refuse(fd, "too many connections from your address (the limit is " +
                     std::to_string(options.max_connections_per_client) + ")");
      continue;
    }
    const int yes = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
    auto c = std::make_unique<Connection>();
    c->id = next_id++;
    c->fd = fd;
    c->peer = peer;
    c->deadline = Clock::now() + options.header_timeout;
    c->phase = Phase::kHead;
    if (ssl_ctx != nullptr) {
      c->ssl = SSL_new(ssl_ctx);
      if (c->ssl == nullptr || SSL_set_fd(c->ssl, fd) != 1) {
        if (c->ssl != nullptr) SSL_free(c->ssl);
        ::close(fd);
        continue;
      }
      SSL_set_accept_state(c->ssl);
      c->phase = Phase::kHandshake;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = c->id;
    c->events = ev.events;
    if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      if (c->ssl != nullptr) SSL_free(c->ssl);
      ::close(fd);
      continue;
    }
    ++per_client[peer];
    ++counters.accepted;
    ++counters.open;
    connections.emplace(c->id, std::move(c));
  }
}

void HttpServer::Impl::Refuse(int fd, const std::string& message) {
  // Plain HTTP gets a 503 it can read (best effort: the socket is new and non-blocking); a TLS
  // client would only see bytes it cannot decrypt, so it is closed without one.
  if (ssl_ctx == nullptr) {
    HttpResponse r = ErrorResponse(503, message);
    r.headers.emplace_back("Retry-After", "1");
    const std::string text =
        FormatHead(503, r.content_type, r.headers, false,
                   "Content-Length: " + std::to_string(r.body.size()) + "\r\n") +
        r.body;
    (void)!::send(fd, text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::shutdown(fd, SHUT_WR);
  }
  ::close(fd);
}

void HttpServer::Impl::OnEvent(Connection& c, uint32_t events) {
  if ((events & EPOLLERR) != 0) {
    Close(c);
    return;
  }
  if (c.phase == Phase::kHandling &&
      ((events & EPOLLHUP) != 0 || (!c.peer_closed && (events & EPOLLRDHUP) != 0))) {
    // The client went away while its response was being made (a client that only shut its
    // sending side after a complete request still gets the answer).
    Close(c);
    return;
  }
  if ((events & EPOLLOUT) != 0 || (c.tls_write_wants_read && (events & EPOLLIN) != 0)) {
    if (c.phase == Phase::kHandshake) {
      Handshake(c);
    } else if (!c.out.empty()) {
      Flush(c);
    }
    if (c.closed) return;
  }
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) != 0 ||
      (c.tls_read_wants_write && (events & EPOLLOUT) != 0)) {
    switch (c.phase) {
      case Phase::kHandshake:
        Handshake(c);
        return;
      case Phase::kHead:
      case Phase::kBody:
        ReadInput(c);
        if (!c.closed) Process(c);
        return;
      case Phase::kClosing:
        Linger(c);
        return;
      case Phase::kHandling:
        return;
    }
  }
}

void HttpServer::Impl::Handshake(Connection& c) {
  ERR_clear_error();
  const int r = SSL_do_handshake(c.ssl);
  if (r == 1) {
    c.phase = Phase::kHead;
    c.tls_handshake_wants_write = false;
    // The client may have sent its request with the last handshake flight.
    ReadInput(c);
    if (!c.closed) Process(c);
    return;
  }
  const int e = SSL_get_error(c.ssl, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    c.tls_handshake_wants_write = e == SSL_ERROR_WANT_WRITE;
    UpdateInterest(c);
    return;
  }
  ++counters.tls_failures;
  Close(c);
}

ssize_t HttpServer::Impl::ReadSome(Connection& c, char* buf, size_t n) {
  if (c.ssl == nullptr) {
    const ssize_t r = ::recv(c.fd, buf, n, 0);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return -2;
    return r;
  }
  ERR_clear_error();
  c.tls_read_wants_write = false;
  const int r = SSL_read(c.ssl, buf, static_cast<int>(std::min<size_t>(n, INT32_MAX)));
  if (r > 0) return r;
  switch (SSL_get_error(c.ssl, r)) {
    case SSL_ERROR_WANT_READ:
      return -2;
    case SSL_ERROR_WANT_WRITE:
      c.tls_read_wants_write = true;
      return -2;
    case SSL_ERROR_ZERO_RETURN:
      return 0;
    default:
      return -1;
  }
}

ssize_t HttpServer::Impl::WriteSome(Connection& c, const char* buf, size_t n) {
  if (c.ssl == nullptr) {
    const ssize_t r = ::send(c.fd, buf, n, MSG_NOSIGNAL);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return -2;
    return r;
  }
  ERR_clear_error();
  c.tls_write_wants_read = false;
  const int r = SSL_write(c.ssl, buf, static_cast<int>(std::min<size_t>(n, 1 << 20)));
  if (r > 0) return r;
  switch (SSL_get_error(c.ssl, r)) {
    case SSL_ERROR_WANT_WRITE:
      return -2;
    case SSL_ERROR_WANT_READ:
      c.tls_write_wants_read = true;
      return -2;
    default:
      return -1;
  }
}

void HttpServer::Impl::ReadInput(Connection& c) {
  if (c.peer_closed) return;
  // No more than the phase can use: the head's limit, or the rest of the body and a head's
  // worth of a request pipelined behind it.
  const size_t want = c.phase == Phase::kBody ? c.head.content_length + options.max_head_bytes
                                              : options.max_head_bytes + 1;
  char buf[kReadChunk];
  // Bounded per event, so one fast client cannot starve the others.
  for (int i = 0; i < 64 && c.in.size() < want; ++i) {
    const ssize_t r = ReadSome(c, buf, std::min(sizeof(buf), want - c.in.size()));
    if (r == -2) break;
    if (r < 0 || (r == 0 && c.in.empty() && c.phase == Phase::kHead)) {
      Close(c);  // reset, or closed between requests
      return;
    }
    if (r == 0) {
      // Closed (or half-closed) in the middle of a request: what is complete is still served.
      c.peer_closed = true;
      c.head.keep_alive = false;
      break;
    }
    if (!c.request_started && c.phase == Phase::kHead) {
      c.request_started = true;
      c.deadline = Clock::now() + options.header_timeout;
    }
    c.in.append(buf, static_cast<size_t>(r));
  }
  UpdateInterest(c);
}

void HttpServer::Impl::Process(Connection& c) {
  if (c.phase == Phase::kHead) {
    HttpError error{0, ""};
    const size_t end = FindHeadEnd(c.in, head_limits, &error);
    if (end == 0) {
      if (error.status != 0) {
        RespondError(c, error.status, error.message);
      } else if (c.peer_closed) {
        Close(c);  // the client left before its head was complete
      }
      return;
    }
    if (!ParseRequestHead(std::string_view(c.in).substr(0, end), head_limits, &c.head, &error)) {
      RespondError(c, error.status, error.message);
      return;
    }
    c.in.erase(0, end);
    if (c.peer_closed) c.head.keep_alive = false;
    const RequestHead& h = c.head;
    bool path_known = false;
    if (FindRoute(h.method, h.path, &path_known) == nullptr) {
      // The body (if any) is not read: the connection closes after the answer.
      if (path_known) {
        std::string allowed;
        for (const RouteEntry& r : routes) {
          if (r.path == h.path) allowed += (allowed.empty() ? "" : ", ") + r.method;
        }
        RespondError(c, 405, h.method + " is not served at " + h.path, {{"Allow", allowed}});
      } else {
        RespondError(c, 404, "no such route");
      }
      return;
    }
    if (h.content_length > options.max_body_bytes) {
      RespondError(
          c, 413,
          "the request body is larger than " + std::to_string(options.max_body_bytes) + " bytes");
      return;
    }
    const std::string& coding = h.content_encoding;
    const bool coded = !coding.empty() && coding != "identity";
    if (coded && coding != "gzip" && coding != "x-gzip" && coding != "deflate") {
      RespondError(
          c, 415,
          "content coding '" + coding.substr(0, 32) + "' is not accepted (gzip, deflate or none)");
      return;
    }
    // The body, and what it may inflate to, are counted before a byte of it is read.
    const size_t reserve =
        static_cast<size_t>(h.content_length) + (coded ? options.max_decoded_body_bytes : 0);
    if (body_bytes.fetch_add(reserve) + reserve > options.max_buffered_body_bytes) {
      body_bytes.fetch_sub(reserve);
      ++counters.refused_busy;
      RespondError(c, 503, "too many request bodies in flight; retry shortly",
                   {{"Retry-After", "1"}});
      return;
    }
    c.body_reserved = reserve;
    c.phase = Phase::kBody;
    c.deadline = Clock::now() + options.body_timeout;
    if (c.in.size() < h.content_length) {
      c.in.reserve(static_cast<size_t>(h.content_length) + options.max_head_bytes);
      if (h.expect_continue) {
        c.out += "HTTP/1.1 100 Continue\r\n\r\n";
        Flush(c);
        if (c.closed) return;
      }
      ReadInput(c);
      if (c.closed) return;
    }
  }
  if (c.phase == Phase::kBody) {
    if (c.in.size() < c.head.content_length) {
      if (c.peer_closed) Close(c);  // the body will never be complete
      return;
    }
    // The body leaves the connection's buffer without a copy when nothing follows it; a large
    // buffer is not kept for the next request.
    std::string body;
    if (c.in.size() == c.head.content_length) {
      body.swap(c.in);
    } else {
      body = c.in.substr(0, c.head.content_length);
      c.in.erase(0, c.head.content_length);
      if (c.in.capacity() > 4 * options.max_head_bytes) c.in.shrink_to_fit();
    }
    Dispatch(c, std::move(body));
  }
}

void HttpServer::Impl::Dispatch(Connection& c, std::string body) {
  bool path_known = false;
  const RouteEntry* route = FindRoute(c.head.method, c.head.path, &path_known);
  c.phase = Phase::kHandling;
  auto exchange = std::make_shared<HttpExchange>(
      core, c.id, c.head.minor_version == 1, c.head.keep_alive, options.max_pending_output_bytes);
  c.exchange = exchange->state_;
  auto request = std::make_shared<HttpRequest>();
  request->method = c.head.method;
  request->path = c.head.path;
  request->target = c.head.target;
  request->fields = std::move(c.head.fields);
  request->peer = c.peer;
  const std::string coding = c.head.content_encoding;
  const size_t reserved = std::exchange(c.body_reserved, 0);
  const size_t max_decoded = options.max_decoded_body_bytes;
  auto run = [this, handler = route->handler, request, exchange, coding, reserved, max_decoded,
              body = std::move(body)]() mutable {
    HttpError error;
    if (!DecodeContent(coding, std::move(body), max_decoded, &request->body, &error)) {
      exchange->Send(ErrorResponse(error.status, error.message));
    } else {
      try {
        handler(*request, exchange);
      } catch (const std::exception&) {
        exchange->Send(ErrorResponse(500, "internal error"));
      }
    }
    request.reset();
    exchange.reset();
    ReleaseBody(reserved);
  };
  UpdateInterest(c);
  if (route->run_on == RunOn::kIoThread) {
    run();  // its answer is taken below (DrainReady)
    return;
  }
  if (!workers->TrySubmit(std::move(run))) {
    ReleaseBody(reserved);
    ++counters.refused_busy;
    HttpResponse r = ErrorResponse(503, "the server is busy; retry shortly");
    r.headers.emplace_back("Retry-After", "1");
    exchange->Send(std::move(r));
  }
}

// Moves what the exchange has formatted into the connection and writes it.
void HttpServer::Impl::TakeOutput(Connection& c) {
  if (!c.exchange) return;
  HttpExchange::State& s = *c.exchange;
  bool give_up = false;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.notified = false;
    give_up = s.give_up;
    if (c.out.empty()) {
      // The write deadline counts from when there is something to write.
      if (!s.out.empty()) c.last_progress = Clock::now();
      c.out.swap(s.out);
      c.out_offset = 0;
    } else {
      c.out += s.out;
      s.out.clear();
    }
    if (s.close_after) c.head.keep_alive = false;
  }
  if (give_up) {
    Close(c);  // abandons the response
    return;
  }
  Flush(c);
}

void HttpServer::Impl::Flush(Connection& c) {
  while (c.out_offset < c.out.size()) {
    const ssize_t r = WriteSome(c, c.out.data() + c.out_offset, c.out.size() - c.out_offset);
    if (r == -2) break;
    if (r <= 0) {
      Close(c);
      return;
    }
    c.out_offset += static_cast<size_t>(r);
    c.last_progress = Clock::now();
  }
  if (c.out_offset == c.out.size()) {
    c.out.clear();
    c.out_offset = 0;
  } else if (c.out_offset > (1 << 20)) {
    c.out.erase(0, c.out_offset);
    c.out_offset = 0;
  }
  if (c.exchange) c.exchange->unsent = c.out.size() - c.out_offset;
  if (c.phase == Phase::kClosing && c.out.empty() && !c.shut_write) {
    // The error response is out: stop writing, read what the client still sends for a moment.
    c.shut_write = true;
    if (c.ssl != nullptr) {
      SSL_shutdown(c.ssl);
    } else {
      ::shutdown(c.fd, SHUT_WR);
    }
    c.deadline = Clock::now() + kLinger;
    if (c.peer_closed) {
      Close(c);
      return;
    }
  }
  if (c.phase == Phase::kHandling && c.exchange && c.out.empty()) {
    bool ended = false;
    {
      std::lock_guard<std::mutex> lock(c.exchange->mu);
      ended = c.exchange->ended && c.exchange->out.empty();
    }
    if (ended) {
      FinishResponse(c);
      return;
    }
  }
  UpdateInterest(c);
}

void HttpServer::Impl::FinishResponse(Connection& c) {
  c.exchange.reset();
  if (!c.head.keep_alive) {
    c.phase = Phase::kClosing;
    c.deadline = Clock::now() + kLinger;
    Flush(c);  // shuts the write side and lingers
    return;
  }
  // Keep-alive: the next request, which may already be buffered (resumed from the loop, not
  // from here, so pipelined requests never nest).
  c.phase = Phase::kHead;
  c.head = RequestHead();
  c.request_started = !c.in.empty();
  c.deadline = Clock::now() + (c.request_started ? options.header_timeout : options.idle_timeout);
  UpdateInterest(c);
  resume.push_back(c.id);
}

void HttpServer::Impl::ResumeKeepAlive() {
  std::vector<uint64_t> ids;
  ids.swap(resume);
  for (uint64_t id : ids) {
    auto it = connections.find(id);
    if (it == connections.end() || it->second->closed) continue;
    Connection& c = *it->second;
    if (c.phase != Phase::kHead) continue;
    ReadInput(c);  // TLS may hold decrypted bytes that epoll cannot see
    if (!c.closed && !c.in.empty()) Process(c);
  }
}

void HttpServer::Impl::RespondError(Connection& c, int status, const std::string& message,
                                    std::vector<std::pair<std::string, std::string>> headers) {
  if (c.body_reserved > 0) ReleaseBody(std::exchange(c.body_reserved, 0));
  HttpResponse r = ErrorResponse(status, message);
  for (auto& h : headers) r.headers.push_back(std::move(h));
  c.out.erase(0, c.out_offset);
  c.out_offset = 0;
  c.out += FormatHead(status, r.content_type, r.headers, false,
                      "Content-Length: " + std::to_string(r.body.size()) + "\r\n") +
           r.body;
  c.phase = Phase::kClosing;
  c.in.clear();
  c.deadline = Clock::now() + options.write_timeout;
  Flush(c);
}

void HttpServer::Impl::Linger(Connection& c) {
  char buf[kReadChunk];
  while (c.lingered < kLingerBytes) {
    const ssize_t r = ReadSome(c, buf, sizeof(buf));
    if (r == -2) {
      UpdateInterest(c);
      return;
    }
    if (r < 0) {
      Close(c);
      return;
    }
    if (r == 0) {
      c.peer_closed = true;
      break;
    }
    c.lingered += static_cast<size_t>(r);
  }
  if (c.shut_write || c.lingered >= kLingerBytes) {
    Close(c);
    return;
  }
  UpdateInterest(c);  // the error response is still being written
}

void HttpServer::Impl::Close(Connection& c) {
  if (c.closed) return;
  c.closed = true;
  if (c.exchange) {
    std::function<void()> on_abandoned;
    {
      HttpExchange::State& s = *c.exchange;
      std::lock_guard<std::mutex> lock(s.mu);
      const bool finished = s.ended && s.out.empty() && c.out.empty() && !s.give_up;
      if (!finished) {
        s.abandoned = true;
        on_abandoned = std::move(s.on_abandoned);
      }
    }
    if (on_abandoned) on_abandoned();
    c.exchange.reset();
  }
  if (c.body_reserved > 0) ReleaseBody(std::exchange(c.body_reserved, 0));
  ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c.fd, nullptr);
  if (c.ssl != nullptr) SSL_free(c.ssl);
  c.ssl = nullptr;
  ::close(c.fd);
  c.fd = -1;
  ForgetPeer(c.peer);
  --counters.open;
  closed_ids.push_back(c.id);
}

void HttpServer::Impl::UpdateInterest(Connection& c) {
  if (c.closed) return;
  uint32_t want = EPOLLRDHUP;
  switch (c.phase) {
    case Phase::kHandshake:
      want |= c.tls_handshake_wants_write ? EPOLLOUT : EPOLLIN;
      break;
    case Phase::kHead:
    case Phase::kBody:
    case Phase::kClosing:
      if (!c.peer_closed) want |= EPOLLIN;
      break;
    case Phase::kHandling:
      if (c.tls_write_wants_read) want |= EPOLLIN;
      break;
  }
  if (c.peer_closed) want &= ~static_cast<uint32_t>(EPOLLRDHUP);
  if ((!c.out.empty() && !c.shut_write) || c.tls_read_wants_write) want |= EPOLLOUT;
  if (want == c.events) return;
  epoll_event ev{};
  ev.events = want;
  ev.data.u64 = c.id;
  if (::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c.fd, &ev) == 0) c.events = want;
}

void HttpServer::Impl::ScanDeadlines() {
  const Clock::time_point now = Clock::now();
  std::vector<uint64_t> expired;
  for (auto& [id, c] : connections) {
    if (c->closed) continue;
    switch (c->phase) {
      case Phase::kHandshake:
      case Phase::kHead:
      case Phase::kBody:
      case Phase::kClosing:
        if (now > c->deadline) expired.push_back(id);
        break;
      case Phase::kHandling:
        if (!c->out.empty() && now - c->last_progress > options.write_timeout) {
          expired.push_back(id);
        }
        break;
    }
  }
  for (uint64_t id : expired) {
    Connection& c = *connections.at(id);
    if (c.closed) continue;
    if ((c.phase == Phase::kHead && c.request_started) || c.phase == Phase::kBody) {
      ++counters.timed_out;
      RespondError(c, 408,
                   c.phase == Phase::kBody ? "the request body did not arrive in time"
                                           : "the request head did not arrive in time");
    } else {
      if (c.phase == Phase::kHandshake || c.phase == Phase::kHandling) ++counters.timed_out;
      Close(c);
    }
  }
}

void HttpServer::Impl::DrainReady() {
  std::vector<uint64_t> ready;
  {
    std::lock_guard<std::mutex> lock(core->mu);
    ready.swap(core->ready);
  }
  for (uint64_t id : ready) {
    auto it = connections.find(id);
    if (it == connections.end() || it->second->closed) continue;
    TakeOutput(*it->second);
  }
}

HttpServer::HttpServer(HttpServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Route(std::string method, std::string path, HttpHandler handler, RunOn run_on) {
  impl_->routes.push_back({std::move(method), std::move(path), std::move(handler), run_on});
}

void HttpServer::SetErrorBody(HttpErrorBody error_body) {
  impl_->error_body = std::move(error_body);
}

Status HttpServer::Start() {
  Impl& m = *impl_;
  if (m.started) return Status::FailedPrecondition("the HTTP listener is already started");
  if (m.core->wake_fd < 0) return Status::Internal("eventfd: " + OsError(errno));
  const bool want_tls = !m.options.tls_cert.empty() || !m.options.tls_key.empty();
  if (want_tls) {
    if (m.options.tls_cert.empty() || m.options.tls_key.empty()) {
      return Status::InvalidArgument("http TLS needs both cert and key");
    }
    SEXTANT_RETURN_IF_ERROR(m.MakeTlsContext());
  } else if (!m.options.tls_client_ca.empty()) {
    return Status::InvalidArgument("http client certificates need TLS (cert and key)");
  }
  // Writes to a closed socket must fail with EPIPE, not end the process (OpenSSL writes with
  // plain write(2)).
  struct sigaction old {};
  if (::sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) {
    ::signal(SIGPIPE, SIG_IGN);
  }
  // Room for the connections the options allow (the soft limit is often 1024).
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0) {
    const rlim_t need = static_cast<rlim_t>(m.options.max_connections) + 256;
    if (files.rlim_cur < need && files.rlim_cur < files.rlim_max) {
      files.rlim_cur = std::min(need, files.rlim_max);
      ::setrlimit(RLIMIT_NOFILE, &files);
    }
  }
  SEXTANT_RETURN_IF_ERROR(m.Listen());
  m.epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (m.epoll_fd < 0) return Status::Internal("epoll_create1: " + OsError(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenerId;
  ::epoll_ctl(m.epoll_fd, EPOLL_CTL_ADD, m.listen_fd, &ev);
  ev.data.u64 = kWakeId;
  ::epoll_ctl(m.epoll_fd, EPOLL_CTL_ADD, m.core->wake_fd, &ev);
  m.workers = std::make_unique<WorkerPool>(std::max(1, m.options.workers),
                                           std::max<size_t>(1, m.options.max_queued_tasks));
  m.started = true;
  m.io = std::thread([&m] { m.Loop(); });
  return Status();
}

int HttpServer::port() const { return impl_->bound_port; }
bool HttpServer::tls() const { return impl_->ssl_ctx != nullptr; }

void HttpServer::Stop() {
  Impl& m = *impl_;
  if (!m.started || m.stopped) return;
  m.stopped = true;
  m.stopping = true;
  const uint64_t one = 1;
  (void)!::write(m.core->wake_fd, &one, sizeof(one));
  if (m.io.joinable()) m.io.join();
  m.workers->Stop();
}

HttpServer::Stats HttpServer::stats() const {
  const Impl::Counters& c = impl_->counters;
  Stats s;
  s.connections_open = c.open.load();
  s.connections_accepted = c.accepted.load();
  s.refused_per_client = c.refused_per_client.load();
  s.refused_total = c.refused_total.load();
  s.timed_out = c.timed_out.load();
  s.refused_busy = c.refused_busy.load();
  s.tls_handshake_failures = c.tls_failures.load();
  return s;
}

}  // namespace sextant::http
