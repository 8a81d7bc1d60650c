// AVX-512 level (built with AVX-512 F/BW/VL/DQ/VNNI/BF16; called only where the CPU has them).
// Float weights (F32/F16/BF16) get 512-bit register tiles: twice the FMA width of AVX2, which is
// what bounds prompt processing on those types. Q4_0 / Q8_0 use the shared kernels of
// matmul_int8_x86.h compiled here with VNNI (vpdpbusd); their results are identical to AVX2's.
// Q4_K / Q6_K use the AVX2 kernels.

// GCC 12's 512-bit intrinsics pass _mm512_undefined_*() as merge sources, which -Wuninitialized
// reports as reads of uninitialized data (a known false positive).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>
#include <type_traits>

#include "engine/backends/cpu/matmul_int8_x86.h"
#include "engine/backends/cpu/matmul_kernels.h"

namespace sextant::cpu::internal {
namespace {

struct Load512F32 {
  static __m512 Vec(const uint8_t* w, int64_t c) {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(w) + c);
  }
  static float One(const uint8_t* w, int64_t c) {
    float v;
    std::memcpy(&v, w + c * 4, 4);
    return v;
  }
};
struct Load512F16 {
  static __m512 Vec(const uint8_t* w, int64_t c) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + c * 2)));
  }
  static float One(const uint8_t* w, int64_t c) { return HalfToFloat(LoadU16(w + c * 2)); }
};
struct Load512BF16 {
  static __m512 Vec(const uint8_t* w, int64_t c) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + c * 2));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static float One(const uint8_t* w, int64_t c) { return Bf16ToFloat(LoadU16(w + c * 2)); }
};

inline float Hsum512(__m512 v) {
  // Through memory: GCC 12 flags the intrinsic 512 -> 256 extracts as reading uninitialized data.
  alignas(64) float f[16];
  _mm512_store_ps(f, v);
  float h[8];
  for (int i = 0; i < 8; ++i) h[i] = f[i] + f[i + 8];
  return ((h[0] + h[4]) + (h[2] + h[6])) + ((h[1] + h[5]) + (h[3] + h[7]));
}

// y[t + j][r + i] for an R x T tile; one accumulator per (row, token) whatever the tile, so a
// token's result does not depend on the batch.
template <typename L, int R, int T>
void FloatTile(const GemmArgs& a, int64_t r, int64_t t) {
  const uint8_t* w[R];
  const float* x[T];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) w[i] = a.w + (r + i) * a.w_row_bytes;
#pragma GCC unroll 16
  for (int j = 0; j < T; ++j) x[j] = reinterpret_cast<const float*>(a.x + (t + j) * a.x_row_bytes);
  const int64_t n16 = a.cols / 16 * 16;
  __m512 acc[R][T];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < T; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t c = 0; c < n16; c += 16) {
    __m512 wv[R];
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) wv[i] = L::Vec(w[i], c);
#pragma GCC unroll 16
    for (int j = 0; j < T; ++j) {
      const __m512 xv = _mm512_loadu_ps(x[j] + c);
#pragma GCC unroll 16
      for (int i = 0; i < R; ++i) acc[i][j] = _mm512_fmadd_ps(wv[i], xv, acc[i][j]);
    }
  }
  float out[R][T];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < T; ++j) out[i][j] = Hsum512(acc[i][j]);
  for (int64_t c = n16; c < a.cols; ++c)
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 16
      for (int j = 0; j < T; ++j) out[i][j] += L::One(w[i], c) * x[j][c];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < T; ++j) a.y[(t + j) * a.ldy + r + i] = out[i][j];
}

// Decode: 8 rows per tile. Prefill: 4 rows x 6 tokens (24 accumulators of 32 registers), token
// blocks of ~192 KiB of activations so they stay in L2 while the rows stream past.
template <typename L>
void GemmFloat512(const GemmArgs& a, int64_t r0, int64_t r1) {
  constexpr int kRD = 8, kRP = 4, kTP = 6;
  if (a.n_tokens == 1) {
    int64_t r = r0;
    for (; r + kRD <= r1; r += kRD) FloatTile<L, kRD, 1>(a, r, 0);
    for (; r < r1; ++r) FloatTile<L, 1, 1>(a, r, 0);
    return;
  }
  int64_t tb = static_cast<int64_t>((192 * 1024) / std::max<size_t>(a.x_row_bytes, 1));
  tb = std::clamp<int64_t>(tb, kTP, 256) / kTP * kTP;
  for (int64_t t0 = 0; t0 < a.n_tokens; t0 += tb) {
    const int64_t t1 = std::min(a.n_tokens, t0 + tb);
    auto rows = [&](auto rows_const, int64_t r) {
      constexpr int R = decltype(rows_const)::value;
      int64_t t = t0;
      for (; t + kTP <= t1; t += kTP) FloatTile<L, R, kTP>(a, r, t);
      for (; t < t1; ++t) FloatTile<L, R, 1>(a, r, t);
    };
    int64_t r = r0;
    for (; r + kRP <= r1; r += kRP) rows(std::integral_constant<int, kRP>{}, r);
    for (; r < r1; ++r) rows(std::integral_constant<int, 1>{}, r);
  }
}

KernelTable MakeAvx512() {
  KernelTable t = Avx2Kernels();
  t.gemm[kSlotF32] = GemmFloat512<Load512F32>;
  t.gemm[kSlotF16] = GemmFloat512<Load512F16>;
  t.gemm[kSlotBF16] = GemmFloat512<Load512BF16>;
  t.gemm[kSlotQ8_0] = GemmQ8_0;  // this file's copy: vpdpbusd dot products
  t.gemm[kSlotQ4_0] = GemmQ4_0;
  return t;
}

}  // namespace

const KernelTable& Avx512Kernels() {
  static const KernelTable table = MakeAvx512();
  return table;
}

}  // namespace sextant::cpu::internal
