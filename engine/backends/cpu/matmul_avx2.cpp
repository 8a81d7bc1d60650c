// AVX2 + FMA + F16C kernels (built with -mavx2 -mfma -mf16c; called only where the CPU has them).
//
// Quantized types: the weight block is unpacked once and multiplied with several tokens' Q8
// activation blocks (_mm256_maddubs_epi16 on |w| and sign-adjusted x, then _mm256_madd_epi16),
// scaled per block in f32. Float types: register tiles of rows x tokens with FMA, weights
// converted on the fly (F16C / bf16 shift). Prefill walks tokens in blocks that stay in L2.
#include <immintrin.h>

#include <algorithm>

#include "engine/backends/cpu/matmul_int8_x86.h"
#include "engine/backends/cpu/matmul_kernels.h"

namespace sextant::cpu::internal {
namespace {

using gguf::BlockQ4_0;
using gguf::BlockQ4_K;
using gguf::BlockQ6_K;
using gguf::BlockQ8_0;

// ---- float weights ----------------------------------------------------------------------------

struct LoadF32 {
  static __m256 Vec(const uint8_t* w, int64_t c) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(w) + c);
  }
  static float One(const uint8_t* w, int64_t c) {
    float v;
    std::memcpy(&v, w + c * 4, 4);
    return v;
  }
};
struct LoadF16 {
  static __m256 Vec(const uint8_t* w, int64_t c) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + c * 2)));
  }
  static float One(const uint8_t* w, int64_t c) { return HalfToFloat(LoadU16(w + c * 2)); }
};
struct LoadBF16 {
  static __m256 Vec(const uint8_t* w, int64_t c) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + c * 2));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static float One(const uint8_t* w, int64_t c) { return Bf16ToFloat(LoadU16(w + c * 2)); }
};

template <typename L>
struct FloatTile {
  template <int R, int T>
  struct K {
    static void Run(const GemmArgs& a, int64_t r, int64_t t) {
      const uint8_t* w[R];
      const float* x[T];
#pragma GCC unroll 16
      for (int i = 0; i < R; ++i) w[i] = a.w + (r + i) * a.w_row_bytes;
#pragma GCC unroll 16
      for (int j = 0; j < T; ++j)
        x[j] = reinterpret_cast<const float*>(a.x + (t + j) * a.x_row_bytes);
      const int64_t n8 = a.cols / 8 * 8;
      float out[R][T];
      {
        // One accumulator per (row, token) whatever the tile, so a token's result does not
        // depend on the batch; decode tiles 8 rows to keep 8 FMA chains in flight.
        __m256 acc[R][T];
#pragma GCC unroll 16
        for (int i = 0; i < R; ++i)
#pragma GCC unroll 16
          for (int j = 0; j < T; ++j) acc[i][j] = _mm256_setzero_ps();
        for (int64_t c = 0; c < n8; c += 8) {
          __m256 wv[R];
#pragma GCC unroll 16
          for (int i = 0; i < R; ++i) wv[i] = L::Vec(w[i], c);
#pragma GCC unroll 16
          for (int j = 0; j < T; ++j) {
            const __m256 xv = _mm256_loadu_ps(x[j] + c);
#pragma GCC unroll 16
            for (int i = 0; i < R; ++i) acc[i][j] = _mm256_fmadd_ps(wv[i], xv, acc[i][j]);
          }
        }
#pragma GCC unroll 16
        for (int i = 0; i < R; ++i)
#pragma GCC unroll 16
          for (int j = 0; j < T; ++j) out[i][j] = Hsum(acc[i][j]);
      }
      for (int64_t c = n8; c < a.cols; ++c)
#pragma GCC unroll 16
        for (int i = 0; i < R; ++i)
#pragma GCC unroll 16
          for (int j = 0; j < T; ++j) out[i][j] += L::One(w[i], c) * x[j][c];
#pragma GCC unroll 16
      for (int i = 0; i < R; ++i)
#pragma GCC unroll 16
        for (int j = 0; j < T; ++j) a.y[(t + j) * a.ldy + r + i] = out[i][j];
    }
  };
};

template <typename L>
void GemmFloat(const GemmArgs& a, int64_t r0, int64_t r1) {
  Drive<8, 3, 4, FloatTile<L>::template K>(a, r0, r1);
}

// ---- K-quants with Q8K activations -----------------------------------------------------------

template <int R, int T>
struct Q4KTile {
  static_assert(R == 1);
  static void Run(const GemmArgs& a, int64_t r, int64_t t) {
    const int64_t nb = a.cols / 256;
    const BlockQ8K* x[T];
#pragma GCC unroll 16
    for (int j = 0; j < T; ++j)
      x[j] = reinterpret_cast<const BlockQ8K*>(a.x + (t + j) * a.x_row_bytes);
    const auto* w = reinterpret_cast<const BlockQ4_K*>(a.w + r * a.w_row_bytes);
    const __m256i mask = _mm256_set1_epi8(0xF);
    __m256 acc[T];
#pragma GCC unroll 16
    for (int j = 0; j < T; ++j) acc[j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      // The 12 packed bytes -> 8 six-bit scales (bytes 0..7) and 8 mins (bytes 8..15), with
      // integer ops (the same unpacking as Q4KScaleMin, four bytes at a time).
      uint32_t u[4];
      std::memcpy(u, w[b].scales, 12);
      u[3] = ((u[2] >> 4) & 0x0f0f0f0fu) | (((u[1] >> 6) & 0x03030303u) << 4);
      const uint32_t m03 = u[1] & 0x3f3f3f3fu;
      u[1] = (u[2] & 0x0f0f0f0fu) | (((u[0] >> 6) & 0x03030303u) << 4);
      u[2] = m03;
      u[0] &= 0x3f3f3f3fu;
      const __m128i sm = _mm_set_epi32(static_cast<int>(u[3]), static_cast<int>(u[2]),
                                       static_cast<int>(u[1]), static_cast<int>(u[0]));
      const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));  // [sc0..sc7] x2
      // mins per pair of 16-sums: [m0 m0 m1 m1 ... m7 m7]
      const __m256i mins = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(sm, sm));
      const float d = Half(&w[b].d);
      const float dmin = Half(&w[b].dmin);
      __m256i sumi[T];
#pragma GCC unroll 16
      for (int j = 0; j < T; ++j) sumi[j] = _mm256_setzero_si256();
#pragma GCC unroll 16
      for (int k = 0; k < 4; ++k) {
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs + 32 * k));
        const __m256i lo = _mm256_and_si256(q, mask);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), mask);
        // int16 lane m of sc16 in every lane: bytes (2m, 2m+1) of each 128-bit half
        const __m256i s_lo = _mm256_shuffle_epi8(
            sc16, _mm256_set1_epi16(static_cast<int16_t>((4 * k + 1) << 8 | 4 * k)));
        const __m256i s_hi = _mm256_shuffle_epi8(
            sc16, _mm256_set1_epi16(static_cast<int16_t>((4 * k + 3) << 8 | (4 * k + 2))));
#pragma GCC unroll 16
        for (int j = 0; j < T; ++j) {
          const int8_t* xq = x[j][b].qs + 64 * k;
          const __m256i p0 =
              _mm256_maddubs_epi16(lo, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq)));
          const __m256i p1 = _mm256_maddubs_epi16(
              hi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 32)));
          sumi[j] = _mm256_add_epi32(
              sumi[j], _mm256_add_epi32(_mm256_madd_epi16(p0, s_lo), _mm256_madd_epi16(p1, s_hi)));
        }
      }
#pragma GCC unroll 16
      for (int j = 0; j < T; ++j) {
        const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[j][b].bsums));
        const __m256 m = _mm256_cvtepi32_ps(_mm256_madd_epi16(mins, bs));
        const float dx = x[j][b].d;
        acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[j]), _mm256_set1_ps(d * dx), acc[j]);
        acc[j] = _mm256_fnmadd_ps(m, _mm256_set1_ps(dmin * dx), acc[j]);
      }
    }
#pragma GCC unroll 16
    for (int j = 0; j < T; ++j) a.y[(t + j) * a.ldy + r] = Hsum(acc[j]);
  }
};

template <int R, int T>
struct Q6KTile {
  static_assert(R == 1);
  static void Run(const GemmArgs& a, int64_t r, int64_t t) {
    const int64_t nb = a.cols / 256;
    const BlockQ8K* x[T];
#pragma GCC unroll 16
    for (int j = 0; j < T; ++j)
      x[j] = reinterpret_cast<const BlockQ8K*>(a.x + (t + j) * a.x_row_bytes);
    const auto* w = reinterpret_cast<const BlockQ6_K*>(a.w + r * a.w_row_bytes);
    const __m256i m4 = _mm256_set1_epi8(0xF);
    const __m256i m2 = _mm256_set1_epi8(3);
    __m256 acc[T];
#pragma GCC unroll 16
    for (int j = 0; j < T; ++j) acc[j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const int8_t* scales = w[b].scales;
      const __m256i sc16 =
          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales)));
      // int16 scales with the high 128 bits one sub-block ahead: [s0..s7 | s1..s8] and
      // [s8..s15 | s9..s16] (s16 is the next byte of the block, never selected).
      auto load8 = [](const int8_t* p) {
        return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
      };
      const __m256i sc_a =
          _mm256_cvtepi8_epi16(_mm_unpacklo_epi64(load8(scales), load8(scales + 1)));
      const __m256i sc_b =
          _mm256_cvtepi8_epi16(_mm_unpacklo_epi64(load8(scales + 8), load8(scales + 9)));
      __m256i sumi[T];
#pragma GCC unroll 16
      for (int j = 0; j < T; ++j) {
        // -32 * sum_j sc_j * bsum_j: the offset of the unsigned 6-bit values.
        const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[j][b].bsums));
        sumi[j] = _mm256_sub_epi32(_mm256_setzero_si256(),
                                   _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5));
      }
      for (int half = 0; half < 2; ++half) {
        const uint8_t* ql = w[b].ql + 64 * half;
        const __m256i qla = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
        const __m256i qlb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
        const __m256i qh =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qh + 32 * half));
        for (int g = 0; g < 4; ++g) {
          const __m256i low = (g % 2 == 0) ? qla : qlb;
          const __m256i lo4 =
              g < 2 ? _mm256_and_si256(low, m4) : _mm256_and_si256(_mm256_srli_epi16(low, 4), m4);
          const __m256i hi2 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), m2);
          const __m256i q = _mm256_or_si256(lo4, _mm256_slli_epi16(hi2, 4));
          // [scale 2g of this half x 8 | scale 2g + 1 x 8]
          const __m256i scv = _mm256_shuffle_epi8(
              half == 0 ? sc_a : sc_b,
              _mm256_set1_epi16(static_cast<int16_t>((4 * g + 1) << 8 | 4 * g)));
#pragma GCC unroll 16
          for (int j = 0; j < T; ++j) {
            const __m256i xv = _mm256_loadu_si256(
                reinterpret_cast<const __m256i*>(x[j][b].qs + half * 128 + g * 32));
            sumi[j] =
                _mm256_add_epi32(sumi[j], _mm256_madd_epi16(_mm256_maddubs_epi16(q, xv), scv));
          }
        }
      }
      const float d = Half(&w[b].d);
#pragma GCC unroll 16
      for (int j = 0; j < T; ++j)
        acc[j] =
            _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[j]), _mm256_set1_ps(d * x[j][b].d), acc[j]);
    }
#pragma GCC unroll 16
    for (int j = 0; j < T; ++j) a.y[(t + j) * a.ldy + r] = Hsum(acc[j]);
  }
};

void GemmQ4_K(const GemmArgs& a, int64_t r0, int64_t r1) { Drive<1, 1, 4, Q4KTile>(a, r0, r1); }
void GemmQ6_K(const GemmArgs& a, int64_t r0, int64_t r1) { Drive<1, 1, 4, Q6KTile>(a, r0, r1); }

// ---- activation quantizers (same rounding as the portable ones) -------------------------------

inline __m256 AbsMax8(const float* x, int n8) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  for (int i = 0; i < n8; ++i)
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * i)));
  return m;
}
inline float HmaxPs(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}
// Rounds 32 floats * id to int8 in element order.
inline __m256i Round32(const float* x, __m256 id) {
  __m256i v[4];
#pragma GCC unroll 16
  for (int i = 0; i < 4; ++i)
    v[i] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * i), id),
                                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  const __m256i p01 = _mm256_packs_epi32(v[0], v[1]);
  const __m256i p23 = _mm256_packs_epi32(v[2], v[3]);
  const __m256i p = _mm256_packs_epi16(p01, p23);
  return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

void QuantizeQ8A(const float* x, int64_t cols, void* out) {
  const int64_t nb = cols / 32;
  const Q8ARow row = Q8ARowAt(out, nb);
  for (int64_t b = 0; b < nb; ++b) {
    const float* xb = x + b * 32;
    const float amax = HmaxPs(AbsMax8(xb, 4));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 127.0f / amax : 0.0f;
    row.d[b] = d;
    const __m256i q = Round32(xb, _mm256_set1_ps(id));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(row.qs + b * 32), q);
    const __m256i s32 =
        _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q), _mm256_set1_epi16(1));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    row.sum[b] = _mm_cvtsi128_si32(s);
  }
}

void QuantizeQ8A4(const float* x, int64_t cols, void* out) {
  const int64_t nb = cols / 32;
  auto* row = static_cast<uint8_t*>(out);
  if (nb % 8 != 0) std::memset(row + (nb / 8) * kQ8A4GroupBytes, 0, kQ8A4GroupBytes);
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* group = row + (b / 8) * kQ8A4GroupBytes;
    const int k = static_cast<int>(b % 8);
    const float* xb = x + b * 32;
    const float amax = HmaxPs(AbsMax8(xb, 4));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 127.0f / amax : 0.0f;
    const __m256i q = Round32(xb, _mm256_set1_ps(id));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(group + Q8A4QsPos(k, 0)),
                     _mm256_castsi256_si128(q));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(group + Q8A4QsPos(k, 16)),
                     _mm256_extracti128_si256(q, 1));
    const __m256i s32 =
        _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q), _mm256_set1_epi16(1));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    const int32_t sum = _mm_cvtsi128_si32(s);
    std::memcpy(group + 4 * Q8A4ScalePos(k), &d, 4);
    std::memcpy(group + 32 + 4 * Q8A4ScalePos(k), &sum, 4);
  }
}

void QuantizeQ8K(const float* x, int64_t cols, void* out) {
  auto* blocks = static_cast<BlockQ8K*>(out);
  for (int64_t b = 0; b < cols / 256; ++b) {
    const float* xb = x + b * 256;
    const float amax = HmaxPs(AbsMax8(xb, 32));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 127.0f / amax : 0.0f;
    blocks[b].d = d;
    const __m256 idv = _mm256_set1_ps(id);
#pragma GCC unroll 16
    for (int k = 0; k < 8; ++k) {
      const __m256i q = Round32(xb + 32 * k, idv);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(blocks[b].qs + 32 * k), q);
      // Sums of each 16: widen to int16 and add adjacent pairs down to one value per 16.
      const __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q);  // 16 pair sums
      const __m256i s32 = _mm256_madd_epi16(s16, _mm256_set1_epi16(1));  // 8 quad sums
      alignas(32) int32_t s[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(s), s32);
      blocks[b].bsums[2 * k] = static_cast<int16_t>(s[0] + s[1] + s[2] + s[3]);
      blocks[b].bsums[2 * k + 1] = static_cast<int16_t>(s[4] + s[5] + s[6] + s[7]);
    }
  }
}

KernelTable MakeAvx2() {
  KernelTable t;
  t.gemm[kSlotF32] = GemmFloat<LoadF32>;
  t.gemm[kSlotF16] = GemmFloat<LoadF16>;
  t.gemm[kSlotBF16] = GemmFloat<LoadBF16>;
  t.gemm[kSlotQ8_0] = GemmQ8_0;
  t.gemm[kSlotQ4_0] = GemmQ4_0;
  t.gemm[kSlotQ4_K] = GemmQ4_K;
  t.gemm[kSlotQ6_K] = GemmQ6_K;
  t.quantize_q8a = QuantizeQ8A;
  t.quantize_q8a4 = QuantizeQ8A4;
  t.quantize_q8k = QuantizeQ8K;
  return t;
}

}  // namespace

const KernelTable& Avx2Kernels() {
  static const KernelTable table = MakeAvx2();
  return table;
}

}  // namespace sextant::cpu::internal
