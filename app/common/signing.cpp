#include "app/common/signing.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "app/common/openssl_error.h"
#include "app/common/paths.h"
#include "engine/base/sha256.h"

namespace sextant::report {
namespace {

std::shared_ptr<EVP_PKEY> Own(EVP_PKEY* p) { return {p, EVP_PKEY_free}; }

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Bio = std::unique_ptr<BIO, BioDeleter>;

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

Result<std::vector<uint8_t>> RawPublic(EVP_PKEY* pkey) {
  size_t len = 0;
  if (EVP_PKEY_get_raw_public_key(pkey, nullptr, &len) != 1 || len != 32) {
    return Status::Internal(OpenSslErrorText("cannot read the Ed25519 public key"));
  }
  std::vector<uint8_t> raw(len);
  if (EVP_PKEY_get_raw_public_key(pkey, raw.data(), &len) != 1) {
    return Status::Internal(OpenSslErrorText("cannot read the Ed25519 public key"));
  }
  return raw;
}

Result<std::string> ReadSmallFile(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return Status::NotFound("cannot open " + file.string() + ": " + std::strerror(errno));
  }
  std::ostringstream os;
  os << in.rdbuf();
  if (os.str().size() > 64 * 1024) return Status::InvalidArgument(file.string() + ": too large");
  return os.str();
}

}  // namespace

Result<VerifyingKey> VerifyingKey::FromRaw(const std::vector<uint8_t>& raw) {
  if (raw.size() != 32) {
    return Status::InvalidArgument("an Ed25519 public key is 32 bytes, got " +
                                   std::to_string(raw.size()));
  }
  EVP_PKEY* p = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, raw.data(), raw.size());
  if (p == nullptr) return Status::InvalidArgument(OpenSslErrorText("not an Ed25519 public key"));
  VerifyingKey k;
  k.pkey_ = Own(p);
  k.raw_ = raw;
  k.key_id_ = ToHex(Sha256Digest(raw));
  return k;
}

Result<VerifyingKey> VerifyingKey::FromPem(std::string_view pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Status::ResourceExhausted("BIO_new_mem_buf");
  EVP_PKEY* p = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
  if (p == nullptr) {
    return Status::InvalidArgument(OpenSslErrorText("not a PEM public key"));
  }
  auto owned = Own(p);
  if (EVP_PKEY_get_id(p) != EVP_PKEY_ED25519) {
    return Status::InvalidArgument("the public key is not an Ed25519 key");
  }
  SEXTANT_ASSIGN_OR_RETURN(auto raw, RawPublic(p));
  return FromRaw(raw);
}

Result<VerifyingKey> VerifyingKey::LoadPem(const std::filesystem::path& file) {
  SEXTANT_ASSIGN_OR_RETURN(auto text, ReadSmallFile(file));
  auto key = FromPem(text);
  if (!key.ok()) return key.status().WithContext(file.string());
  return key;
}

std::string VerifyingKey::Pem() const {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), pkey_.get()) != 1) return {};
  return BioText(bio.get());
}

Status VerifyingKey::Verify(std::string_view message, std::string_view signature_hex) const {
  auto sig = FromHex(signature_hex);
  if (!sig.ok() || sig->size() != 64) {
    return Status::Unauthenticated("malformed signature: expected 128 hex digits");
  }
  MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey_.get()) != 1) {
    return Status::Internal(OpenSslErrorText("EVP_DigestVerifyInit"));
  }
  const int rc =
      EVP_DigestVerify(ctx.get(), sig->data(), sig->size(),
                       reinterpret_cast<const unsigned char*>(message.data()), message.size());
  ERR_clear_error();
  if (rc != 1) {
    return Status::Unauthenticated("signature does not match the report under key " + key_id_);
  }
  return Status();
}

Result<SigningKey> SigningKey::Generate() {
  EVP_PKEY* p = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (p == nullptr) return Status::Internal(OpenSslErrorText("cannot generate an Ed25519 key"));
  SigningKey k;
  k.pkey_ = Own(p);
  SEXTANT_ASSIGN_OR_RETURN(auto raw, RawPublic(p));
  SEXTANT_ASSIGN_OR_RETURN(k.public_, VerifyingKey::FromRaw(raw));
  return k;
}

Result<SigningKey> SigningKey::Load(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    return Status::NotFound("cannot read signing key " + file.string() + ": " +
                            std::strerror(errno));
  }
  if ((st.st_mode & 077) != 0) {
    return Status::PermissionDenied("signing key " + file.string() +
                                    " is accessible by group or others; run chmod 600 on it");
  }
  SEXTANT_ASSIGN_OR_RETURN(auto text, ReadSmallFile(file));
  Bio bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  if (!bio) return Status::ResourceExhausted("BIO_new_mem_buf");
  EVP_PKEY* p = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (p == nullptr) {
    return Status::InvalidArgument(OpenSslErrorText(file.string() + ": not a PEM private key"));
  }
  SigningKey k;
  k.pkey_ = Own(p);
  if (EVP_PKEY_get_id(p) != EVP_PKEY_ED25519) {
    return Status::InvalidArgument(file.string() + ": not an Ed25519 key");
  }
  SEXTANT_ASSIGN_OR_RETURN(auto raw, RawPublic(p));
  SEXTANT_ASSIGN_OR_RETURN(k.public_, VerifyingKey::FromRaw(raw));
  return k;
}

Status SigningKey::Save(const std::filesystem::path& file) const {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), pkey_.get(), nullptr, nullptr, 0, nullptr,
                                       nullptr) != 1) {
    return Status::Internal(OpenSslErrorText("cannot encode the private key"));
  }
  const std::string pem = BioText(bio.get());
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    if (err == EEXIST) return Status::AlreadyExists(file.string() + " exists");
    return Status::Unavailable("cannot create " + file.string() + ": " + std::strerror(err));
  }
  size_t done = 0;
  while (done < pem.size()) {
    const ssize_t n = ::write(fd, pem.data() + done, pem.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(file.c_str());
      return Status::Unavailable("cannot write " + file.string() + ": " + std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    return Status::Unavailable("cannot write " + file.string() + ": " + std::strerror(errno));
  }
  return Status();
}

Result<SigningKey> SigningKey::LoadOrCreate(const std::filesystem::path& file) {
  std::error_code ec;
  if (std::filesystem::exists(file, ec)) return Load(file);
  if (file.has_parent_path()) SEXTANT_RETURN_IF_ERROR(EnsurePrivateDir(file.parent_path()));
  SEXTANT_ASSIGN_OR_RETURN(auto key, Generate());
  Status saved = key.Save(file);
  if (saved.code() == StatusCode::kAlreadyExists) return Load(file);  // created meanwhile
  SEXTANT_RETURN_IF_ERROR(saved);
  return key;
}

Result<std::string> SigningKey::Sign(std::string_view message) const {
  MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey_.get()) != 1) {
    return Status::Internal(OpenSslErrorText("EVP_DigestSignInit"));
  }
  std::vector<uint8_t> sig(64);
  size_t len = sig.size();
  if (EVP_DigestSign(ctx.get(), sig.data(), &len,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1 ||
      len != 64) {
    return Status::Internal(OpenSslErrorText("Ed25519 signing failed"));
  }
  return ToHex(sig);
}

Result<std::filesystem::path> DefaultSigningKeyPath() {
  SEXTANT_ASSIGN_OR_RETURN(auto dir, DefaultConsoleConfigDir());
  return dir / "report-signing-key.pem";
}

Result<SignedReport> SignReport(const ValidationReport& report, const SigningKey& key) {
  SignedReport s;
  s.report_json = CanonicalJson(report);
  SEXTANT_ASSIGN_OR_RETURN(s.signature, key.Sign(s.report_json));
  s.key_id = key.key_id();
  return s;
}

Result<ValidationReport> VerifySignedReport(const SignedReport& s, const VerifyingKey& key) {
  if (s.key_id != key.key_id()) {
    return Status::Unauthenticated("report signed by key " + s.key_id +
                                   ", not by the trusted key " + key.key_id());
  }
  SEXTANT_RETURN_IF_ERROR(key.Verify(s.report_json, s.signature));
  nlohmann::json j = nlohmann::json::parse(s.report_json, nullptr, false);
  if (j.is_discarded()) return Status::DataLoss("signed report is not JSON");
  auto report = FromJson(j);
  if (!report.ok()) return Status::DataLoss("signed report: " + report.status().message());
  if (CanonicalJson(*report) != s.report_json) {
    return Status::DataLoss("signed report is not in canonical form");
  }
  return report;
}

nlohmann::json SignedReportToJson(const SignedReport& s) {
  nlohmann::json report = nlohmann::json::parse(s.report_json, nullptr, false);
  if (report.is_discarded()) report = s.report_json;  // kept as text so nothing is lost
  return {{"report", report}, {"signature", s.signature}, {"keyId", s.key_id}};
}

Result<SignedReport> SignedReportFromJson(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("report") || !j.contains("signature") || !j.contains("keyId") ||
      j.size() != 3) {
    return Status::InvalidArgument("a signed report is {\"report\", \"signature\", \"keyId\"}");
  }
  if (!j["signature"].is_string() || !j["keyId"].is_string()) {
    return Status::InvalidArgument("signature and keyId must be strings");
  }
  SignedReport s;
  const auto& r = j["report"];
  s.report_json = r.is_string() ? r.get<std::string>()
                                : r.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  s.signature = j["signature"].get<std::string>();
  s.key_id = j["keyId"].get<std::string>();
  return s;
}

}  // namespace sextant::report
