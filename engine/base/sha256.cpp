// SHA-256 as specified in FIPS 180-4, section 6.2: 64-byte blocks, big-endian words, the message
// padded with 0x80, zeros and its length in bits; OpenSSL's EVP where the build has it.
#include "engine/base/sha256.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#if defined(SEXTANT_HAVE_OPENSSL)
#include <openssl/evp.h>
#endif

namespace sextant {
namespace {

constexpr uint32_t kRound[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

inline uint32_t Rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

}  // namespace

Sha256::Sha256(Implementation impl)
    : h_{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
         0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19} {
#if defined(SEXTANT_HAVE_OPENSSL)
  if (impl == Implementation::kBest) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    // Only allocation fails here; a digest that silently fell back would hide nothing, but an
    // EVP context that cannot start is a broken process.
    if (ctx == nullptr || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1) std::abort();
    evp_ = ctx;
  }
#else
  (void)impl;
#endif
}

Sha256::~Sha256() {
#if defined(SEXTANT_HAVE_OPENSSL)
  if (evp_ != nullptr) EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(evp_));
#endif
}

std::string_view Sha256::BestImplementation() {
#if defined(SEXTANT_HAVE_OPENSSL)
  return "openssl";
#else
  return "portable";
#endif
}

void Sha256::Block(const uint8_t* p) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i) {
    w[i] = uint32_t{p[4 * i]} << 24 | uint32_t{p[4 * i + 1]} << 16 | uint32_t{p[4 * i + 2]} << 8 |
           uint32_t{p[4 * i + 3]};
  }
  for (int i = 16; i < 64; ++i) {
    const uint32_t s0 = Rotr(w[i - 15], 7) ^ Rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    const uint32_t s1 = Rotr(w[i - 2], 17) ^ Rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
  for (int i = 0; i < 64; ++i) {
    const uint32_t t1 =
        h + (Rotr(e, 6) ^ Rotr(e, 11) ^ Rotr(e, 25)) + ((e & f) ^ (~e & g)) + kRound[i] + w[i];
    const uint32_t t2 = (Rotr(a, 2) ^ Rotr(a, 13) ^ Rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h_[0] += a;
  h_[1] += b;
  h_[2] += c;
  h_[3] += d;
  h_[4] += e;
  h_[5] += f;
  h_[6] += g;
  h_[7] += h;
}

void Sha256::Update(const void* bytes, size_t n) {
#if defined(SEXTANT_HAVE_OPENSSL)
  if (evp_ != nullptr) {
    if (EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(evp_), bytes, n) != 1) std::abort();
    return;
  }
#endif
  const auto* data = static_cast<const uint8_t*>(bytes);
  total_bytes_ += n;
  if (buf_len_ > 0) {
    const size_t take = std::min(n, buf_.size() - buf_len_);
    std::memcpy(buf_.data() + buf_len_, data, take);
    buf_len_ += take;
    data += take;
    n -= take;
    if (buf_len_ < buf_.size()) return;
    Block(buf_.data());
    buf_len_ = 0;
  }
  for (; n >= 64; data += 64, n -= 64) Block(data);
  std::memcpy(buf_.data(), data, n);
  buf_len_ = n;
}

Sha256Bytes Sha256::Final() {
#if defined(SEXTANT_HAVE_OPENSSL)
  if (evp_ != nullptr) {
    Sha256Bytes out{};
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(evp_), out.data(), &len) != 1 ||
        len != out.size()) {
      std::abort();
    }
    return out;
  }
#endif
  const uint64_t bits = total_bytes_ * 8;
  buf_[buf_len_++] = 0x80;
  if (buf_len_ > 56) {
    std::memset(buf_.data() + buf_len_, 0, buf_.size() - buf_len_);
    Block(buf_.data());
    buf_len_ = 0;
  }
  std::memset(buf_.data() + buf_len_, 0, 56 - buf_len_);
  for (int i = 0; i < 8; ++i) buf_[56 + i] = static_cast<uint8_t>(bits >> (56 - 8 * i));
  Block(buf_.data());
  Sha256Bytes out;
  for (int i = 0; i < 8; ++i) {
    out[4 * i] = static_cast<uint8_t>(h_[i] >> 24);
    out[4 * i + 1] = static_cast<uint8_t>(h_[i] >> 16);
    out[4 * i + 2] = static_cast<uint8_t>(h_[i] >> 8);
    out[4 * i + 3] = static_cast<uint8_t>(h_[i]);
  }
  return out;
}

std::string ToHex(std::span<const uint8_t> bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    hex.push_back(kHex[b >> 4]);
    hex.push_back(kHex[b & 0xf]);
  }
  return hex;
}

std::string DigestHex(const Sha256Bytes& digest) { return ToHex(digest); }

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

bool IsLowerHexDigest(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Sha256Bytes Sha256Digest(std::span<const uint8_t> data) {
  Sha256 s;
  s.Update(data.data(), data.size());
  return s.Final();
}

std::string Sha256Hex(std::span<const uint8_t> data) { return DigestHex(Sha256Digest(data)); }

std::string Sha256Hex(std::string_view data) {
  return Sha256Hex(std::span(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
}

Result<std::string> Sha256FileHex(const std::filesystem::path& file,
                                  const std::function<void(double)>& on_progress,
                                  const std::function<bool()>& cancelled) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(file, ec);
  if (ec) return Status::NotFound("cannot read " + file.string() + ": " + ec.message());
  std::ifstream in(file, std::ios::binary);
  if (!in) return Status::Unavailable("cannot open " + file.string() + ": " + std::strerror(errno));
  Sha256 h;
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
  return DigestHex(h.Final());
}

Sha256Bytes TokenIdsDigest(std::span<const int32_t> ids) {
  Sha256 h;
  for (int32_t id : ids) {
    const auto u = static_cast<uint32_t>(id);
    const uint8_t le[4] = {static_cast<uint8_t>(u), static_cast<uint8_t>(u >> 8),
                           static_cast<uint8_t>(u >> 16), static_cast<uint8_t>(u >> 24)};
    h.Update(le, sizeof(le));
  }
  return h.Final();
}

}  // namespace sextant
