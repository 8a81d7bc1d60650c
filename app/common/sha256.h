// SHA-256 digests (OpenSSL EVP) as lowercase hex, of bytes and of files.
// Thread-safety: free functions; safe from any thread.
#pragma once

#include <array>
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

Sha256Bytes Sha256(std::span<const uint8_t> bytes);
std::string Sha256Hex(std::string_view bytes);
std::string ToHex(std::span<const uint8_t> bytes);
// Decodes lowercase or uppercase hex; INVALID_ARGUMENT on odd length or a non-hex digit.
Result<std::vector<uint8_t>> FromHex(std::string_view hex);

// sha256 of a whole file, read in chunks. on_progress (optional) gets the fraction read;
// cancelled (optional) is polled before each chunk: true ends with CANCELLED.
Result<std::string> Sha256FileHex(const std::filesystem::path& file,
                                  const std::function<void(double)>& on_progress = {},
                                  const std::function<bool()>& cancelled = {});

// The digest of a sequence of token ids: sha256 of each id as 4 little-endian bytes (int32).
Sha256Bytes TokenIdsDigest(std::span<const int32_t> ids);

bool IsLowerHexDigest(std::string_view s);  // 64 lowercase hex digits

}  // namespace sextant
