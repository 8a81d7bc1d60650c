// X.509 identities for the agent's mutual TLS, through OpenSSL: a local CA, server and client
// certificates with spiffe:// URI SANs (ECDSA P-256), and reading the spiffe identity back out
// of a peer certificate. `sextant-agent certs init` and the tests use this.
//
// Keys stay with whoever uses them: the vendor makes its key and a certificate signing request
// (`sextant certs request`, CreateKeyAndCsr) and sends only the request; the customer's CA
// issues the certificate from it (IssueFromCsr, `sextant-agent certs init --csr` or `certs
// issue`), naming the identity itself. `certs init` writes no vendor private key.
// Thread-safety: pure functions; safe from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
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

// A new ECDSA P-256 key and a PKCS#10 request for it (subject CN, the URI SANs requested).
struct KeyAndCsr {
  std::string key_pem;
  std::string csr_pem;
};
Result<KeyAndCsr> CreateKeyAndCsr(const std::string& common_name,
                                  const std::vector<std::string>& uri_sans);
// A certificate for the public key of a certificate signing request, signed by `ca`, with the
// names, usage and validity of `request` (the issuer decides the identity; whatever names the
// request asks for are ignored). INVALID_ARGUMENT when the request is not PEM or its own
// signature does not verify (it was not made with the key it carries).
Result<std::string> IssueFromCsr(const CertAndKey& ca, const std::string& csr_pem,
                                 const CertRequest& request);

// What `certs init` writes into out_dir: ca.pem/ca.key, server.pem/server.key (SANs IP:127.0.0.1,
// DNS:localhost, plus extra_server_names), one pair per customer identity, named
// "<kind>-<name>.pem/.key" for spiffe://TRUST-DOMAIN/<kind>/<name>, and a certificate only
// ("<kind>-<name>.pem") for each identity issued from a request (csrs). Keys are written mode
// 0600. A vendor identity in `identities` (one whose key would be made here) is refused: the
// vendor sends a request instead.
struct CertsInitOptions {
  std::filesystem::path out_dir;
  std::string trust_domain = "example.org";
  std::vector<std::string> identities = {"customer/admin", "customer/auditor", "customer/app"};
  // KIND/NAME -> PEM certificate signing request (vendor/operator -> the vendor's request).
  std::vector<std::pair<std::string, std::string>> csrs;
  std::vector<std::string> extra_server_names;  // DNS names or IP addresses
  int64_t valid_days = 365;
};
// Returns the paths written. Refuses to overwrite an existing ca.key, and a vendor identity
// (its key is made on its side: give its request in csrs). Every identity and request is
// checked before the first file is written; on failure nothing it wrote is left.
Result<std::vector<std::filesystem::path>> CertsInit(const CertsInitOptions& options);
// The certificate's notAfter as Unix seconds (first certificate of the PEM).
Result<int64_t> NotAfterUnixOfPem(const std::string& cert_pem);

Result<std::string> ReadTextFile(const std::filesystem::path& path);
Status WriteTextFile(const std::filesystem::path& path, const std::string& text, bool secret);

}  // namespace sextant::rpc
