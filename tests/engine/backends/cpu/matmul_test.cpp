#include "engine/backends/cpu/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "engine/backends/cpu/matmul_kernels.h"
#include "engine/backends/cpu/thread_pool.h"
#include "engine/gguf/types.h"

namespace sextant::cpu {
namespace {

using gguf::TensorType;

// Random but valid rows of `type`: random quant bytes (every bit pattern, -128 included) and
// modest positive scales, so products stay O(1).
std::vector<uint8_t> RandomWeights(TensorType type, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  std::uniform_int_distribution<int> byte(0, 255);
  const uint64_t row_bytes = *gguf::RowBytes(type, cols);
  std::vector<uint8_t> w(row_bytes * static_cast<uint64_t>(rows));
  for (auto& b : w) b = static_cast<uint8_t>(byte(rng));
  auto put16 = [](uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); };
  auto scale = [&](float lo, float hi) {
    return gguf::F32ToF16(lo + (hi - lo) * (uni(rng) + 1.0f) / 2.0f);
  };
  const int64_t n = rows * cols;
  switch (type) {
    case TensorType::kF32:
      for (int64_t i = 0; i < n; ++i) {
        const float v = uni(rng);
        std::memcpy(w.data() + 4 * i, &v, 4);
      }
      break;
    case TensorType::kF16:
      for (int64_t i = 0; i < n; ++i) put16(w.data() + 2 * i, gguf::F32ToF16(uni(rng)));
      break;
    case TensorType::kBF16:
      for (int64_t i = 0; i < n; ++i) put16(w.data() + 2 * i, gguf::F32ToBF16(uni(rng)));
      break;
    case TensorType::kQ8_0:
      for (int64_t b = 0; b < n / 32; ++b) put16(w.data() + b * 34, scale(0.002f, 0.01f));
      break;
    case TensorType::kQ4_0:
      for (int64_t b = 0; b < n / 32; ++b) put16(w.data() + b * 18, scale(0.02f, 0.1f));
      break;
    case TensorType::kQ4_K:
      for (int64_t b = 0; b < n / 256; ++b) {
        put16(w.data() + b * 144, scale(0.001f, 0.003f));
        put16(w.data() + b * 144 + 2, scale(0.001f, 0.003f));
      }
      break;
    case TensorType::kQ6_K:
      for (int64_t b = 0; b < n / 256; ++b) put16(w.data() + b * 210 + 208, scale(0.0002f, 0.001f));
      break;
  }
  return w;
}

std::vector<float> RandomActivations(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = normal(rng);
  return x;
}

// Reference: each row dequantized to f32, dot products in double.
std::vector<double> Reference(const WeightView& w, const std::vector<float>& x, int64_t n_tokens) {
  std::vector<double> y(static_cast<size_t>(n_tokens * w.rows));
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    DequantizeRow(w, r, row.data());
    for (int64_t t = 0; t < n_tokens; ++t) {
      double s = 0.0;
      for (int64_t c = 0; c < w.cols; ++c)
        s += static_cast<double>(row[c]) * static_cast<double>(x[t * w.cols + c]);
      y[t * w.rows + r] = s;
    }
  }
  return y;
}

double RelL2(const std::vector<float>& y, const std::vector<double>& ref) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    num += (y[i] - ref[i]) * (y[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

double RelL2(const std::vector<float>& y, const std::vector<float>& ref) {
  return RelL2(y, std::vector<double>(ref.begin(), ref.end()));
}

// Error bounds (relative L2 over the whole output, against the f64 reference of the same
// dequantized weights). Float weights only see f32 summation error; quantized weights also see
// the Q8 rounding of the activations (|error| <= d/2 per element, d = max|x| / 127 per block).
double Bound(TensorType type) {
  switch (type) {
    case TensorType::kF32:
    case TensorType::kF16:
    case TensorType::kBF16:
      return 1e-6;
    default:
      return 1e-2;
  }
}

int64_t ColsFor(TensorType type) {
  switch (type) {
    case TensorType::kF32:
      return 101;  // not a multiple of the vector width
    case TensorType::kF16:
    case TensorType::kBF16:
      return 200;
    case TensorType::kQ8_0:
    case TensorType::kQ4_0:
      return 288;  // 9 blocks
    default:
      return 512;  // 2 super-blocks
  }
}

constexpr TensorType kTypes[] = {TensorType::kF32,  TensorType::kF16,  TensorType::kBF16,
                                 TensorType::kQ8_0, TensorType::kQ4_0, TensorType::kQ4_K,
                                 TensorType::kQ6_K};

std::vector<KernelLevel> AvailableLevels() {
  std::vector<KernelLevel> levels;
  for (int l = 0; l <= static_cast<int>(DetectedKernelLevel()); ++l)
    levels.push_back(static_cast<KernelLevel>(l));
  return levels;
}

class LevelGuard {
 public:
  explicit LevelGuard(KernelLevel l) : saved_(ActiveKernelLevel()) { SetCpuKernelLevel(l); }
  ~LevelGuard() { SetCpuKernelLevel(saved_); }

 private:
  KernelLevel saved_;
};

std::vector<float> RunMatMul(const WeightView& w, const std::vector<float>& x, int64_t n_tokens,
                             ThreadPool* pool) {
  std::vector<float> y(static_cast<size_t>(n_tokens * w.rows), std::nanf(""));
  MatMul(w, x.data(), n_tokens, y.data(), pool);
  return y;
}

TEST(CpuMatMul, EveryTypeAndLevelMatchesTheReference) {
  ThreadPool pool(2);
  for (TensorType type : kTypes) {
    for (int64_t rows : {67, 301}) {  // neither a multiple of a row tile nor of a thread chunk
      const int64_t cols = ColsFor(type);
      const auto wbytes = RandomWeights(type, rows, cols, 7u + static_cast<uint32_t>(rows));
      const WeightView w{type, wbytes.data(), rows, cols};
      for (int64_t n_tokens : {1, 3, 17}) {
        const auto x = RandomActivations(n_tokens * cols, 11u + static_cast<uint32_t>(n_tokens));
        const auto ref = Reference(w, x, n_tokens);
        for (KernelLevel level : AvailableLevels()) {
          LevelGuard guard(level);
          for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
            const auto y = RunMatMul(w, x, n_tokens, p);
            const double err = RelL2(y, ref);
            EXPECT_LT(err, Bound(type))
                << gguf::TensorTypeName(type) << " rows=" << rows << " tokens=" << n_tokens
                << " level=" << KernelLevelName(level) << " pool=" << (p != nullptr);
          }
        }
      }
    }
  }
}

// The SIMD levels compute the same integer dot products as the portable code (same activation
// quantization), so they agree far more closely than either agrees with the f64 reference.
TEST(CpuMatMul, KernelLevelsAgreeWithEachOther) {
  const auto levels = AvailableLevels();
  if (levels.size() < 2) GTEST_SKIP() << "this CPU has no SIMD kernel level to compare";
  if (DetectedKernelLevel() < KernelLevel::kAvx512)
    std::printf(
        "[ note ] native AVX-512 kernels skipped: this CPU lacks AVX-512 VNNI/BF16 "
        "(CpuMatMulAvx512Emulated runs them on emulated AVX-512)\n");
  ThreadPool pool(2);
  for (TensorType type : kTypes) {
    const int64_t rows = 45, cols = ColsFor(type);
    const auto wbytes = RandomWeights(type, rows, cols, 99);
    const WeightView w{type, wbytes.data(), rows, cols};
    for (int64_t n_tokens : {1, 3, 17}) {
      const auto x = RandomActivations(n_tokens * cols, 5);
      std::vector<float> base;
      {
        LevelGuard guard(KernelLevel::kPortable);
        base = RunMatMul(w, x, n_tokens, &pool);
      }
      for (size_t l = 1; l < levels.size(); ++l) {
        LevelGuard guard(levels[l]);
        EXPECT_LT(RelL2(RunMatMul(w, x, n_tokens, &pool), base), 2e-6)
            << gguf::TensorTypeName(type) << " tokens=" << n_tokens << " "
            << KernelLevelName(levels[l]) << " vs portable";
      }
    }
  }
}

// A prefill batch larger than one cache block of tokens, on wide rows (the FFN down shape).
TEST(CpuMatMul, LargeBatchAcrossTokenBlocks) {
  ThreadPool pool(2);
  for (TensorType type : kTypes) {
    const int64_t rows = 37, cols = 5632, n_tokens = 70;
    const auto wbytes = RandomWeights(type, rows, cols, 3);
    const WeightView w{type, wbytes.data(), rows, cols};
    const auto x = RandomActivations(n_tokens * cols, 4);
    EXPECT_LT(RelL2(RunMatMul(w, x, n_tokens, &pool), Reference(w, x, n_tokens)), Bound(type))
        << gguf::TensorTypeName(type);
  }
}

// A token's result does not depend on the other tokens of the batch, bit for bit (batched
// serving relies on it: greedy output must be the same alone or batched).
TEST(CpuMatMul, TokenResultIndependentOfBatch) {
  ThreadPool pool(2);
  for (KernelLevel level : AvailableLevels()) {
    LevelGuard guard(level);
    for (TensorType type : kTypes) {
      const int64_t rows = 70, cols = ColsFor(type), n_tokens = 9;
      const auto wbytes = RandomWeights(type, rows, cols, 21);
      const WeightView w{type, wbytes.data(), rows, cols};
      const auto x = RandomActivations(n_tokens * cols, 22);
      const auto all = RunMatMul(w, x, n_tokens, &pool);
      for (int64_t t : {0, 4, 8}) {
        const std::vector<float> xt(x.begin() + t * cols, x.begin() + (t + 1) * cols);
        const auto one = RunMatMul(w, xt, 1, &pool);
        for (int64_t r = 0; r < rows; ++r)
          ASSERT_EQ(one[r], all[t * rows + r])
              << gguf::TensorTypeName(type) << " " << KernelLevelName(level) << " token " << t
              << " row " << r;
      }
    }
  }
}

// Hand-built blocks with known values.
TEST(CpuDequantizeRow, KnownBlocks) {
  {
    gguf::BlockQ4_0 b{};
    b.d = gguf::F32ToF16(0.5f);
    for (int i = 0; i < 16; ++i) b.qs[i] = static_cast<uint8_t>(i | ((15 - i) << 4));
    const WeightView w{TensorType::kQ4_0, reinterpret_cast<const uint8_t*>(&b), 1, 32};
    float out[32];
    DequantizeRow(w, 0, out);
    for (int i = 0; i < 16; ++i) {
      EXPECT_EQ(out[i], 0.5f * static_cast<float>(i - 8));
      EXPECT_EQ(out[i + 16], 0.5f * static_cast<float>(7 - i));
    }
  }
  {
    gguf::BlockQ8_0 b[2]{};
    b[1].d = gguf::F32ToF16(0.25f);
    for (int i = 0; i < 32; ++i) b[1].qs[i] = static_cast<int8_t>(i * 4 - 64);
    const WeightView w{TensorType::kQ8_0, reinterpret_cast<const uint8_t*>(b), 2, 32};
    float out[32];
    DequantizeRow(w, 1, out);
    for (int i = 0; i < 32; ++i) EXPECT_EQ(out[i], 0.25f * static_cast<float>(i * 4 - 64));
  }
  {
    // Q4_K: sub-block j has scale j+1 and min j (j < 4: low 6 bits of scales[j] / scales[j+4];
    // j >= 4: low nibbles of scales[j+4] and high bits of scales[j-4] / scales[j]).
    gguf::BlockQ4_K b{};
    b.d = gguf::F32ToF16(1.0f);
    b.dmin = gguf::F32ToF16(0.5f);
    const int sc[8] = {1, 2, 3, 4, 5, 6, 7, 8}, mn[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    for (int j = 0; j < 4; ++j) {
      b.scales[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
      b.scales[j + 4] = static_cast<uint8_t>(mn[j] | ((mn[j + 4] >> 4) << 6));
      b.scales[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4));
    }
    for (int i = 0; i < 128; ++i) b.qs[i] = static_cast<uint8_t>((i % 16) | ((15 - i % 16) << 4));
    const WeightView w{TensorType::kQ4_K, reinterpret_cast<const uint8_t*>(&b), 1, 256};
    float out[256];
    DequantizeRow(w, 0, out);
    for (int j = 0; j < 8; ++j)
      for (int i = 0; i < 32; ++i) {
        const int q = (j % 2 == 0) ? i % 16 : 15 - i % 16;
        EXPECT_EQ(out[j * 32 + i], static_cast<float>(sc[j] * q) - 0.5f * static_cast<float>(mn[j]))
            << j << " " << i;
      }
  }
  {
    // Q6_K: element e = 6-bit value (e % 64), scale of 16-group s = s - 8.
    gguf::BlockQ6_K b{};
    b.d = gguf::F32ToF16(2.0f);
    for (int s = 0; s < 16; ++s) b.scales[s] = static_cast<int8_t>(s - 8);
    for (int e = 0; e < 256; ++e) {
      const int v = e % 64, half = e / 128, l = e % 128, g = l / 32, pos = l % 32;
      uint8_t& ql = b.ql[half * 64 + pos + (g % 2) * 32];
      ql = static_cast<uint8_t>(ql | ((v & 0xF) << (g < 2 ? 0 : 4)));
      b.qh[half * 32 + pos] = static_cast<uint8_t>(b.qh[half * 32 + pos] | ((v >> 4) << (2 * g)));
    }
    const WeightView w{TensorType::kQ6_K, reinterpret_cast<const uint8_t*>(&b), 1, 256};
    float out[256];
    DequantizeRow(w, 0, out);
    for (int e = 0; e < 256; ++e)
      EXPECT_EQ(out[e], 2.0f * static_cast<float>(e / 16 - 8) * static_cast<float>(e % 64 - 32))
          << e;
  }
  {
    const uint16_t h[3] = {gguf::F32ToF16(1.5f), gguf::F32ToF16(-2.0f), 0x0001};  // + subnormal
    const WeightView w{TensorType::kF16, reinterpret_cast<const uint8_t*>(h), 1, 3};
    float out[3];
    DequantizeRow(w, 0, out);
    EXPECT_EQ(out[0], 1.5f);
    EXPECT_EQ(out[1], -2.0f);
    EXPECT_EQ(out[2], std::ldexp(1.0f, -24));
    const uint16_t bf[2] = {0x3fc0, 0xc000};  // 1.5, -2
    const WeightView wb{TensorType::kBF16, reinterpret_cast<const uint8_t*>(bf), 1, 2};
    DequantizeRow(wb, 0, out);
    EXPECT_EQ(out[0], 1.5f);
    EXPECT_EQ(out[1], -2.0f);
  }
}

TEST(CpuMatMul, KernelLevelControl) {
  const KernelLevel detected = DetectedKernelLevel();
  {
    LevelGuard guard(KernelLevel::kAvx512);
    EXPECT_EQ(ActiveKernelLevel(), detected) << "clamped to what the CPU has";
  }
  {
    LevelGuard guard(KernelLevel::kPortable);
    EXPECT_EQ(ActiveKernelLevel(), KernelLevel::kPortable);
  }
  EXPECT_STREQ(KernelLevelName(KernelLevel::kAvx2), "avx2");
}

// ---- The AVX-512 kernels on emulated AVX-512 (engine/backends/x86emu) -------------------------
// On a CPU without AVX-512 the AVX-512 table never runs in the product; these tests run the same
// source against SIMDe's emulation of each instruction, so its tiles, tails and VNNI dot products
// are checked on every machine with AVX2.

#if defined(SEXTANT_HAVE_AVX512_EMULATION)
constexpr bool kAvx512Emulated = true;
const internal::KernelTable& EmulatedAvx512() { return internal::Avx512EmulatedKernels(); }
#else
constexpr bool kAvx512Emulated = false;
const internal::KernelTable& EmulatedAvx512() { return internal::PortableKernels(); }
#endif

#define SKIP_WITHOUT_AVX512_EMULATION()                                                      \
  do {                                                                                       \
    if (!kAvx512Emulated)                                                                    \
      GTEST_SKIP() << "skipped: built without SIMDe (libsimde-dev), so no emulated AVX-512"; \
    if (DetectedKernelLevel() < KernelLevel::kAvx2)                                          \
      GTEST_SKIP() << "skipped: the emulated AVX-512 kernels need AVX2, FMA and F16C";       \
  } while (0)

std::vector<float> RunWith(const internal::KernelTable& k, const WeightView& w,
                           const std::vector<float>& x, int64_t n_tokens, ThreadPool* pool) {
  std::vector<float> y(static_cast<size_t>(n_tokens * w.rows), std::nanf(""));
  internal::MatMulWith(k, w, x.data(), n_tokens, y.data(), pool);
  return y;
}

// Every type, decode and prefill shapes (row and token counts that leave partial tiles, and
// columns past the last whole vector for F32), against the f64 reference.
TEST(CpuMatMulAvx512Emulated, EveryTypeMatchesTheReference) {
  SKIP_WITHOUT_AVX512_EMULATION();
  ThreadPool pool(2);
  for (TensorType type : kTypes) {
    const int64_t rows = 45, cols = ColsFor(type);
    const auto wbytes = RandomWeights(type, rows, cols, 31);
    const WeightView w{type, wbytes.data(), rows, cols};
    for (int64_t n_tokens : {1, 3, 17}) {
      const auto x = RandomActivations(n_tokens * cols, 32u + static_cast<uint32_t>(n_tokens));
      EXPECT_LT(RelL2(RunWith(EmulatedAvx512(), w, x, n_tokens, &pool), Reference(w, x, n_tokens)),
                Bound(type))
          << gguf::TensorTypeName(type) << " tokens=" << n_tokens;
    }
  }
}

// Q4_0 and Q8_0 have their own AVX-512 copies (vpdpbusd for maddubs + madd), and Q4_K / Q6_K
// share the AVX2 kernels: each gives exactly the AVX2 result. The float types sum 16 lanes
// instead of 8, so they agree to f32 rounding.
TEST(CpuMatMulAvx512Emulated, AgreesWithTheAvx2Kernels) {
  SKIP_WITHOUT_AVX512_EMULATION();
  ThreadPool pool(2);
  for (TensorType type : kTypes) {
    const bool quantized =
        type != TensorType::kF32 && type != TensorType::kF16 && type != TensorType::kBF16;
    const int64_t rows = 70, cols = ColsFor(type);
    const auto wbytes = RandomWeights(type, rows, cols, 41);
    const WeightView w{type, wbytes.data(), rows, cols};
    for (int64_t n_tokens : {1, 7}) {
      const auto x = RandomActivations(n_tokens * cols, 42);
      const auto avx512 = RunWith(EmulatedAvx512(), w, x, n_tokens, &pool);
      const auto avx2 = RunWith(internal::Avx2Kernels(), w, x, n_tokens, &pool);
      if (quantized) {
        for (size_t i = 0; i < avx2.size(); ++i)
          ASSERT_EQ(avx512[i], avx2[i])
              << gguf::TensorTypeName(type) << " tokens=" << n_tokens << " output " << i;
      } else {
        EXPECT_LT(RelL2(avx512, avx2), 2e-6)
            << gguf::TensorTypeName(type) << " tokens=" << n_tokens;
      }
    }
  }
}

// A token's result does not depend on the rest of its batch, bit for bit, with the AVX-512
// tiles too (4 rows x 6 tokens for prefill, 8 rows for decode, token blocks of 192 KiB).
TEST(CpuMatMulAvx512Emulated, TokenResultIndependentOfBatch) {
  SKIP_WITHOUT_AVX512_EMULATION();
  ThreadPool pool(2);
  for (TensorType type : kTypes) {
    const int64_t rows = 37, n_tokens = 13;
    const int64_t cols = type == TensorType::kF32 ? 1029 : ColsFor(type);  // 64 vectors + 5
    const auto wbytes = RandomWeights(type, rows, cols, 51);
    const WeightView w{type, wbytes.data(), rows, cols};
    const auto x = RandomActivations(n_tokens * cols, 52);
    const auto all = RunWith(EmulatedAvx512(), w, x, n_tokens, &pool);
    for (int64_t t : {0, 6, 12}) {
      const std::vector<float> xt(x.begin() + t * cols, x.begin() + (t + 1) * cols);
      const auto one = RunWith(EmulatedAvx512(), w, xt, 1, &pool);
      for (int64_t r = 0; r < rows; ++r)
        ASSERT_EQ(one[r], all[t * rows + r])
            << gguf::TensorTypeName(type) << " token " << t << " row " << r;
    }
  }
}

}  // namespace
}  // namespace sextant::cpu
