// The agent's gRPC listener refuses TLS below 1.2: a client that offers at most TLS 1.1 (with a
// valid client certificate from the trusted CA) cannot complete a handshake, while the same
// client allowed TLS 1.2 can. OpenSSL's API, as an old client would use it.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "tests/connectors/agent/agent_test_env.h"

namespace sextant::rpc {
namespace {

struct Handshake {
  bool ok = false;
  std::string version;  // negotiated, when ok
  std::string error;
};

// Connects to 127.0.0.1:port and runs a TLS handshake offering versions up to max_version.
Handshake TryHandshake(int port, int max_version, const CertAndKey& client) {
  Handshake h;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  // Security level 0 so that this OpenSSL itself is willing to offer TLS 1.0/1.1.
  SSL_CTX_set_security_level(ctx, 0);
  SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
  SSL_CTX_set_max_proto_version(ctx, max_version);
  BIO* cb = BIO_new_mem_buf(client.cert_pem.data(), static_cast<int>(client.cert_pem.size()));
  X509* cert = PEM_read_bio_X509(cb, nullptr, nullptr, nullptr);
  BIO* kb = BIO_new_mem_buf(client.key_pem.data(), static_cast<int>(client.key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr);
  SSL_CTX_use_certificate(ctx, cert);
  SSL_CTX_use_PrivateKey(ctx, key);
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof(kAlpn));

  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{5, 0};  // bounded: never wait long on a handshake
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    h.error = "connect failed";
  } else {
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    ERR_clear_error();
    if (SSL_connect(ssl) == 1) {
      h.ok = true;
      h.version = SSL_get_version(ssl);
      SSL_shutdown(ssl);
    } else {
      char buf[256] = {};
      ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
      h.error = buf;
    }
    SSL_free(ssl);
  }
  ::close(fd);
  X509_free(cert);
  EVP_PKEY_free(key);
  BIO_free(cb);
  BIO_free(kb);
  SSL_CTX_free(ctx);
  return h;
}

TEST(AgentTls, ClientLimitedToTls11CannotConnectAndTls12Can) {
  testing_env::AgentEnv env;
  ASSERT_EQ(env.Init("tls-version"), "");
  ASSERT_TRUE(env.Start().ok());
  CertRequest r;
  r.common_name = "admin";
  r.client = true;
  r.uri_sans = {"spiffe://example.org/customer/admin"};
  auto client = IssueCert(env.ca, r);
  ASSERT_TRUE(client.ok());

  const Handshake tls11 = TryHandshake(env.server->port(), TLS1_1_VERSION, *client);
  EXPECT_FALSE(tls11.ok) << "negotiated " << tls11.version;
  const Handshake tls10 = TryHandshake(env.server->port(), TLS1_VERSION, *client);
  EXPECT_FALSE(tls10.ok) << "negotiated " << tls10.version;

  // The same client, allowed TLS 1.2, completes the handshake: the refusal above is the
  // version, not the certificate or the socket.
  const Handshake tls12 = TryHandshake(env.server->port(), TLS1_2_VERSION, *client);
  EXPECT_TRUE(tls12.ok) << tls12.error;
  EXPECT_EQ(tls12.version, "TLSv1.2");
}

}  // namespace
}  // namespace sextant::rpc
