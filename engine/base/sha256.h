// SHA-256, the one digest of the code base: model files (GGUF), deployment specs, validation
// outputs, audit chains and signatures all use it. It digests with OpenSSL's EVP (hardware-
// accelerated) where the build has OpenSSL, and with the portable FIPS 180-4 code here otherwise
// (the engine-only build for GPU machines that lack the console's libraries). Both give the same
// bytes; tests run both.
//
// Thread-safety: one Sha256 object is used by one thread at a time; the free functions are
// reentrant.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/status.h"

namespace sextant {

using Sha256Bytes = std::array<uint8_t, 32>;

class Sha256 {
 public:
  enum class Implementation { kBest, kPortable };
  // kBest: OpenSSL where the build has it, else the portable code.
  explicit Sha256(Implementation impl = Implementation::kBest);
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, size_t n);
  // The digest of everything passed to Update. The object must not be used afterwards.
  Sha256Bytes Final();
  // "openssl" or "portable": what kBest digests with in this build.
  static std::string_view BestImplementation();

 private:
  void Block(const uint8_t* p);

  void* evp_ = nullptr;  // OpenSSL's EVP_MD_CTX when digesting with OpenSSL
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_{};
  size_t buf_len_ = 0;
  uint64_t total_bytes_ = 0;
};

// Lowercase hex of bytes (DigestHex: of a 32-byte digest).
std::string ToHex(std::span<const uint8_t> bytes);
std::string DigestHex(const Sha256Bytes& digest);
// Decodes lowercase or uppercase hex; INVALID_ARGUMENT on odd length or a non-hex digit (naming
// its offset).
Result<std::vector<uint8_t>> FromHex(std::string_view hex);
// 64 lowercase hex digits.
bool IsLowerHexDigest(std::string_view s);

Sha256Bytes Sha256Digest(std::span<const uint8_t> data);
// sha256 of `data` as lowercase hex.
std::string Sha256Hex(std::span<const uint8_t> data);
std::string Sha256Hex(std::string_view data);

// sha256 of a whole file, read in chunks. on_progress (optional) gets the fraction read;
// cancelled (optional) is polled before each chunk: true ends with CANCELLED. NOT_FOUND when the
// file cannot be read, UNAVAILABLE on a read error.
Result<std::string> Sha256FileHex(const std::filesystem::path& file,
                                  const std::function<void(double)>& on_progress = {},
                                  const std::function<bool()>& cancelled = {});

// The digest of a sequence of token ids: sha256 of each id as 4 little-endian bytes (int32).
// What validation compares across machines.
Sha256Bytes TokenIdsDigest(std::span<const int32_t> ids);

}  // namespace sextant
