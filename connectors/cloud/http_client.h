// HttpClient: the HTTPS client the cloud connectors speak through (libcurl underneath).
//
// One request, one answer: no redirects are followed (a redirect would carry a signed request
// or a bearer token somewhere else), only http and https are spoken, the answer's body is
// bounded (a larger one is an error, not a truncated body), and every request has a deadline.
// TLS verifies the peer against the system's CAs, or against `tls.ca_pem` when given; a client
// certificate and key may be given as PEM text.
//
// Failures: a transport failure (no connection, TLS refused, deadline passed, body too large)
// is an error Status (UNAVAILABLE, DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED) naming the URL's
// host and curl's reason; any HTTP answer, whatever its status code, is a response.
//
// Thread-safety: Send may be called from several threads at once; idle connections are kept in
// a small pool under a lock.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/base/status.h"

namespace sextant::cloud {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct TlsOptions {
  std::string ca_pem;           // trust these CAs instead of the system's (PEM, may be several)
  std::string client_cert_pem;  // a client certificate (PEM), with client_key_pem
  std::string client_key_pem;
  bool verify_peer = true;  // false only where the user asked (kubeconfig
                            // insecure-skip-tls-verify)
};

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  Headers headers;
  std::string body;
  std::chrono::milliseconds timeout{30'000};
  TlsOptions tls;
  bool bypass_proxy = false;  // never through HTTP(S)_PROXY (instance metadata, loopback)
};

struct HttpResponse {
  int status = 0;
  Headers headers;  // names as received
  std::string body;

  // The first header of that name (case-insensitive), or "".
  std::string Header(std::string_view name) const;
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  virtual Result<HttpResponse> Send(const HttpRequest& request) = 0;
};

class CurlHttpClient final : public HttpClient {
 public:
  explicit CurlHttpClient(size_t max_body_bytes = 64u << 20);
  ~CurlHttpClient() override;
  CurlHttpClient(const CurlHttpClient&) = delete;
  CurlHttpClient& operator=(const CurlHttpClient&) = delete;

  Result<HttpResponse> Send(const HttpRequest& request) override;

 private:
  void* Acquire();
  void Release(void* handle);

  const size_t max_body_bytes_;
  std::mutex mu_;
  std::vector<void*> idle_;  // GUARDED_BY(mu_): CURL easy handles, reset between uses
};

// The host (and port, when given) of a URL: "https://sts.amazonaws.com:443/x" ->
// "sts.amazonaws.com:443"; "" when the URL has no scheme.
std::string UrlAuthority(std::string_view url);

}  // namespace sextant::cloud
