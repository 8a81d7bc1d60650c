// Tensor type table and exact half-precision conversions.
#include "engine/gguf/types.h"

#include <cstring>
#include <limits>

namespace sextant::gguf {

std::optional<TensorType> TensorTypeFromId(uint32_t id) {
  switch (id) {
    case 0:
      return TensorType::kF32;
    case 1:
      return TensorType::kF16;
    case 2:
      return TensorType::kQ4_0;
    case 8:
      return TensorType::kQ8_0;
    case 12:
      return TensorType::kQ4_K;
    case 14:
      return TensorType::kQ6_K;
    case 30:
      return TensorType::kBF16;
    default:
      return std::nullopt;
  }
}

std::string_view TensorTypeName(TensorType type) {
  switch (type) {
    case TensorType::kF32:
      return "F32";
    case TensorType::kF16:
      return "F16";
    case TensorType::kQ4_0:
      return "Q4_0";
    case TensorType::kQ8_0:
      return "Q8_0";
    case TensorType::kQ4_K:
      return "Q4_K";
    case TensorType::kQ6_K:
      return "Q6_K";
    case TensorType::kBF16:
      return "BF16";
  }
  return "?";
}

int64_t BlockElements(TensorType type) {
  switch (type) {
    case TensorType::kF32:
    case TensorType::kF16:
    case TensorType::kBF16:
      return 1;
    case TensorType::kQ4_0:
      return kQK4_0;
    case TensorType::kQ8_0:
      return kQK8_0;
    case TensorType::kQ4_K:
    case TensorType::kQ6_K:
      return kQK_K;
  }
  return 1;
}

int64_t BlockBytes(TensorType type) {
  switch (type) {
    case TensorType::kF32:
      return 4;
    case TensorType::kF16:
    case TensorType::kBF16:
      return 2;
    case TensorType::kQ4_0:
      return sizeof(BlockQ4_0);
    case TensorType::kQ8_0:
      return sizeof(BlockQ8_0);
    case TensorType::kQ4_K:
      return sizeof(BlockQ4_K);
    case TensorType::kQ6_K:
      return sizeof(BlockQ6_K);
  }
  return 1;
}

std::optional<uint64_t> RowBytes(TensorType type, int64_t n) {
  const int64_t block = BlockElements(type);
  if (n < 0 || n % block != 0) return std::nullopt;
  const uint64_t blocks = static_cast<uint64_t>(n / block);
  const uint64_t bytes = static_cast<uint64_t>(BlockBytes(type));
  if (blocks > std::numeric_limits<uint64_t>::max() / bytes) return std::nullopt;
  return blocks * bytes;
}

namespace {

uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

float BitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

}  // namespace

float F16ToF32(f16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    if (mant == 0) return BitsFloat(sign);
    // Subnormal: mant * 2^-24, exact in f32. Normalize the mantissa.
    int e = -1;
    uint32_t m = mant;
    do {
      ++e;
      m <<= 1;
    } while ((m & 0x400u) == 0);
    // value = 1.(m & 0x3ff) * 2^(-15 - e)
    const uint32_t f32_exp = static_cast<uint32_t>(127 - 15 - e);
    return BitsFloat(sign | (f32_exp << 23) | ((m & 0x3ffu) << 13));
  }
  if (exp == 31) return BitsFloat(sign | 0x7f800000u | (mant << 13));  // inf / nan (payload kept)
  return BitsFloat(sign | ((exp + 112u) << 23) | (mant << 13));
}

f16_t F32ToF16(float f) {
  const uint32_t x = FloatBits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs > 0x7f800000u) {  // nan: keep it quiet and keep the top payload bits
    return static_cast<f16_t>(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));
  }
  // 65520 is halfway between 65504 (largest half, odd mantissa) and 65536: ties go to inf.
  if (abs >= 0x477ff000u) return static_cast<f16_t>(sign | 0x7c00u);
  const uint32_t e = abs >> 23;
  if (e < 113) {  // below 2^-14: half subnormal (or zero), in units of 2^-24
    if (e == 0) return static_cast<f16_t>(sign);  // f32 subnormals are far below 2^-25
    const uint32_t m = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;                    // >= 14
    if (shift >= 25) return static_cast<f16_t>(sign);  // < 0.5 units (m < 2^24)
    uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;  // may become the smallest normal: fine
    return static_cast<f16_t>(sign | q);
  }
  uint32_t h = ((e - 112u) << 10) | ((abs & 0x7fffffu) >> 13);
  const uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // carry into the exponent is right
  return static_cast<f16_t>(sign | h);
}

float BF16ToF32(bf16_t h) { return BitsFloat(static_cast<uint32_t>(h) << 16); }

bf16_t F32ToBF16(float f) {
  const uint32_t x = FloatBits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<bf16_t>((x >> 16) | 0x40u);  // quiet nan
  const uint32_t rounded = x + 0x7fffu + ((x >> 16) & 1u);
  return static_cast<bf16_t>(rounded >> 16);
}

}  // namespace sextant::gguf
