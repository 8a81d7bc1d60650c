// Internal to the CPU backend: the Q4_0 / Q8_0 kernels and the tile driver, shared by the AVX2
// and AVX-512 kernel files (each compiles its own copy with its own instruction set: everything
// here has internal linkage). With AVX-512 VNNI the u8 x s8 dot products use vpdpbusd, which gives
// exactly the sums _mm256_maddubs_epi16 + _mm256_madd_epi16 give for the value ranges used here.
// Include only from files built with at least -mavx2 -mfma -mf16c.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "engine/backends/cpu/matmul_kernels.h"

namespace sextant::cpu::internal {
namespace {

using gguf::BlockQ4_0;
using gguf::BlockQ8_0;

// Sums of 4 adjacent u8 * s8 products per int32 lane. REQUIRES: adjacent pair sums fit in int16
// (true for u <= 128 and |x| <= 127), so both paths agree exactly.
inline __m256i MulSumU8I8(__m256i u, __m256i x) {
#if (defined(__AVX512VNNI__) && defined(__AVX512VL__)) || defined(SEXTANT_EMULATE_AVX512_VNNI)
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, x);
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1));
#endif
}

// MulSumU8I8(u0, x0) + MulSumU8I8(u1, x1). REQUIRES: u0, u1 <= 15 (the int16 sums of the AVX2
// path stay below 2 * 2 * 15 * 127).
inline __m256i MulSum2U8I8(__m256i u0, __m256i x0, __m256i u1, __m256i x1) {
#if (defined(__AVX512VNNI__) && defined(__AVX512VL__)) || defined(SEXTANT_EMULATE_AVX512_VNNI)
  return _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), u0, x0), u1, x1);
#else
  return _mm256_madd_epi16(
      _mm256_add_epi16(_mm256_maddubs_epi16(u0, x0), _mm256_maddubs_epi16(u1, x1)),
      _mm256_set1_epi16(1));
#endif
}

inline float Hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float Half(const void* p) { return _cvtsh_ss(LoadU16(p)); }

// Rows per cache block of a prefill: enough weight rows to fill ~384 KiB of L2, a multiple of
// `tile`.
inline int64_t RowBlock(size_t w_row_bytes, int64_t tile) {
  int64_t rb = static_cast<int64_t>((384 * 1024) / std::max<size_t>(w_row_bytes, 1));
  rb = std::clamp<int64_t>(rb, tile, 1024);
  return rb / tile * tile;
}

// Drives a row x token tiled kernel: Tile<R, T>(a, r, t) for full tiles, smaller ones at the
// edges. Decode (one token) walks RD rows at a time; prefill RP rows x TP tokens. Prefill takes
// the rows in blocks that stay in L2 and, for each block, walks the tokens a tile at a time: the
// tile's activations stay in L1 while the block's rows go by, so each weight byte comes from
// memory once per block and each activation byte from L2 once per block. A tile computes each
// (row, token) exactly as a lone token would, so the order of the walk changes no result.
template <int RD, int RP, int TP, template <int, int> class K>
void Drive(const GemmArgs& a, int64_t r0, int64_t r1) {
  if (a.n_tokens == 1) {
    int64_t r = r0;
    for (; r + RD <= r1; r += RD) K<RD, 1>::Run(a, r, 0);
    for (; r < r1; ++r) K<1, 1>::Run(a, r, 0);
    return;
  }
  const int64_t rb = RowBlock(a.w_row_bytes, RP);
  for (int64_t rs = r0; rs < r1; rs += rb) {
    const int64_t re = std::min(r1, rs + rb);
    int64_t t = 0;
    auto token_tile = [&](auto tokens_const) {
      constexpr int T = decltype(tokens_const)::value;
      int64_t r = rs;
      for (; r + RP <= re; r += RP) K<RP, T>::Run(a, r, t);
      for (; r < re; ++r) K<1, T>::Run(a, r, t);
    };
    for (; t + TP <= a.n_tokens; t += TP) token_tile(std::integral_constant<int, TP>{});
    for (; t < a.n_tokens; ++t) token_tile(std::integral_constant<int, 1>{});
  }
}

// ---- Q4_0 / Q8_0 weights with Q8A activations ---------------------------------------------------

// Q4_0 with Q8A4 activations: two blocks share a register (block 2p in the low 128 bits, 2p+1 in
// the high), so unpacking is one mask and one shift per pair, and the 8-block reduction works on 4
// vectors. Sums come out in the order 0 2 4 6 1 3 5 7, which is how Q8A4 stores d and sum.
template <int R, int T>
struct Q4Tile {
  static_assert(R == 1);
  static constexpr int64_t kBlock = sizeof(BlockQ4_0);

  static void Run(const GemmArgs& a, int64_t r, int64_t t) {
    const int64_t nb = a.cols / 32;
    const uint8_t* x[T];
#pragma GCC unroll 16
    for (int j = 0; j < T; ++j) x[j] = a.x + (t + j) * a.x_row_bytes;
    const uint8_t* w = a.w + r * a.w_row_bytes;
    __m256 acc[T];
#pragma GCC unroll 16
    for (int j = 0; j < T; ++j) acc[j] = _mm256_setzero_ps();
    const int64_t full = nb / 8;
    for (int64_t g = 0; g < full; ++g) {
      // Decode streams the weights once: fetch the same group of the next row (3 lines cover
      // its 144 bytes), so the first groups of each row and of each thread's chunk of rows do
      // not wait on the hardware prefetcher ramping up again.
      if constexpr (T == 1) {
        const char* next = reinterpret_cast<const char*>(w + a.w_row_bytes + g * 8 * kBlock);
        _mm_prefetch(next, _MM_HINT_T0);
        _mm_prefetch(next + 64, _MM_HINT_T0);
        _mm_prefetch(next + 128, _MM_HINT_T0);
      }
      Group(w + g * 8 * kBlock, x, g * kQ8A4GroupBytes, acc);
    }
    if (nb % 8 != 0) {  // zero blocks (scale 0) pad the last group, as in Q8A4
      alignas(16) uint8_t tail[8 * kBlock] = {};
      std::memcpy(tail, w + full * 8 * kBlock, static_cast<size_t>(nb % 8) * kBlock);
      Group(tail, x, full * kQ8A4GroupBytes, acc);
    }
#pragma GCC unroll 16
    for (int j = 0; j < T; ++j) a.y[(t + j) * a.ldy + r] = Hsum(acc[j]);
  }

  static inline __attribute__((always_inline)) void Group(const uint8_t* wg,
                                                          const uint8_t* const* x, int64_t xoff,
                                                          __m256* acc) {
    // The 8 scales are packed in general-purpose registers (the vector shuffle ports are the
    // bottleneck of this loop); the empty asm keeps the compiler from vectorizing the packing.
    auto scale = [&](int k) { return uint64_t{LoadU16(wg + k * kBlock)}; };
    uint64_t h0 = scale(0) | scale(2) << 16;
    uint64_t h0b = scale(4) | scale(6) << 16;
    uint64_t h1 = scale(1) | scale(3) << 16;
    uint64_t h1b = scale(5) | scale(7) << 16;
    __asm__("" : "+r"(h0), "+r"(h0b), "+r"(h1), "+r"(h1b));
    h0 |= h0b << 32;
    h1 |= h1b << 32;
    const __m256 dw =
        _mm256_cvtph_ps(_mm_set_epi64x(static_cast<int64_t>(h1), static_cast<int64_t>(h0)));
    const __m256i m4 = _mm256_set1_epi8(0xF);
    __m256i lo[4], hi[4];
#pragma GCC unroll 4
    for (int p = 0; p < 4; ++p) {
      const __m256i v =
          _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(wg + (2 * p + 1) * kBlock + 2),
                              reinterpret_cast<const __m128i*>(wg + 2 * p * kBlock + 2));
      lo[p] = _mm256_and_si256(v, m4);
      hi[p] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    }
#pragma GCC unroll 16
    for (int j = 0; j < T; ++j) {
      const uint8_t* xg = x[j] + xoff;
      const int8_t* xq = reinterpret_cast<const int8_t*>(xg + 64);
      __m256i q[4];
#pragma GCC unroll 4
      for (int p = 0; p < 4; ++p) {
        // low 128 bits: block 2p, high: block 2p+1; 4 partial sums per block
        q[p] = MulSum2U8I8(lo[p], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 64 * p)),
                           hi[p],
                           _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 64 * p + 32)));
      }
      // Transpose-add to [S0 S2 S4 S6 | S1 S3 S5 S7].
      auto pair = [](__m256i a, __m256i b) {
        return _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
      };
      const __m256i a02 = pair(q[0], q[1]);  // [S0 S2 S0 S2 | S1 S3 S1 S3]
      const __m256i a46 = pair(q[2], q[3]);
      __m256i sum =
          _mm256_add_epi32(_mm256_unpacklo_epi64(a02, a46), _mm256_unpackhi_epi64(a02, a46));
      sum = _mm256_sub_epi32(
          sum, _mm256_slli_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xg + 32)), 3));
      const __m256 dx = _mm256_loadu_ps(reinterpret_cast<const float*>(xg));
      acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_mul_ps(dw, dx), acc[j]);
    }
  }
};

void GemmQ4_0(const GemmArgs& a, int64_t r0, int64_t r1) { Drive<1, 1, 4, Q4Tile>(a, r0, r1); }
// Q8_0 weights with Q8A activations, scaled per block: each block's 8 int32 partial sums are
// converted and added into f32 lanes with that block's scale (two accumulators per token, even
// and odd blocks, summed at the end), so no per-group integer reduction sits on the critical
// path. A weight block is loaded once per tile and its |w| formed once; each token applies the
// sign of w to its activations (_mm256_sign_epi8). Every (row, token) runs the same sequence of
// operations whatever the tile, so a token's result does not depend on the batch.
template <int R, int T>
struct Q8BlockTile {
  static_assert(R == 1);
  static constexpr int64_t kBlock = sizeof(BlockQ8_0);

  static void Run(const GemmArgs& a, int64_t r, int64_t t) {
    const int64_t nb = a.cols / 32;
    Q8ARow x[T];
#pragma GCC unroll 16
    for (int j = 0; j < T; ++j) x[j] = Q8ARowAt(a.x + (t + j) * a.x_row_bytes, nb);
    const uint8_t* w = a.w + r * a.w_row_bytes;
    __m256 acc0[T], acc1[T];
#pragma GCC unroll 16
    for (int j = 0; j < T; ++j) acc0[j] = acc1[j] = _mm256_setzero_ps();
    alignas(32) float sc[T][8];  // dw * dx of the group's blocks, per token
    for (int64_t g = 0; g < nb; g += 8) {
      const int n = static_cast<int>(std::min<int64_t>(8, nb - g));
      if constexpr (T == 1) {  // decode: the next row's group (5 lines cover its 272 bytes)
        const char* next = reinterpret_cast<const char*>(w + a.w_row_bytes + g * kBlock);
#pragma GCC unroll 5
        for (int l = 0; l < 5; ++l) _mm_prefetch(next + 64 * l, _MM_HINT_T0);
      }
      if (n == 8) {
        uint64_t h[2] = {0, 0};
#pragma GCC unroll 8
        for (int k = 0; k < 8; ++k)
          h[k / 4] |= uint64_t{LoadU16(w + (g + k) * kBlock)} << (16 * (k % 4));
        const __m256 dw =
            _mm256_cvtph_ps(_mm_set_epi64x(static_cast<int64_t>(h[1]), static_cast<int64_t>(h[0])));
#pragma GCC unroll 16
        for (int j = 0; j < T; ++j)
          _mm256_store_ps(sc[j], _mm256_mul_ps(dw, _mm256_loadu_ps(x[j].d + g)));
#pragma GCC unroll 8
        for (int k = 0; k < 8; ++k)
          Block(w + (g + k) * kBlock, x, g + k, sc, k, k % 2 == 0 ? acc0 : acc1);
      } else {
        for (int k = 0; k < n; ++k) {
          const float dw = Half(w + (g + k) * kBlock);
#pragma GCC unroll 16
          for (int j = 0; j < T; ++j) sc[j][k] = dw * x[j].d[g + k];
        }
        for (int k = 0; k < n; ++k)
          Block(w + (g + k) * kBlock, x, g + k, sc, k, k % 2 == 0 ? acc0 : acc1);
      }
    }
#pragma GCC unroll 16
    for (int j = 0; j < T; ++j) a.y[(t + j) * a.ldy + r] = Hsum(_mm256_add_ps(acc0[j], acc1[j]));
  }

  static inline __attribute__((always_inline)) void Block(const uint8_t* blk, const Q8ARow* x,
                                                          int64_t b, const float (*sc)[8], int k,
                                                          __m256* acc) {
    const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
    const __m256i wa = _mm256_sign_epi8(wv, wv);
#pragma GCC unroll 16
    for (int j = 0; j < T; ++j) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[j].qs + b * 32));
      const __m256i p = MulSumU8I8(wa, _mm256_sign_epi8(xv, wv));
      acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_broadcast_ss(&sc[j][k]), acc[j]);
    }
  }
};

void GemmQ8_0(const GemmArgs& a, int64_t r0, int64_t r1) { Drive<1, 1, 4, Q8BlockTile>(a, r0, r1); }

}  // namespace
}  // namespace sextant::cpu::internal
