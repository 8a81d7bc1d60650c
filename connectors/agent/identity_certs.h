// X.509 identities for the agent's mutual TLS, through OpenSSL: a local CA, server and client
// certificates with spiffe:// URI SANs (ECDSA P-256), and reading the spiffe identity back out
// of a peer certificate. `sextant-agent certs init` and the tests use this.
// Thread-safety: pure functions; safe from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/base/status.h"

namespace sextant::rpc {

struct CertAndKey {
  std::string cert_pem;
  std::string key_pem;
};

struct CertRequest {
  std::string common_name;
  std::vector<std::string> uri_sans;  // e.g. "spiffe://example.org/vendor/operator"
  std::vector<std::string> dns_sans;  // e.g. "localhost"
  std::vector<std::string> ip_sans;   // e.g. "127.0.0.1"
  bool server = false;                // extendedKeyUsage serverAuth
  bool client = false;                // extendedKeyUsage clientAuth
  // Validity window relative to now (seconds). An expired certificate for tests: a window
  // entirely in the past.
  int64_t not_before_s = -300;
  int64_t not_after_s = 365LL * 24 * 3600;
};

// A self-signed CA (basicConstraints CA:TRUE, keyUsage keyCertSign, cRLSign).
Result<CertAndKey> CreateCa(const std::string& common_name, int64_t valid_seconds);
// A leaf certificate signed by ca.
Result<CertAndKey> IssueCert(const CertAndKey& ca, const CertRequest& request);
// Every URI SAN of a PEM certificate (first certificate of the PEM).
Result<std::vector<std::string>> UriSansOfPem(const std::string& cert_pem);
// The first spiffe:// URI SAN, or "" when the certificate has none; errors for bad PEM.
Result<std::string> SpiffeIdOfPem(const std::string& cert_pem);

// What `certs init` writes into out_dir: ca.pem/ca.key, server.pem/server.key (SANs IP:127.0.0.1,
// DNS:localhost, plus extra_server_names) and one pair per client identity, named
// "<kind>-<name>.pem/.key" for spiffe://TRUST-DOMAIN/<kind>/<name>. Keys are written mode 0600.
struct CertsInitOptions {
  std::filesystem::path out_dir;
  std::string trust_domain = "example.org";
  std::vector<std::string> identities = {"vendor/operator", "customer/admin", "customer/auditor",
                                         "customer/app"};
  std::vector<std::string> extra_server_names;  // DNS names or IP addresses
  int64_t valid_days = 365;
};
// Returns the paths written. Refuses to overwrite an existing ca.key.
Result<std::vector<std::filesystem::path>> CertsInit(const CertsInitOptions& options);
// The certificate's notAfter as Unix seconds (first certificate of the PEM).
Result<int64_t> NotAfterUnixOfPem(const std::string& cert_pem);

Result<std::string> ReadTextFile(const std::filesystem::path& path);
Status WriteTextFile(const std::filesystem::path& path, const std::string& text, bool secret);

}  // namespace sextant::rpc
