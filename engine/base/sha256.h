// SHA-256 (FIPS 180-4) in portable C++. The engine digests model files with OpenSSL where it is
// built with it (hardware-accelerated); this is the digest of a build without OpenSSL, such as
// the engine-only build for GPU machines that lack the console's libraries.
//
// Thread-safety: one Sha256 object is used by one thread at a time; Sha256Hex is reentrant.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace sextant {

class Sha256 {
 public:
  Sha256();
  void Update(const uint8_t* data, size_t n);
  // The digest of everything passed to Update. The object must not be used afterwards.
  std::array<uint8_t, 32> Final();

 private:
  void Block(const uint8_t* p);

  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_{};
  size_t buf_len_ = 0;
  uint64_t total_bytes_ = 0;
};

// Lowercase hex of a 32-byte digest.
std::string DigestHex(const std::array<uint8_t, 32>& digest);

// sha256 of `data` as lowercase hex.
std::string Sha256Hex(std::span<const uint8_t> data);

}  // namespace sextant
