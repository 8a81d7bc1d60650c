// Tensor type table and the F16 / BF16 conversions, checked against the compiler's own
// IEEE half type where the platform has one.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "engine/gguf/types.h"

namespace sextant::gguf {
namespace {

// Independent references for the half conversions, written with <cmath> in double precision.
float ReferenceHalfToFloat(uint16_t h) {
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  if (exp == 0) return static_cast<float>(sign * std::ldexp(mant, -24));
  if (exp == 31) return static_cast<float>(sign * std::numeric_limits<double>::infinity());
  return static_cast<float>(sign * std::ldexp(1024 + mant, exp - 25));
}

uint16_t ReferenceFloatToHalf(float f) {
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  const double a = std::fabs(static_cast<double>(f));
  if (a >= 65520.0) return sign | 0x7c00;  // rounds to infinity
  if (a < std::ldexp(1.0, -14)) {          // subnormal range: units of 2^-24
    return sign | static_cast<uint16_t>(std::nearbyint(a * std::ldexp(1.0, 24)));
  }
  int e = 0;
  std::frexp(a, &e);                                 // a = m * 2^e, m in [0.5, 1)
  double q = std::nearbyint(std::ldexp(a, 11 - e));  // 11 significant bits
  int exp = e - 1;
  if (q >= 2048.0) {
    q /= 2.0;
    ++exp;
  }
  if (exp > 15) return sign | 0x7c00;
  return sign | static_cast<uint16_t>(((exp + 15) << 10) | (static_cast<int>(q) - 1024));
}

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(GgufTypesTest, IdsNamesAndBlocks) {
  EXPECT_EQ(TensorTypeFromId(0), TensorType::kF32);
  EXPECT_EQ(TensorTypeFromId(1), TensorType::kF16);
  EXPECT_EQ(TensorTypeFromId(2), TensorType::kQ4_0);
  EXPECT_EQ(TensorTypeFromId(8), TensorType::kQ8_0);
  EXPECT_EQ(TensorTypeFromId(12), TensorType::kQ4_K);
  EXPECT_EQ(TensorTypeFromId(14), TensorType::kQ6_K);
  EXPECT_EQ(TensorTypeFromId(30), TensorType::kBF16);
  for (uint32_t id : {3u, 6u, 7u, 10u, 13u, 15u, 29u, 31u, 1000u}) {
    EXPECT_FALSE(TensorTypeFromId(id).has_value()) << id;
  }
  EXPECT_EQ(TensorTypeName(TensorType::kQ4_K), "Q4_K");
  EXPECT_EQ(TensorTypeName(TensorType::kBF16), "BF16");
  EXPECT_EQ(RowBytes(TensorType::kF32, 10), 40u);
  EXPECT_EQ(RowBytes(TensorType::kF16, 10), 20u);
  EXPECT_EQ(RowBytes(TensorType::kQ4_0, 64), 36u);
  EXPECT_EQ(RowBytes(TensorType::kQ8_0, 64), 68u);
  EXPECT_EQ(RowBytes(TensorType::kQ4_K, 512), 288u);
  EXPECT_EQ(RowBytes(TensorType::kQ6_K, 256), 210u);
  EXPECT_FALSE(RowBytes(TensorType::kQ4_0, 48).has_value());
  EXPECT_FALSE(RowBytes(TensorType::kQ4_K, 128).has_value());
  EXPECT_FALSE(RowBytes(TensorType::kF32, -4).has_value());
  EXPECT_FALSE(RowBytes(TensorType::kF32, std::numeric_limits<int64_t>::max()).has_value());
}

TEST(GgufTypesTest, EveryHalfRoundTripsThroughF32) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = F16ToF32(static_cast<f16_t>(h));
    const bool is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
    if (is_nan) {
      EXPECT_TRUE(std::isnan(f)) << h;
      EXPECT_TRUE(std::isnan(F16ToF32(F32ToF16(f)))) << h;
    } else {
      ASSERT_EQ(F32ToF16(f), h) << std::hex << h;
    }
    if (!is_nan) {
      ASSERT_EQ(Bits(ReferenceHalfToFloat(static_cast<uint16_t>(h))), Bits(f)) << std::hex << h;
    }
  }
}

TEST(GgufTypesTest, F32ToF16RoundsToNearestEven) {
  EXPECT_EQ(F32ToF16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie -> even (1.0)
  EXPECT_EQ(F32ToF16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie -> even (up)
  EXPECT_EQ(F32ToF16(65504.0f), 0x7bff);
  EXPECT_EQ(F32ToF16(65519.0f), 0x7bff);
  EXPECT_EQ(F32ToF16(65520.0f), 0x7c00);  // ties to even: infinity
  EXPECT_EQ(F32ToF16(-1e10f), 0xfc00);
  EXPECT_EQ(F32ToF16(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -24)), 0x0001);     // smallest subnormal
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -25)), 0x0000);     // tie between 0 and 1 unit -> 0
  EXPECT_EQ(F32ToF16(std::ldexp(1.5f, -25)), 0x0001);     // above the tie
  EXPECT_EQ(F32ToF16(std::ldexp(3.0f, -25)), 0x0002);     // 1.5 units -> 2 (even)
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -14)), 0x0400);     // smallest normal
  EXPECT_EQ(F32ToF16(std::ldexp(1023.5f, -24)), 0x0400);  // rounds up into the normals
  EXPECT_EQ(F32ToF16(-0.0f), 0x8000);
  EXPECT_EQ(F32ToF16(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(F32ToF16(std::nanf("")) & 0x7e00, 0x7e00);
}

TEST(GgufTypesTest, F32ToF16MatchesAnIndependentReferenceOnSampledFloats) {
  // Every 4093rd bit pattern of all 2^32 floats (about a million), both signs, all exponents,
  // against rounding done in double precision with nearbyint (round to nearest even).
  for (uint64_t u = 0; u < (uint64_t{1} << 32); u += 4093) {
    const float f = FromBits(static_cast<uint32_t>(u));
    if (std::isnan(f)) continue;
    ASSERT_EQ(F32ToF16(f), ReferenceFloatToHalf(f)) << std::hex << u;
  }
}

TEST(GgufTypesTest, BF16ConversionsRoundToNearestEven) {
  EXPECT_EQ(F32ToBF16(1.0f), 0x3f80);
  EXPECT_EQ(BF16ToF32(0x3f80), 1.0f);
  EXPECT_EQ(F32ToBF16(FromBits(0x3f808000)), 0x3f80);  // tie -> even
  EXPECT_EQ(F32ToBF16(FromBits(0x3f818000)), 0x3f82);  // tie -> even (up)
  EXPECT_EQ(F32ToBF16(FromBits(0x3f808001)), 0x3f81);
  EXPECT_EQ(F32ToBF16(FromBits(0x7f7fffff)), 0x7f80);  // max float rounds to infinity
  EXPECT_EQ(F32ToBF16(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_EQ(F32ToBF16(FromBits(0x00018000)), 0x0002);  // subnormals round like the rest
  const bf16_t n = F32ToBF16(std::nanf(""));
  EXPECT_TRUE(std::isnan(BF16ToF32(n)));
  EXPECT_TRUE(std::isnan(BF16ToF32(F32ToBF16(FromBits(0x7f800001)))));  // signalling stays nan
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = BF16ToF32(static_cast<bf16_t>(h));
    if (!std::isnan(f)) {
      ASSERT_EQ(F32ToBF16(f), h) << h;
    }
  }
}

}  // namespace
}  // namespace sextant::gguf
