#include "connectors/agent/transport_probe.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstring>

#include "app/common/audit_chain.h"

namespace sextant::rpc {

namespace {

struct Seen {
  bool server_hello = false;
  bool certificate_request = false;
};

void OnMessage(int write_p, int, int content_type, const void* buf, size_t len, SSL*, void* arg) {
  if (write_p || content_type != SSL3_RT_HANDSHAKE || len == 0) return;
  auto* seen = static_cast<Seen*>(arg);
  const unsigned char type = static_cast<const unsigned char*>(buf)[0];
  if (type == SSL3_MT_SERVER_HELLO) seen->server_hello = true;
  if (type == SSL3_MT_CERTIFICATE_REQUEST) seen->certificate_request = true;
}

int Connect(const std::string& host, int port, std::chrono::milliseconds timeout) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) {
    return -1;
  }
  const int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    timeval tv{static_cast<time_t>(timeout.count() / 1000),
               static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (::connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
      ::close(fd);
      ::freeaddrinfo(res);
      return -1;
    }
  }
  ::freeaddrinfo(res);
  return fd;
}

struct Attempt {
  bool connected = false;
  Seen seen;
  bool handshake_done = false;  // the client finished its side
  bool refused_after = false;   // the server then ended the connection (alert or close)
  bool got_data = false;        // the server sent application data: it carried on
};

Attempt Try(const std::string& host, int port, int version, std::chrono::milliseconds timeout) {
  Attempt a;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return a;
  // Security level 0 so that this client itself offers TLS 1.0 / 1.1 when asked to.
  SSL_CTX_set_security_level(ctx, 0);
  SSL_CTX_set_min_proto_version(ctx, version);
  SSL_CTX_set_max_proto_version(ctx, version);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);  // the server's identity is not the question
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof(kAlpn));
  SSL_CTX_set_msg_callback(ctx, OnMessage);
  SSL_CTX_set_msg_callback_arg(ctx, &a.seen);
  const int fd = Connect(host, port, timeout);
  if (fd >= 0) {
    a.connected = true;
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    ERR_clear_error();
    if (SSL_connect(ssl) == 1) {
      a.handshake_done = true;
      // TLS 1.3: the server checks the client's (empty) certificate after the client is done;
      // its verdict is the next thing on the wire: an alert or a close, or HTTP/2 SETTINGS.
      char buf[64];
      const int n = SSL_read(ssl, buf, sizeof(buf));
      if (n > 0) {
        a.got_data = true;
      } else {
        a.refused_after = true;
      }
    }
    SSL_free(ssl);
    ::close(fd);
  }
  ERR_clear_error();
  SSL_CTX_free(ctx);
  return a;
}

}  // namespace

TransportFacts ProbeTransport(const std::string& bound_host, int port,
                              std::chrono::milliseconds timeout) {
  TransportFacts f;
  std::string host = bound_host;
  if (host == "0.0.0.0" || host.empty()) host = "127.0.0.1";
  if (host == "::" || host == "[::]") host = "::1";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  f.source = "measured: loopback TLS handshakes without a client certificate to " + host + ":" +
             std::to_string(port) + " at " + audit::NowRfc3339Ms();
  f.measured_at_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  struct V {
    int version;
    const char* name;
  };
  static const V kVersions[] = {{TLS1_VERSION, "TLS1.0"},
                                {TLS1_1_VERSION, "TLS1.1"},
                                {TLS1_2_VERSION, "TLS1.2"},
                                {TLS1_3_VERSION, "TLS1.3"}};
  bool any_connected = false;
  bool asked = false, refused = false, carried_on = false;
  for (const V& v : kVersions) {
    const Attempt a = Try(host, port, v.version, timeout);
    any_connected = any_connected || a.connected;
    const bool accepted = a.seen.server_hello;
    f.version_evidence += std::string(f.version_evidence.empty() ? "" : ", ") + v.name +
                          (!a.connected ? " no connection"
                           : accepted   ? " accepted"
                                        : " refused");
    if (accepted && f.min_version == "unknown") f.min_version = v.name;
    if (accepted) {
      asked = asked || a.seen.certificate_request;
      if (!a.handshake_done || a.refused_after) refused = true;
      if (a.got_data) carried_on = true;
    }
  }
  if (!any_connected) {
    f.mtls_evidence = "no handshake could be made with the listener";
    f.version_evidence = "no handshake could be made with the listener";
    return f;
  }
  if (f.min_version == "unknown") {
    f.mtls_evidence = "the listener answered no TLS version from 1.0 to 1.3";
    return f;
  }
  if (carried_on) {
    f.mtls_enforced = "false";
    f.mtls_evidence = "a client without a certificate got past the handshake";
  } else if (asked && refused) {
    f.mtls_enforced = "true";
    f.mtls_evidence =
        "the listener asked for a client certificate and ended every handshake without one";
  } else if (!asked) {
    f.mtls_enforced = "false";
    f.mtls_evidence = "the listener did not ask for a client certificate";
  } else {
    f.mtls_evidence = "the listener asked for a client certificate, the outcome was unclear";
  }
  return f;
}

}  // namespace sextant::rpc
