#include "app/common/sha256.h"

#include <openssl/evp.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>

namespace sextant {
namespace {

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

// An incremental sha256; OpenSSL failures here mean memory exhaustion, reported as such.
class Sha256Hasher {
 public:
  Sha256Hasher() : ctx_(EVP_MD_CTX_new()) {
    ok_ = ctx_ != nullptr && EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) == 1;
  }
  void Update(const void* data, size_t n) {
    if (ok_ && n > 0) ok_ = EVP_DigestUpdate(ctx_.get(), data, n) == 1;
  }
  Result<Sha256Bytes> Final() {
    Sha256Bytes out{};
    unsigned int len = 0;
    if (!ok_ || EVP_DigestFinal_ex(ctx_.get(), out.data(), &len) != 1 || len != out.size()) {
      return Status::Internal("OpenSSL sha256 failed");
    }
    return out;
  }

 private:
  MdCtx ctx_;
  bool ok_ = false;
};

Sha256Bytes MustFinal(Sha256Hasher& h) {
  auto r = h.Final();
  if (!r.ok()) std::abort();  // only on allocation failure inside OpenSSL
  return *r;
}

}  // namespace

Sha256Bytes Sha256(std::span<const uint8_t> bytes) {
  Sha256Hasher h;
  h.Update(bytes.data(), bytes.size());
  return MustFinal(h);
}

std::string ToHex(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xF]);
  }
  return out;
}

std::string Sha256Hex(std::string_view bytes) {
  return ToHex(Sha256({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}));
}

Result<std::vector<uint8_t>> FromHex(std::string_view hex) {
  if (hex.size() % 2 != 0) return Status::InvalidArgument("hex string of odd length");
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::vector<uint8_t> out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = nibble(hex[2 * i]);
    const int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return Status::InvalidArgument("not a hex digit at offset " +
                                     std::to_string(hi < 0 ? 2 * i : 2 * i + 1));
    }
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

Result<std::string> Sha256FileHex(const std::filesystem::path& file,
                                  const std::function<void(double)>& on_progress,
                                  const std::function<bool()>& cancelled) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(file, ec);
  if (ec) return Status::NotFound("cannot read " + file.string() + ": " + ec.message());
  std::ifstream in(file, std::ios::binary);
  if (!in) return Status::Unavailable("cannot open " + file.string() + ": " + std::strerror(errno));
  Sha256Hasher h;
  std::vector<char> buf(1 << 20);
  uintmax_t done = 0;
  while (in) {
    if (cancelled && cancelled()) {
      return Status::Cancelled("sha256 of " + file.string() + " cancelled");
    }
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto n = static_cast<size_t>(in.gcount());
    h.Update(buf.data(), n);
    done += n;
    if (on_progress && size > 0) on_progress(static_cast<double>(done) / static_cast<double>(size));
  }
  if (in.bad()) return Status::Unavailable("error reading " + file.string());
  SEXTANT_ASSIGN_OR_RETURN(auto digest, h.Final());
  return ToHex(digest);
}

Sha256Bytes TokenIdsDigest(std::span<const int32_t> ids) {
  Sha256Hasher h;
  for (int32_t id : ids) {
    const auto u = static_cast<uint32_t>(id);
    const uint8_t le[4] = {static_cast<uint8_t>(u), static_cast<uint8_t>(u >> 8),
                           static_cast<uint8_t>(u >> 16), static_cast<uint8_t>(u >> 24)};
    h.Update(le, sizeof(le));
  }
  return MustFinal(h);
}

bool IsLowerHexDigest(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace sextant
