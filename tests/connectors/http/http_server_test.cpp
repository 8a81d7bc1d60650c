// The event-driven listener over real sockets on 127.0.0.1: keep-alive and pipelining, the
// bounds a hostile client runs into (head deadline, per-client connections, body and inflated
// sizes, a client that does not read, a full worker queue), probes that answer while every
// worker is busy, streams, a taken port, and TLS with client certificates.
#include "connectors/http/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "connectors/agent/identity_certs.h"

namespace sextant::http {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// A bare TCP client, to send exactly the bytes an attacker would.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return fd_ >= 0; }
  bool Send(std::string_view data) {
    return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
  }
  // Reads until the server closes or `timeout` passes.
  std::string ReadUntilClosed(milliseconds timeout, bool* closed = nullptr) {
    std::string out;
    const auto end = Clock::now() + timeout;
    while (Clock::now() < end) {
      pollfd p{fd_, POLLIN, 0};
      const int left =
          static_cast<int>(std::chrono::duration_cast<milliseconds>(end - Clock::now()).count());
      if (::poll(&p, 1, std::max(1, left)) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) {
        if (closed != nullptr) *closed = true;
        return out;
      }
      out.append(buf, static_cast<size_t>(n));
    }
    if (closed != nullptr) *closed = false;
    return out;
  }
  // Reads until `count` complete responses with Content-Length bodies have arrived.
  std::string ReadResponses(int count, milliseconds timeout) {
    std::string out;
    const auto end = Clock::now() + timeout;
    while (Clock::now() < end && Complete(out) < count) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  int fd() const { return fd_; }

 private:
  static int Complete(const std::string& s) {
    int done = 0;
    size_t pos = 0;
    while (true) {
      const size_t head_end = s.find("\r\n\r\n", pos);
      if (head_end == std::string::npos) return done;
      const size_t cl = s.find("Content-Length: ", pos);
      if (cl == std::string::npos || cl > head_end) return done;
      const size_t len = std::stoul(s.substr(cl + 16));
      if (s.size() < head_end + 4 + len) return done;
      ++done;
      pos = head_end + 4 + len;
    }
  }
  int fd_ = -1;
};

int CountOf(const std::string& s, const std::string& what) {
  int n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

std::string Gzip(const std::string& data) {
  z_stream zs{};
  deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, data.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

HttpHandler Text(std::string body) {
  return [body](HttpRequest&, std::shared_ptr<HttpExchange> ex) {
    ex->Send({200, "text/plain", {}, body});
  };
}

class HttpServerTest : public ::testing::Test {
 protected:
  void Start(HttpServerOptions o = {}) {
    o.host = "127.0.0.1";
    o.port = 0;
    server_ = std::make_unique<HttpServer>(o);
    server_->Route("GET", "/ok", Text("ok"));
    server_->Route("GET", "/healthz", Text("healthy"), HttpServer::RunOn::kIoThread);
    server_->Route("POST", "/echo", [](HttpRequest& req, std::shared_ptr<HttpExchange> ex) {
      ex->Send({200, "application/octet-stream", {}, req.body});
    });
    for (auto& [method, path, handler] : extra_) server_->Route(method, path, handler);
    const Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }
  int port() const { return server_->port(); }

  std::vector<std::tuple<std::string, std::string, HttpHandler>> extra_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, KeepAlivePipeliningAndErrors) {
  Start();
  RawClient c(port());
  ASSERT_TRUE(c.ok());
  // Three requests in one write: three answers, in order, on one connection.
  ASSERT_TRUE(
      c.Send("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"
             "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
             "GET /healthz HTTP/1.1\r\n\r\n"));
  const std::string out = c.ReadResponses(3, milliseconds(3000));
  EXPECT_EQ(CountOf(out, "HTTP/1.1 200 OK"), 3) << out;
  EXPECT_LT(out.find("\r\n\r\nok"), out.find("\r\n\r\nhello")) << out;
  EXPECT_LT(out.find("\r\n\r\nhello"), out.find("\r\n\r\nhealthy")) << out;
  EXPECT_NE(out.find("Connection: keep-alive"), std::string::npos);

  RawClient nf(port());
  ASSERT_TRUE(nf.Send("GET /nowhere HTTP/1.1\r\n\r\n"));
  bool closed = false;
  std::string r = nf.ReadUntilClosed(milliseconds(3000), &closed);
  EXPECT_EQ(r.rfind("HTTP/1.1 404 Not Found", 0), 0u) << r;
  EXPECT_TRUE(closed);

  RawClient wrong(port());
  ASSERT_TRUE(wrong.Send("DELETE /ok HTTP/1.1\r\n\r\n"));
  r = wrong.ReadUntilClosed(milliseconds(3000));
  EXPECT_EQ(r.rfind("HTTP/1.1 405", 0), 0u) << r;
  EXPECT_NE(r.find("Allow: GET"), std::string::npos) << r;

  RawClient bad(port());
  ASSERT_TRUE(bad.Send("GET /ok HTTP/1.1\r\nBad Header: x\r\n\r\n"));
  r = bad.ReadUntilClosed(milliseconds(3000), &closed);
  EXPECT_EQ(r.rfind("HTTP/1.1 400", 0), 0u) << r;
  EXPECT_TRUE(closed);

  RawClient chunked(port());
  ASSERT_TRUE(
      chunked.Send("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"));
  r = chunked.ReadUntilClosed(milliseconds(3000));
  EXPECT_EQ(r.rfind("HTTP/1.1 411", 0), 0u) << r;
}

TEST_F(HttpServerTest, ATricklingHeadIsCutAtTheDeadlineAndAnIdleConnectionClosed) {
  HttpServerOptions o;
  o.header_timeout = milliseconds(400);
  Start(o);
  RawClient slow(port());
  RawClient idle(port());
  ASSERT_TRUE(slow.ok() && idle.ok());
  const auto start = Clock::now();
  // One header line every 100 ms: never a complete head.
  std::atomic<bool> stop{false};
  std::thread trickle([&] {
    slow.Send("GET /ok HTTP/1.1\r\n");
    for (int i = 0; i < 30 && !stop.load(); ++i) {
      std::this_thread::sleep_for(milliseconds(100));
      if (!slow.Send("X-Slow: " + std::to_string(i) + "\r\n")) break;
    }
  });
  bool closed = false;
  const std::string r = slow.ReadUntilClosed(milliseconds(3000), &closed);
  const auto took = Clock::now() - start;
  stop = true;
  trickle.join();
  EXPECT_EQ(r.rfind("HTTP/1.1 408", 0), 0u) << r;
  EXPECT_TRUE(closed);
  EXPECT_LT(took, milliseconds(2000));
  bool idle_closed = false;
  EXPECT_EQ(idle.ReadUntilClosed(milliseconds(2000), &idle_closed), "");
  EXPECT_TRUE(idle_closed);
  EXPECT_GE(server_->stats().timed_out, 1);
}

TEST_F(HttpServerTest, ConnectionsBeyondThePerClientLimitAreRefused) {
  HttpServerOptions o;
  o.max_connections_per_client = 3;
  Start(o);
  std::vector<std::unique_ptr<RawClient>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<RawClient>(port()));
    ASSERT_TRUE(held.back()->Send("GET /ok HTTP/1.1\r\n\r\n"));
    ASSERT_NE(held.back()->ReadResponses(1, milliseconds(3000)).find("200 OK"), std::string::npos);
  }
  RawClient fourth(port());
  bool closed = false;
  const std::string r = fourth.ReadUntilClosed(milliseconds(3000), &closed);
  EXPECT_EQ(r.rfind("HTTP/1.1 503", 0), 0u) << r;
  EXPECT_NE(r.find("too many connections from your address"), std::string::npos) << r;
  EXPECT_TRUE(closed);
  EXPECT_EQ(server_->stats().refused_per_client, 1);
  // One leaves: a new one is served.
  held.pop_back();
  std::this_thread::sleep_for(milliseconds(200));
  RawClient again(port());
  ASSERT_TRUE(again.Send("GET /ok HTTP/1.1\r\n\r\n"));
  EXPECT_NE(again.ReadResponses(1, milliseconds(3000)).find("200 OK"), std::string::npos);
}

TEST_F(HttpServerTest, BodiesAreBoundedAsSentAndAsInflated) {
  HttpServerOptions o;
  o.max_body_bytes = 64 << 10;
  o.max_decoded_body_bytes = 64 << 10;
  Start(o);
  // Refused from the head alone: the 10 MB are never read.
  RawClient big(port());
  ASSERT_TRUE(big.Send("POST /echo HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n"));
  std::string r = big.ReadUntilClosed(milliseconds(3000));
  EXPECT_EQ(r.rfind("HTTP/1.1 413", 0), 0u) << r;

  // A gzip body within the limit arrives inflated; a bomb stops at the limit.
  httplib::Client c("127.0.0.1", port());
  const std::string text(20000, 'x');
  auto ok = c.Post("/echo", {{"Content-Encoding", "gzip"}}, Gzip(text), "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->body, text);
  const std::string bomb = Gzip(std::string(8 << 20, ' '));
  auto refused = c.Post("/echo", {{"Content-Encoding", "gzip"}}, bomb, "application/json");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 413);
  EXPECT_NE(refused->body.find("inflates to more than 65536"), std::string::npos) << refused->body;
  auto brotli = c.Post("/echo", {{"Content-Encoding", "br"}}, "x", "application/json");
  ASSERT_TRUE(brotli);
  EXPECT_EQ(brotli->status, 415);

  // Expect: 100-continue: the client hears it may send, then the answer.
  RawClient expect(port());
  ASSERT_TRUE(
      expect.Send("POST /echo HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"));
  std::string got = expect.ReadUntilClosed(milliseconds(300));
  EXPECT_EQ(got.rfind("HTTP/1.1 100 Continue\r\n\r\n", 0), 0u) << got;
  ASSERT_TRUE(expect.Send("ping"));
  got = expect.ReadResponses(1, milliseconds(3000));
  EXPECT_NE(got.find("200 OK"), std::string::npos) << got;
  EXPECT_NE(got.find("\r\n\r\nping"), std::string::npos) << got;
}

TEST_F(HttpServerTest, ProbesAnswerWhileEveryWorkerIsBusyAndAFullQueueIs503) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  extra_.emplace_back("GET", "/slow", [released](HttpRequest&, std::shared_ptr<HttpExchange> ex) {
    released.wait();
    ex->Send({200, "text/plain", {}, "slow"});
  });
  HttpServerOptions o;
  o.workers = 1;
  o.max_queued_tasks = 1;
  Start(o);
  RawClient busy(port()), queued(port()), refused(port());
  ASSERT_TRUE(busy.Send("GET /slow HTTP/1.1\r\n\r\n"));
  std::this_thread::sleep_for(milliseconds(100));
  ASSERT_TRUE(queued.Send("GET /slow HTTP/1.1\r\n\r\n"));
  std::this_thread::sleep_for(milliseconds(100));
  ASSERT_TRUE(refused.Send("GET /ok HTTP/1.1\r\n\r\n"));
  const std::string r = refused.ReadResponses(1, milliseconds(3000));
  EXPECT_EQ(r.rfind("HTTP/1.1 503", 0), 0u) << r;
  EXPECT_NE(r.find("Retry-After: 1"), std::string::npos) << r;
  // The probe runs on the I/O thread.
  httplib::Client probe("127.0.0.1", port());
  const auto start = Clock::now();
  auto health = probe.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_LT(Clock::now() - start, milliseconds(1000));
  release.set_value();
  EXPECT_NE(busy.ReadResponses(1, milliseconds(3000)).find("slow"), std::string::npos);
  EXPECT_NE(queued.ReadResponses(1, milliseconds(3000)).find("slow"), std::string::npos);
}

TEST_F(HttpServerTest, StreamsAreChunkedAndAClientThatLeavesAbandonsThem) {
  std::atomic<bool> abandoned{false};
  std::vector<std::thread> writers;
  std::mutex writers_mu;
  extra_.emplace_back("GET", "/stream", [&](HttpRequest& req, std::shared_ptr<HttpExchange> ex) {
    const bool forever = req.target.find("forever") != std::string::npos;
    ex->StartStream(200, "text/event-stream");
    ex->OnAbandoned([&] { abandoned = true; });
    std::lock_guard<std::mutex> lock(writers_mu);
    writers.emplace_back([ex, forever] {
      for (int i = 0; forever || i < 5; ++i) {
        if (!ex->Write("data: " + std::to_string(i) + "\n\n")) return;
        std::this_thread::sleep_for(milliseconds(forever ? 20 : 5));
      }
      ex->End();
    });
  });
  Start();
  httplib::Client c("127.0.0.1", port());
  auto res = c.Get("/stream");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Transfer-Encoding"), "chunked");
  EXPECT_EQ(res->body, "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n");
  EXPECT_FALSE(abandoned.load());

  {
    RawClient leaver(port());
    ASSERT_TRUE(leaver.Send("GET /stream?forever HTTP/1.1\r\n\r\n"));
    EXPECT_NE(leaver.ReadUntilClosed(milliseconds(200)).find("200 OK"), std::string::npos);
  }  // closed
  const auto end = Clock::now() + milliseconds(3000);
  while (!abandoned.load() && Clock::now() < end) std::this_thread::sleep_for(milliseconds(10));
  EXPECT_TRUE(abandoned.load());
  std::lock_guard<std::mutex> lock(writers_mu);
  for (auto& t : writers) t.join();
}

TEST_F(HttpServerTest, AClientThatDoesNotReadIsDroppedPastThePendingLimit) {
  std::atomic<bool> abandoned{false};
  std::atomic<int> writes{0};
  std::thread writer;
  extra_.emplace_back("GET", "/flood", [&](HttpRequest&, std::shared_ptr<HttpExchange> ex) {
    ex->StartStream(200, "application/octet-stream");
    ex->OnAbandoned([&] { abandoned = true; });
    writer = std::thread([ex, &writes] {
      const std::string chunk(64 << 10, 'z');
      for (int i = 0; i < 10000 && ex->Write(chunk); ++i) ++writes;
    });
  });
  HttpServerOptions o;
  o.max_pending_output_bytes = 1 << 20;
  Start(o);
  RawClient sleeper(port());
  int small = 4096;
  ::setsockopt(sleeper.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  ASSERT_TRUE(sleeper.Send("GET /flood HTTP/1.1\r\n\r\n"));
  const auto end = Clock::now() + milliseconds(5000);
  while (!abandoned.load() && Clock::now() < end) std::this_thread::sleep_for(milliseconds(10));
  EXPECT_TRUE(abandoned.load());
  writer.join();
  // The writer was told to stop long before 10000 chunks (640 MB).
  EXPECT_LT(writes.load(), 400);
}

TEST_F(HttpServerTest, ATakenPortIsRefusedNamingTheOsError) {
  Start();
  HttpServerOptions o;
  o.host = "127.0.0.1";
  o.port = port();
  HttpServer second(o);
  second.Route("GET", "/ok", Text("ok"));
  const Status s = second.Start();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("127.0.0.1:" + std::to_string(port())), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("Address already in use"), std::string::npos) << s.message();
}

TEST_F(HttpServerTest, TlsWithClientCertificates) {
  const fs::path dir =
      fs::temp_directory_path() / ("sextant-httptls-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto ca = rpc::CreateCa("http test CA", 3600);
  ASSERT_TRUE(ca.ok());
  rpc::CertRequest server_req;
  server_req.common_name = "agent";
  server_req.ip_sans = {"127.0.0.1"};
  server_req.server = true;
  auto server_cert = rpc::IssueCert(*ca, server_req);
  rpc::CertRequest client_req;
  client_req.common_name = "app";
  client_req.client = true;
  auto client_cert = rpc::IssueCert(*ca, client_req);
  auto other_ca = rpc::CreateCa("someone else", 3600);
  ASSERT_TRUE(other_ca.ok());
  auto stranger = rpc::IssueCert(*other_ca, client_req);
  ASSERT_TRUE(server_cert.ok() && client_cert.ok() && stranger.ok());
  auto write = [&](const std::string& name, const std::string& text) {
    ASSERT_TRUE(rpc::WriteTextFile(dir / name, text, false).ok());
  };
  write("ca.pem", ca->cert_pem);
  write("server.pem", server_cert->cert_pem);
  write("server.key", server_cert->key_pem);
  write("client.pem", client_cert->cert_pem);
  write("client.key", client_cert->key_pem);
  write("stranger.pem", stranger->cert_pem);
  write("stranger.key", stranger->key_pem);

  HttpServerOptions o;
  o.tls_cert = dir / "server.pem";
  o.tls_key = dir / "server.key";
  o.tls_client_ca = dir / "ca.pem";
  Start(o);
  EXPECT_TRUE(server_->tls());
  auto get = [&](const char* cert, const char* key) {
    httplib::SSLClient c("127.0.0.1", port(), cert ? (dir / cert).string() : std::string(),
                         key ? (dir / key).string() : std::string());
    c.set_ca_cert_path((dir / "ca.pem").c_str());
    c.enable_server_certificate_verification(true);
    c.set_connection_timeout(3, 0);
    c.set_read_timeout(3, 0);
    return c.Get("/ok");
  };
  auto with_cert = get("client.pem", "client.key");
  ASSERT_TRUE(with_cert) << httplib::to_string(with_cert.error());
  EXPECT_EQ(with_cert->status, 200);
  EXPECT_EQ(with_cert->body, "ok");
  EXPECT_FALSE(get(nullptr, nullptr));
  EXPECT_FALSE(get("stranger.pem", "stranger.key"));
  EXPECT_GE(server_->stats().tls_handshake_failures, 2);
  // A plain-HTTP client is not served either.
  RawClient plain(port());
  ASSERT_TRUE(plain.Send("GET /ok HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(plain.ReadUntilClosed(milliseconds(2000)).find("200 OK"), std::string::npos);

  // Files that cannot be loaded are named.
  HttpServerOptions missing = o;
  missing.port = 0;
  missing.tls_client_ca = dir / "nope.pem";
  HttpServer bad(missing);
  const Status s = bad.Start();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("nope.pem"), std::string::npos) << s.message();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sextant::http
