// Certificate revocation for the agent's listener: the CA's revocation list(s) (PEM X.509 CRLs,
// `sextant-agent certs revoke` writes one), checked in every TLS handshake, so a revoked
// client (a vendor identity the customer ended) cannot even complete a handshake. The agent
// reloads the file on SIGHUP; a file that cannot be read or parsed, or a CRL not signed by the
// CA the listener trusts, is refused and the previous list stays in force (and the agent says
// it is degraded until a reload succeeds).
//
// Thread-safety: a RevocationList is immutable; share it as shared_ptr<const>.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <utility>

#include "connectors/agent/identity_certs.h"
#include "engine/base/status.h"

namespace sextant::rpc {

class RevocationList {
 public:
  // Every CRL in crl_pem (PEM, concatenated) must be signed by one of the certificates in
  // ca_pem. An empty text is an empty list. INVALID_ARGUMENT names the CRL (1-based) and why.
  static Result<std::shared_ptr<const RevocationList>> Parse(const std::string& crl_pem,
                                                             const std::string& ca_pem);

  // True (and the serial in hex) when the certificate's issuer and serial are listed.
  bool IsRevoked(const std::string& cert_pem, std::string* serial_hex = nullptr) const;
  size_t size() const { return revoked_.size(); }
  int crls() const { return crls_; }
  // The earliest nextUpdate of the CRLs (Unix seconds); 0 when none says.
  int64_t next_update_unix() const { return next_update_; }

 private:
  std::set<std::pair<std::string, std::string>> revoked_;  // (issuer DER hex, serial hex)
  int crls_ = 0;
  int64_t next_update_ = 0;
};

// A CRL signed by `ca` listing the certificates in certs_pem plus everything `existing_crl_pem`
// (may be empty; must be the same CA's) already lists, valid for next_update_s seconds.
Result<std::string> RevokeCertificates(const CertAndKey& ca, const std::string& existing_crl_pem,
                                       const std::vector<std::string>& certs_pem,
                                       int64_t next_update_s);

// The serial number of a PEM certificate, hex (uppercase, as openssl prints it).
Result<std::string> SerialOfPem(const std::string& cert_pem);

}  // namespace sextant::rpc
