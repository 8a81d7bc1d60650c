// Reference quantization: error bounds per type and the on-disk bit layout.
//
// Bounds (x a row of normal values, per block of the type):
//   F32            exact
//   F16            |err| <= 2^-11 |x|  (normal range)
//   BF16           |err| <= 2^-8 |x|
//   Q8_0           |err| <= 0.57 * amax/127     (half a step, plus the f16 rounding of d)
//   Q4_0           |err| <= 1.01 * amax/8       (one step: +amax clamps from 8 to 7)
//   Q4_K           rms(err) <= 0.11 * rms(x) over a row
//   Q6_K           rms(err) <= 0.03 * rms(x) over a row
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "engine/gguf/quantize.h"

namespace sextant::gguf {
namespace {

std::vector<float> NormalRow(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

std::vector<float> RoundTrip(TensorType type, const std::vector<float>& x) {
  const auto n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> q(*RowBytes(type, n));
  EXPECT_TRUE(QuantizeRow(type, x.data(), n, q.data()).ok());
  std::vector<float> y(x.size());
  EXPECT_TRUE(DequantizeRow(type, q.data(), n, y.data()).ok());
  return y;
}

double RelRms(const std::vector<float>& x, const std::vector<float>& y) {
  double e = 0, s = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    e += (x[i] - y[i]) * double(x[i] - y[i]);
    s += x[i] * double(x[i]);
  }
  return std::sqrt(e / s);
}

TEST(GgufQuantizeTest, FloatTypes) {
  const auto x = NormalRow(4096, 1);
  EXPECT_EQ(RoundTrip(TensorType::kF32, x), x);
  const auto h = RoundTrip(TensorType::kF16, x);
  const auto b = RoundTrip(TensorType::kBF16, x);
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::fabs(x[i]) > 1e-4f) {
      EXPECT_LE(std::fabs(h[i] - x[i]), std::ldexp(std::fabs(x[i]), -11));
    }
    EXPECT_LE(std::fabs(b[i] - x[i]), std::ldexp(std::fabs(x[i]), -8));
  }
}

TEST(GgufQuantizeTest, Q8_0WithinHalfAStep) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    const auto x = NormalRow(4096, seed, 0.02f);
    const auto y = RoundTrip(TensorType::kQ8_0, x);
    for (size_t b = 0; b < x.size(); b += 32) {
      float amax = 0;
      for (size_t i = b; i < b + 32; ++i) amax = std::max(amax, std::fabs(x[i]));
      for (size_t i = b; i < b + 32; ++i) {
        ASSERT_LE(std::fabs(y[i] - x[i]), 0.57f * amax / 127) << i;
      }
    }
    EXPECT_LT(RelRms(x, y), 0.01);
  }
}

TEST(GgufQuantizeTest, Q4_0WithinOneStep) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    const auto x = NormalRow(4096, seed, 0.02f);
    const auto y = RoundTrip(TensorType::kQ4_0, x);
    for (size_t b = 0; b < x.size(); b += 32) {
      float amax = 0, max = 0;
      for (size_t i = b; i < b + 32; ++i) {
        if (std::fabs(x[i]) > amax) {
          amax = std::fabs(x[i]);
          max = x[i];
        }
      }
      // The value of largest magnitude is represented (almost) exactly, as -8 steps.
      size_t imax = b;
      while (x[imax] != max) ++imax;
      EXPECT_NEAR(y[imax], x[imax], amax * 1e-3f);
      for (size_t i = b; i < b + 32; ++i) {
        ASSERT_LE(std::fabs(y[i] - x[i]), 1.01f * amax / 8) << i;
      }
    }
    EXPECT_LT(RelRms(x, y), 0.12);
  }
}

TEST(GgufQuantizeTest, KQuantsRmsBounds) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    const auto x = NormalRow(4096, seed, 0.02f);
    const double e4 = RelRms(x, RoundTrip(TensorType::kQ4_K, x));
    const double e6 = RelRms(x, RoundTrip(TensorType::kQ6_K, x));
    EXPECT_LT(e4, 0.11) << seed;
    EXPECT_LT(e6, 0.03) << seed;
    EXPECT_LT(e6, e4 / 2) << seed;
  }
}

TEST(GgufQuantizeTest, ZeroAndConstantRows) {
  const std::vector<float> zeros(512, 0.0f);
  for (TensorType t :
       {TensorType::kQ8_0, TensorType::kQ4_0, TensorType::kQ4_K, TensorType::kQ6_K}) {
    for (float v : RoundTrip(t, zeros)) {
      ASSERT_EQ(v, 0.0f) << TensorTypeName(t);
    }
  }
  const std::vector<float> ones(512, 0.5f);
  for (TensorType t :
       {TensorType::kQ8_0, TensorType::kQ4_0, TensorType::kQ4_K, TensorType::kQ6_K}) {
    for (float v : RoundTrip(t, ones)) {
      ASSERT_NEAR(v, 0.5f, 0.5f / 64) << TensorTypeName(t);
    }
  }
}

TEST(GgufQuantizeTest, BitLayouts) {
  // Q4_0: d = max / -8; element j in the low nibble of qs[j], element j+16 in the high nibble.
  std::vector<float> x(32, 0.0f);
  x[0] = -8.0f;  // the largest magnitude: d = 1, stored as 0
  x[1] = 7.0f;   // 7 / 1 + 8 = 15
  x[16] = 1.0f;  // 9, high nibble of qs[0]
  BlockQ4_0 b4{};
  QuantizeRowQ4_0(x.data(), &b4, 32);
  EXPECT_EQ(F16ToF32(b4.d), 1.0f);
  EXPECT_EQ(b4.qs[0], 0x90);
  EXPECT_EQ(b4.qs[1], 0x8F);
  EXPECT_EQ(b4.qs[2], 0x88);

  // Q8_0: d = amax / 127, q = round(x / d).
  std::vector<float> x8(32, 0.0f);
  x8[0] = 127.0f;
  x8[5] = -63.5f;  // rounds away from zero
  BlockQ8_0 b8{};
  QuantizeRowQ8_0(x8.data(), &b8, 32);
  EXPECT_EQ(F16ToF32(b8.d), 1.0f);
  EXPECT_EQ(b8.qs[0], 127);
  EXPECT_EQ(b8.qs[5], -64);

  // Q4_K: scales and mins of sub-blocks 0..3 in the low 6 bits of scales[0..3] / [4..7];
  // sub-blocks 4..7 split across scales[8..11] and the top bits of scales[0..7].
  uint8_t packed[12] = {};
  const uint8_t sc[8] = {1, 2, 3, 63, 17, 33, 48, 62};
  const uint8_t mn[8] = {5, 6, 7, 8, 61, 20, 40, 63};
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      packed[j] = sc[j];
      packed[j + 4] = mn[j];
    } else {
      packed[j + 4] = static_cast<uint8_t>((sc[j] & 0xF) | ((mn[j] & 0xF) << 4));
      packed[j - 4] |= static_cast<uint8_t>((sc[j] >> 4) << 6);
      packed[j] |= static_cast<uint8_t>((mn[j] >> 4) << 6);
    }
  }
  for (int j = 0; j < 8; ++j) {
    uint8_t s, m;
    Q4KScaleMin(j, packed, &s, &m);
    EXPECT_EQ(s, sc[j]) << j;
    EXPECT_EQ(m, mn[j]) << j;
  }
}

TEST(GgufQuantizeTest, RejectsRowsThatAreNotWholeBlocks) {
  std::vector<float> x(48, 1.0f);
  std::vector<uint8_t> q(1024);
  EXPECT_EQ(QuantizeRow(TensorType::kQ4_0, x.data(), 48, q.data()).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(DequantizeRow(TensorType::kQ6_K, q.data(), 48, x.data()).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(QuantizeRow(TensorType::kF16, x.data(), 48, q.data()).ok());
}

}  // namespace
}  // namespace sextant::gguf
