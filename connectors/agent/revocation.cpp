#include "connectors/agent/revocation.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <memory>
#include <vector>

#include "app/common/openssl_error.h"

namespace sextant::rpc {

namespace {

struct Free {
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(X509_CRL* p) const { X509_CRL_free(p); }
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
  void operator()(char* p) const { OPENSSL_free(p); }
};
using Bio = std::unique_ptr<BIO, Free>;
using Cert = std::unique_ptr<X509, Free>;
using Crl = std::unique_ptr<X509_CRL, Free>;

Status SslError(const std::string& what) { return Status::InvalidArgument(OpenSslErrorText(what)); }

std::vector<Cert> ReadCerts(const std::string& pem) {
  std::vector<Cert> out;
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(c);
  ERR_clear_error();
  return out;
}

std::vector<Crl> ReadCrls(const std::string& pem) {
  std::vector<Crl> out;
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  while (X509_CRL* c = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr)) {
    out.emplace_back(c);
  }
  ERR_clear_error();
  return out;
}

std::string NameKey(const X509_NAME* name) {
  unsigned char* der = nullptr;
  const int n = i2d_X509_NAME(const_cast<X509_NAME*>(name), &der);
  if (n <= 0) return {};
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < n; ++i) {
    out += kHex[der[i] >> 4];
    out += kHex[der[i] & 15];
  }
  OPENSSL_free(der);
  return out;
}

std::string SerialHex(const ASN1_INTEGER* serial) {
  std::unique_ptr<BIGNUM, Free> bn(ASN1_INTEGER_to_BN(serial, nullptr));
  if (!bn) return {};
  std::unique_ptr<char, Free> hex(BN_bn2hex(bn.get()));
  return hex ? std::string(hex.get()) : std::string();
}

int64_t TimeUnix(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

}  // namespace

Result<std::shared_ptr<const RevocationList>> RevocationList::Parse(const std::string& crl_pem,
                                                                    const std::string& ca_pem) {
  auto list = std::make_shared<RevocationList>();
  if (crl_pem.find_first_not_of(" \t\r\n") == std::string::npos) return list;
  std::vector<Crl> crls = ReadCrls(crl_pem);
  if (crls.empty()) {
    return Status::InvalidArgument("no PEM X509 CRL found (expected -----BEGIN X509 CRL-----)");
  }
  const std::vector<Cert> cas = ReadCerts(ca_pem);
  for (size_t i = 0; i < crls.size(); ++i) {
    X509_CRL* crl = crls[i].get();
    const std::string which = "CRL " + std::to_string(i + 1);
    bool signed_by_ca = false;
    for (const auto& ca : cas) {
      if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca.get())) != 0) continue;
      EVP_PKEY* key = X509_get0_pubkey(ca.get());
      if (key && X509_CRL_verify(crl, key) == 1) signed_by_ca = true;
    }
    ERR_clear_error();
    if (!signed_by_ca) {
      return Status::InvalidArgument(which +
                                     " is not signed by the CA that the listener trusts (grpc.ca)");
    }
    const std::string issuer = NameKey(X509_CRL_get_issuer(crl));
    STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl);
    for (int k = 0; revoked && k < sk_X509_REVOKED_num(revoked); ++k) {
      const X509_REVOKED* r = sk_X509_REVOKED_value(revoked, k);
      list->revoked_.insert({issuer, SerialHex(X509_REVOKED_get0_serialNumber(r))});
    }
    const int64_t next = TimeUnix(X509_CRL_get0_nextUpdate(crl));
    if (next > 0 && (list->next_update_ == 0 || next < list->next_update_)) {
      list->next_update_ = next;
    }
    ++list->crls_;
  }
  return std::shared_ptr<const RevocationList>(list);
}

bool RevocationList::IsRevoked(const std::string& cert_pem, std::string* serial_hex) const {
  if (revoked_.empty()) return false;
  std::vector<Cert> certs = ReadCerts(cert_pem);
  if (certs.empty()) return false;
  const std::string issuer = NameKey(X509_get_issuer_name(certs.front().get()));
  const std::string serial = SerialHex(X509_get0_serialNumber(certs.front().get()));
  if (serial_hex) *serial_hex = serial;
  return revoked_.count({issuer, serial}) > 0;
}

Result<std::string> SerialOfPem(const std::string& cert_pem) {
  std::vector<Cert> certs = ReadCerts(cert_pem);
  if (certs.empty()) return Status::InvalidArgument("not a PEM certificate");
  return SerialHex(X509_get0_serialNumber(certs.front().get()));
}

Result<std::string> RevokeCertificates(const CertAndKey& ca, const std::string& existing_crl_pem,
                                       const std::vector<std::string>& certs_pem,
                                       int64_t next_update_s) {
  std::vector<Cert> ca_certs = ReadCerts(ca.cert_pem);
  if (ca_certs.empty()) return Status::InvalidArgument("the CA certificate is not PEM");
  X509* ca_cert = ca_certs.front().get();
  Bio kb(BIO_new_mem_buf(ca.key_pem.data(), static_cast<int>(ca.key_pem.size())));
  std::unique_ptr<EVP_PKEY, Free> key(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
  if (!key) return SslError("reading the CA key");
  // Serials already listed (and when they were revoked), then the new ones.
  std::vector<std::pair<std::string, int64_t>> entries;
  if (!existing_crl_pem.empty()) {
    SEXTANT_ASSIGN_OR_RETURN(auto existing, RevocationList::Parse(existing_crl_pem, ca.cert_pem));
    (void)existing;
    for (const auto& crl : ReadCrls(existing_crl_pem)) {
      STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl.get());
      for (int k = 0; revoked && k < sk_X509_REVOKED_num(revoked); ++k) {
        const X509_REVOKED* r = sk_X509_REVOKED_value(revoked, k);
        entries.push_back({SerialHex(X509_REVOKED_get0_serialNumber(r)),
                           TimeUnix(X509_REVOKED_get0_revocationDate(r))});
      }
    }
  }
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  for (const auto& pem : certs_pem) {
    std::vector<Cert> c = ReadCerts(pem);
    if (c.empty()) return Status::InvalidArgument("a certificate to revoke is not PEM");
    if (X509_NAME_cmp(X509_get_issuer_name(c.front().get()), X509_get_subject_name(ca_cert)) != 0) {
      return Status::InvalidArgument("certificate serial " +
                                     SerialHex(X509_get0_serialNumber(c.front().get())) +
                                     " was not issued by this CA");
    }
    const std::string serial = SerialHex(X509_get0_serialNumber(c.front().get()));
    bool listed = false;
    for (const auto& e : entries) listed = listed || e.first == serial;
    if (!listed) entries.push_back({serial, now});
  }
  Crl crl(X509_CRL_new());
  X509_CRL_set_version(crl.get(), 1);  // v2
  X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca_cert));
  std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> last(ASN1_TIME_set(nullptr, now),
                                                             ASN1_TIME_free);
  std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> next(
      ASN1_TIME_set(nullptr, now + next_update_s), ASN1_TIME_free);
  X509_CRL_set1_lastUpdate(crl.get(), last.get());
  X509_CRL_set1_nextUpdate(crl.get(), next.get());
  for (const auto& [serial, when] : entries) {
    X509_REVOKED* r = X509_REVOKED_new();
    BIGNUM* bn = nullptr;
    BN_hex2bn(&bn, serial.c_str());
    ASN1_INTEGER* asn = BN_to_ASN1_INTEGER(bn, nullptr);
    BN_free(bn);
    X509_REVOKED_set_serialNumber(r, asn);
    ASN1_INTEGER_free(asn);
    ASN1_TIME* t = ASN1_TIME_set(nullptr, when > 0 ? when : now);
    X509_REVOKED_set_revocationDate(r, t);
    ASN1_TIME_free(t);
    X509_CRL_add0_revoked(crl.get(), r);
  }
  X509_CRL_sort(crl.get());
  if (!X509_CRL_sign(crl.get(), key.get(), EVP_sha256())) return SslError("signing the CRL");
  Bio out(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_X509_CRL(out.get(), crl.get())) return SslError("writing the CRL");
  char* data = nullptr;
  const long n = BIO_get_mem_data(out.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

}  // namespace sextant::rpc
