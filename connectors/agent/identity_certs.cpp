#include "connectors/agent/identity_certs.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>

#include "app/common/openssl_error.h"

namespace sextant::rpc {

namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
  void operator()(X509_REQ* p) const { X509_REQ_free(p); }
};
using PKey = std::unique_ptr<EVP_PKEY, Free>;
using Cert = std::unique_ptr<X509, Free>;
using Bio = std::unique_ptr<BIO, Free>;

Status SslError(const std::string& what) { return Status::Internal(OpenSslErrorText(what)); }

Result<PKey> NewKey() {
  EVP_PKEY* k = EVP_EC_gen("P-256");
  if (!k) return SslError("generating an ECDSA P-256 key");
  return PKey(k);
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

Result<CertAndKey> ToPem(X509* cert, EVP_PKEY* key) {
  Bio cb(BIO_new(BIO_s_mem())), kb(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_X509(cb.get(), cert)) return SslError("writing certificate PEM");
  if (!PEM_write_bio_PrivateKey(kb.get(), key, nullptr, nullptr, 0, nullptr, nullptr)) {
    return SslError("writing key PEM");
  }
  return CertAndKey{BioText(cb.get()), BioText(kb.get())};
}

Status AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext) return SslError("extension " + std::string(OBJ_nid2sn(nid)) + "=" + value);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return Status();
}

Result<Cert> NewCert(const std::string& cn, EVP_PKEY* key, int64_t not_before_s,
                     int64_t not_after_s) {
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof(serial));
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), static_cast<long>(not_before_s));
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(not_after_s));
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Sextant"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  return cert;
}

Result<PKey> ReadKey(const std::string& pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* k = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (!k) return SslError("reading private key PEM");
  return PKey(k);
}

Result<Cert> ReadCert(const std::string& pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
  if (!c) return SslError("reading certificate PEM");
  return Cert(c);
}

}  // namespace

Result<CertAndKey> CreateCa(const std::string& common_name, int64_t valid_seconds) {
  SEXTANT_ASSIGN_OR_RETURN(PKey key, NewKey());
  SEXTANT_ASSIGN_OR_RETURN(Cert cert, NewCert(common_name, key.get(), -300, valid_seconds));
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
  SEXTANT_RETURN_IF_ERROR(
      AddExt(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE"));
  SEXTANT_RETURN_IF_ERROR(
      AddExt(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
  SEXTANT_RETURN_IF_ERROR(AddExt(cert.get(), cert.get(), NID_subject_key_identifier, "hash"));
  if (!X509_sign(cert.get(), key.get(), EVP_sha256())) return SslError("signing the CA");
  return ToPem(cert.get(), key.get());
}

namespace {

// A leaf certificate for `key` (a public key suffices) signed by ca.
Result<Cert> SignLeaf(const CertAndKey& ca, const CertRequest& req, EVP_PKEY* key) {
  SEXTANT_ASSIGN_OR_RETURN(PKey ca_key, ReadKey(ca.key_pem));
  SEXTANT_ASSIGN_OR_RETURN(Cert ca_cert, ReadCert(ca.cert_pem));
  SEXTANT_ASSIGN_OR_RETURN(Cert cert,
                           NewCert(req.common_name, key, req.not_before_s, req.not_after_s));
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get()));
  SEXTANT_RETURN_IF_ERROR(AddExt(cert.get(), ca_cert.get(), NID_basic_constraints, "CA:FALSE"));
  SEXTANT_RETURN_IF_ERROR(
      AddExt(cert.get(), ca_cert.get(), NID_key_usage, "critical,digitalSignature"));
  std::string eku;
  if (req.server) eku += "serverAuth";
  if (req.client) eku += std::string(eku.empty() ? "" : ",") + "clientAuth";
  if (!eku.empty()) {
    SEXTANT_RETURN_IF_ERROR(AddExt(cert.get(), ca_cert.get(), NID_ext_key_usage, eku));
  }
  std::string san;
  auto add = [&](const std::string& kind, const std::string& v) {
    san += (san.empty() ? "" : ",") + kind + ":" + v;
  };
  for (const auto& u : req.uri_sans) add("URI", u);
  for (const auto& d : req.dns_sans) add("DNS", d);
  for (const auto& i : req.ip_sans) add("IP", i);
  if (!san.empty()) {
    SEXTANT_RETURN_IF_ERROR(AddExt(cert.get(), ca_cert.get(), NID_subject_alt_name, san));
  }
  SEXTANT_RETURN_IF_ERROR(
      AddExt(cert.get(), ca_cert.get(), NID_authority_key_identifier, "keyid:always"));
  if (!X509_sign(cert.get(), ca_key.get(), EVP_sha256())) return SslError("signing a certificate");
  return cert;
}

}  // namespace

Result<CertAndKey> IssueCert(const CertAndKey& ca, const CertRequest& req) {
  SEXTANT_ASSIGN_OR_RETURN(PKey key, NewKey());
  SEXTANT_ASSIGN_OR_RETURN(Cert cert, SignLeaf(ca, req, key.get()));
  return ToPem(cert.get(), key.get());
}

Result<KeyAndCsr> CreateKeyAndCsr(const std::string& common_name,
                                  const std::vector<std::string>& uri_sans) {
  SEXTANT_ASSIGN_OR_RETURN(PKey key, NewKey());
  std::unique_ptr<X509_REQ, Free> req(X509_REQ_new());
  X509_REQ_set_version(req.get(), 0);
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  X509_REQ_set_pubkey(req.get(), key.get());
  if (!uri_sans.empty()) {
    std::string san;
    for (const auto& u : uri_sans) san += (san.empty() ? "" : ",") + std::string("URI:") + u;
    STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san.c_str());
    if (!ext) {
      sk_X509_EXTENSION_free(exts);
      return SslError("subjectAltName=" + san);
    }
    sk_X509_EXTENSION_push(exts, ext);
    X509_REQ_add_extensions(req.get(), exts);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  }
  if (!X509_REQ_sign(req.get(), key.get(), EVP_sha256())) return SslError("signing the request");
  Bio rb(BIO_new(BIO_s_mem())), kb(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_X509_REQ(rb.get(), req.get())) return SslError("writing the request PEM");
  if (!PEM_write_bio_PrivateKey(kb.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr)) {
    return SslError("writing key PEM");
  }
  return KeyAndCsr{BioText(kb.get()), BioText(rb.get())};
}

Result<std::string> IssueFromCsr(const CertAndKey& ca, const std::string& csr_pem,
                                 const CertRequest& request) {
  Bio bio(BIO_new_mem_buf(csr_pem.data(), static_cast<int>(csr_pem.size())));
  std::unique_ptr<X509_REQ, Free> req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (!req) {
    ERR_clear_error();
    return Status::InvalidArgument(
        "not a PEM certificate signing request (expected -----BEGIN CERTIFICATE REQUEST-----)");
  }
  EVP_PKEY* pub = X509_REQ_get0_pubkey(req.get());
  if (pub == nullptr || X509_REQ_verify(req.get(), pub) != 1) {
    ERR_clear_error();
    return Status::InvalidArgument(
        "the certificate signing request's signature does not verify: it was not made with the "
        "key it carries");
  }
  SEXTANT_ASSIGN_OR_RETURN(Cert cert, SignLeaf(ca, request, pub));
  Bio cb(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_X509(cb.get(), cert.get())) return SslError("writing certificate PEM");
  return BioText(cb.get());
}

Result<std::vector<std::string>> UriSansOfPem(const std::string& cert_pem) {
  SEXTANT_ASSIGN_OR_RETURN(Cert cert, ReadCert(cert_pem));
  std::vector<std::string> out;
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr));
  if (!names) return out;
  std::unique_ptr<GENERAL_NAMES, Free> guard(names);
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
    if (gn->type != GEN_URI) continue;
    const ASN1_IA5STRING* s = gn->d.uniformResourceIdentifier;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
  }
  return out;
}

Result<std::string> SpiffeIdOfPem(const std::string& cert_pem) {
  SEXTANT_ASSIGN_OR_RETURN(auto uris, UriSansOfPem(cert_pem));
  for (const auto& u : uris) {
    if (u.rfind("spiffe://", 0) == 0) return u;
  }
  return std::string();
}

Result<int64_t> NotAfterUnixOfPem(const std::string& cert_pem) {
  SEXTANT_ASSIGN_OR_RETURN(Cert cert, ReadCert(cert_pem));
  const ASN1_TIME* not_after = X509_get0_notAfter(cert.get());
  struct tm tm {};
  if (not_after == nullptr || ASN1_TIME_to_tm(not_after, &tm) != 1) {
    return Status::InvalidArgument("certificate has no readable notAfter");
  }
  return static_cast<int64_t>(timegm(&tm));
}

Result<std::string> ReadTextFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot read " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status WriteTextFile(const std::filesystem::path& path, const std::string& text, bool secret) {
  const int fd =
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, secret ? 0600 : 0644);
  if (fd < 0) return Status::Unavailable("cannot write " + path.string());
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n <= 0) {
      ::close(fd);
      return Status::Unavailable("short write to " + path.string());
    }
    done += static_cast<size_t>(n);
  }
  if (secret) ::fchmod(fd, 0600);
  ::close(fd);
  return Status();
}

Result<std::vector<std::filesystem::path>> CertsInit(const CertsInitOptions& options) {
  namespace fs = std::filesystem;
  if (options.trust_domain.empty() ||
      options.trust_domain.find_first_of("/: ") != std::string::npos) {
    return Status::InvalidArgument("trust domain '" + options.trust_domain +
                                   "' must be a bare domain name such as example.org");
  }
  std::error_code ec;
  fs::create_directories(options.out_dir, ec);
  if (ec)
    return Status::Unavailable("cannot create " + options.out_dir.string() + ": " + ec.message());
  if (fs::exists(options.out_dir / "ca.key")) {
    return Status::AlreadyExists((options.out_dir / "ca.key").string() +
                                 " exists; refusing to replace a CA (remove it first)");
  }
  const int64_t valid_seconds = options.valid_days * 24 * 3600;
  // Everything is made and checked in memory first (identities, the vendor's requests), then
  // written: a refused identity or a bad request leaves no CA behind that a rerun would refuse
  // to replace, and a failed write removes what was written before it.
  struct Output {
    fs::path path;
    std::string text;
    bool secret = false;
  };
  std::vector<Output> outputs;
  auto add_pair = [&](const std::string& stem, const CertAndKey& ck) {
    outputs.push_back({options.out_dir / (stem + ".pem"), ck.cert_pem, false});
    outputs.push_back({options.out_dir / (stem + ".key"), ck.key_pem, true});
  };
  auto identity_request = [&](const std::string& id) -> Result<CertRequest> {
    const auto slash = id.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == id.size()) {
      return Status::InvalidArgument("identity '" + id + "' must be KIND/NAME (customer/admin)");
    }
    CertRequest client;
    client.common_name = id;
    client.client = true;
    client.uri_sans = {"spiffe://" + options.trust_domain + "/" + id};
    client.not_after_s = valid_seconds;
    return client;
  };
  auto stem_of = [](std::string id) {
    for (char& c : id) {
      if (c == '/') c = '-';
    }
    return id;
  };
  for (const auto& id : options.identities) {
    if (id.rfind("vendor/", 0) == 0) {
      return Status::InvalidArgument(
          "identity '" + id +
          "': a vendor's private key is never made on the customer's side; the vendor runs "
          "`sextant certs request --identity " +
          id + "` and sends the request, which `certs init --csr " + id +
          "=FILE` (or `certs issue`) "
          "turns into its certificate");
    }
    SEXTANT_RETURN_IF_ERROR(identity_request(id).status());
  }
  for (const auto& [id, csr] : options.csrs) {
    SEXTANT_RETURN_IF_ERROR(identity_request(id).status().WithContext("--csr " + id));
  }

  SEXTANT_ASSIGN_OR_RETURN(CertAndKey ca,
                           CreateCa("Sextant agent CA " + options.trust_domain, valid_seconds));
  add_pair("ca", ca);

  CertRequest server;
  server.common_name = "sextant-agent";
  server.server = true;
  server.ip_sans = {"127.0.0.1"};
  server.dns_sans = {"localhost"};
  server.uri_sans = {"spiffe://" + options.trust_domain + "/agent/sextant-agent"};
  server.not_after_s = valid_seconds;
  for (const auto& n : options.extra_server_names) {
    in6_addr a6;
    in_addr a4;
    if (inet_pton(AF_INET, n.c_str(), &a4) == 1 || inet_pton(AF_INET6, n.c_str(), &a6) == 1) {
      server.ip_sans.push_back(n);
    } else {
      server.dns_sans.push_back(n);
    }
  }
  SEXTANT_ASSIGN_OR_RETURN(CertAndKey server_ck, IssueCert(ca, server));
  add_pair("server", server_ck);
  for (const auto& id : options.identities) {
    SEXTANT_ASSIGN_OR_RETURN(CertRequest client, identity_request(id));
    SEXTANT_ASSIGN_OR_RETURN(CertAndKey ck, IssueCert(ca, client));
    add_pair(stem_of(id), ck);
  }
  for (const auto& [id, csr] : options.csrs) {
    SEXTANT_ASSIGN_OR_RETURN(CertRequest client, identity_request(id));
    auto cert = IssueFromCsr(ca, csr, client);
    if (!cert.ok()) return cert.status().WithContext("--csr " + id);
    outputs.push_back({options.out_dir / (stem_of(id) + ".pem"), *cert, false});
  }

  std::vector<fs::path> written;
  for (const Output& o : outputs) {
    if (Status s = WriteTextFile(o.path, o.text, o.secret); !s.ok()) {
      for (const fs::path& p : written) fs::remove(p, ec);
      return s;
    }
    written.push_back(o.path);
  }
  return written;
}

}  // namespace sextant::rpc
