// Tensor element types of GGUF files and their block layouts (identical to ggml's on disk).
// A quantized tensor's row is a sequence of blocks; a row of n elements of a block type holds
// n / BlockElements(type) blocks and n must be a multiple of BlockElements(type).
// Thread-safety: constants and pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace sextant::gguf {

// Values are ggml's type ids as stored in GGUF tensor infos.
enum class TensorType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ8_0 = 8,
  kQ4_K = 12,
  kQ6_K = 14,
  kBF16 = 30,
};

// The types this engine reads; nullopt for any other id (e.g. Q5_1), which the reader reports
// as unsupported, naming the tensor.
std::optional<TensorType> TensorTypeFromId(uint32_t id);
std::string_view TensorTypeName(TensorType type);  // "F32", "Q4_K", ...

inline constexpr int kQK4_0 = 32;
inline constexpr int kQK8_0 = 32;
inline constexpr int kQK_K = 256;       // super-block size of the K-quants
inline constexpr int kKScaleSize = 12;  // packed 6-bit scales and mins of Q4_K

using f16_t = uint16_t;   // IEEE binary16 bits
using bf16_t = uint16_t;  // bfloat16 bits

#pragma pack(push, 1)
struct BlockQ4_0 {
  f16_t d;                 // scale
  uint8_t qs[kQK4_0 / 2];  // 32 4-bit values: low nibbles are elements 0..15, high 16..31
};
struct BlockQ8_0 {
  f16_t d;
  int8_t qs[kQK8_0];
};
struct BlockQ4_K {
  f16_t d;                      // super-block scale for the quantized scales
  f16_t dmin;                   // super-block scale for the quantized mins
  uint8_t scales[kKScaleSize];  // 8 sub-blocks of 32: 6-bit scales and mins, packed
  uint8_t qs[kQK_K / 2];        // 4-bit quants
};
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];      // lower 4 bits
  uint8_t qh[kQK_K / 4];      // upper 2 bits
  int8_t scales[kQK_K / 16];  // 16 sub-blocks of 16, 8-bit scales
  f16_t d;                    // super-block scale
};
#pragma pack(pop)
static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ6_K) == 210);

// Elements per block (1 for F32/F16/BF16) and bytes per block.
int64_t BlockElements(TensorType type);
int64_t BlockBytes(TensorType type);

// Bytes of a row of n elements, or nullopt when n is not a multiple of the block size.
std::optional<uint64_t> RowBytes(TensorType type, int64_t n);

float F16ToF32(f16_t h);
f16_t F32ToF16(float f);  // round to nearest even
float BF16ToF32(bf16_t h);
bf16_t F32ToBF16(float f);  // round to nearest even

}  // namespace sextant::gguf
