// AVX2 + FMA kernels of ops.h (built with -mavx2 -mfma -mf16c; called only where the CPU has them).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/backends/cpu/ops_kernels.h"

namespace sextant::cpu::internal {
namespace {

// exp(x) for 8 floats: Cephes' expf polynomial (about 2 ulp); underflows to 0 below -88.
inline __m256 Exp(__m256 x) {
  x = _mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f));
  x = _mm256_max_ps(x, _mm256_set1_ps(-88.3762626647949f));
  __m256 fx = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f));
  fx = _mm256_floor_ps(fx);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 y = _mm256_set1_ps(1.9875691500E-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507E-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073E-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894E-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459E-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201E-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
  __m256i e = _mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127));
  // fx = -127 (x clamped low) gives exponent bits 0: a result of 0 rather than a subnormal.
  return _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(e, 23)));
}

inline float Hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline double HsumPd(__m256d v) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
  return _mm_cvtsd_f64(s);
}
inline float Hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

void RmsNormAvx2(const float* x, const float* w, int64_t n, float eps, float* out) {
  __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 sq = _mm256_mul_ps(v, v);
    acc0 = _mm256_add_pd(acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(sq)));
    acc1 = _mm256_add_pd(acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(sq, 1)));
  }
  double sum = HsumPd(_mm256_add_pd(acc0, acc1));
  for (; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float s = 1.0f / std::sqrt(static_cast<float>(sum / static_cast<double>(n)) + eps);
  const __m256 sv = _mm256_set1_ps(s);
  i = 0;
  if (w != nullptr) {
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), sv),
                                              _mm256_loadu_ps(w + i)));
    for (; i < n; ++i) out[i] = x[i] * s * w[i];
  } else {
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), sv));
    for (; i < n; ++i) out[i] = x[i] * s;
  }
}

// Softmax of n values in place; sums in double when `precise`, else in f32 lanes.
template <bool kPrecise>
void SoftmaxImpl(float* x, int64_t n) {
  if (n <= 0) return;
  __m256 mv = _mm256_set1_ps(x[0]);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
  float m = Hmax(mv);
  for (; i < n; ++i) m = std::max(m, x[i]);
  const __m256 mb = _mm256_set1_ps(m);
  __m256d d0 = _mm256_setzero_pd(), d1 = _mm256_setzero_pd();
  __m256 f = _mm256_setzero_ps();
  i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = Exp(_mm256_sub_ps(_mm256_loadu_ps(x + i), mb));
    _mm256_storeu_ps(x + i, e);
    if constexpr (kPrecise) {
      d0 = _mm256_add_pd(d0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
      d1 = _mm256_add_pd(d1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    } else {
      f = _mm256_add_ps(f, e);
    }
  }
  double sum = kPrecise ? HsumPd(_mm256_add_pd(d0, d1)) : static_cast<double>(Hsum(f));
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - m);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  const __m256 iv = _mm256_set1_ps(inv);
  i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), iv));
  for (; i < n; ++i) x[i] *= inv;
}

void SoftmaxAvx2(float* x, int64_t n) { SoftmaxImpl<true>(x, n); }

void SiluMulAvx2(const float* gate, const float* up, int64_t n, float* out) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 zero = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = Exp(_mm256_sub_ps(zero, g));
    _mm256_storeu_ps(
        out + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void AddAvx2(const float* a, const float* b, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  for (; i < n; ++i) out[i] = a[i] + b[i];
}

void ScaleAvx2(float* x, int64_t n, float s) {
  const __m256 sv = _mm256_set1_ps(s);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), sv));
  for (; i < n; ++i) x[i] *= s;
}

// The 8 dot products of q with keys k[0..7] (hd floats each, hd % 8 == 0), as one vector.
inline __m256 Dot8Keys(const float* q, const float* const* k, int hd) {
  __m256 acc[8];
#pragma GCC unroll 16
  for (int j = 0; j < 8; ++j) acc[j] = _mm256_setzero_ps();
  for (int d = 0; d < hd; d += 8) {
    const __m256 qv = _mm256_loadu_ps(q + d);
#pragma GCC unroll 16
    for (int j = 0; j < 8; ++j) acc[j] = _mm256_fmadd_ps(_mm256_loadu_ps(k[j] + d), qv, acc[j]);
  }
  const __m256 t0 = _mm256_hadd_ps(acc[0], acc[1]);
  const __m256 t1 = _mm256_hadd_ps(acc[2], acc[3]);
  const __m256 t2 = _mm256_hadd_ps(acc[4], acc[5]);
  const __m256 t3 = _mm256_hadd_ps(acc[6], acc[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1);  // [k0..k3 low halves | k0..k3 high halves]
  const __m256 u1 = _mm256_hadd_ps(t2, t3);
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// o[j][d0 .. d0 + 8 * DV) = sum_p s[j][p] * v_p[0 .. 8 * DV) for QB queries.
template <int QB, int DV>
void PvTile(const float* const* s, const float* v, int64_t kv_stride, int64_t n, float* const* o,
            int d0) {
  __m256 acc[QB][DV];
#pragma GCC unroll 8
  for (int j = 0; j < QB; ++j)
#pragma GCC unroll 2
    for (int k = 0; k < DV; ++k) acc[j][k] = _mm256_setzero_ps();
  for (int64_t p = 0; p < n; ++p) {
    const float* vp = v + p * kv_stride;
    __m256 vv[DV];
#pragma GCC unroll 2
    for (int k = 0; k < DV; ++k) vv[k] = _mm256_loadu_ps(vp + 8 * k);
#pragma GCC unroll 8
    for (int j = 0; j < QB; ++j) {
      const __m256 w = _mm256_broadcast_ss(s[j] + p);
#pragma GCC unroll 2
      for (int k = 0; k < DV; ++k) acc[j][k] = _mm256_fmadd_ps(w, vv[k], acc[j][k]);
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < QB; ++j)
#pragma GCC unroll 2
    for (int k = 0; k < DV; ++k) _mm256_storeu_ps(o[j] + d0 + 8 * k, acc[j][k]);
}

template <int DV>
void PvTileQ(int qb, const float* const* s, const float* v, int64_t kv_stride, int64_t n,
             float* const* o, int d0) {
  switch (qb) {
    case 6:
      return PvTile<6, DV>(s, v, kv_stride, n, o, d0);
    case 5:
      return PvTile<5, DV>(s, v, kv_stride, n, o, d0);
    case 4:
      return PvTile<4, DV>(s, v, kv_stride, n, o, d0);
    case 3:
      return PvTile<3, DV>(s, v, kv_stride, n, o, d0);
    case 2:
      return PvTile<2, DV>(s, v, kv_stride, n, o, d0);
    default:
      return PvTile<1, DV>(s, v, kv_stride, n, o, d0);
  }
}

void PvTileAny(int qb, int dv, const float* const* s, const float* v, int64_t kv_stride, int64_t n,
               float* const* o, int d0) {
  if (dv == 2) {
    PvTileQ<2>(qb, s, v, kv_stride, n, o, d0);
  } else {
    PvTileQ<1>(qb, s, v, kv_stride, n, o, d0);
  }
}

void AttendAvx2(const AttendArgs& a, int g, int h0, int h1, int64_t i0, int64_t i1) {
  const int hd = a.head_dim;
  if (hd % 8 != 0) {
    PortableOps().attend(a, g, h0, h1, i0, i1);
    return;
  }
  int64_t n_max = 0;
  for (int64_t i = i0; i < i1; ++i) n_max = std::max<int64_t>(n_max, int64_t{a.q_pos[i]} + 1);
  const int64_t stride = (n_max + 7) / 8 * 8;
  const int nh = h1 - h0;
  thread_local std::vector<float> scratch;
  scratch.resize(static_cast<size_t>(stride * nh * (i1 - i0)));
  const float* kbase = a.k + int64_t{g} * hd;
  const float* vbase = a.v + int64_t{g} * hd;
  const __m256 scale = _mm256_set1_ps(a.scale);

  // Scores, 8 keys at a time; each key block is read once for every query of the item.
  for (int64_t p0 = 0; p0 < n_max; p0 += 8) {
    const float* kp[8];
#pragma GCC unroll 16
    for (int j = 0; j < 8; ++j) kp[j] = kbase + std::min(p0 + j, n_max - 1) * a.kv_stride;
    for (int64_t i = i0; i < i1; ++i) {
      if (p0 > a.q_pos[i]) continue;
      for (int h = h0; h < h1; ++h) {
        float* s = scratch.data() + ((i - i0) * nh + (h - h0)) * stride;
        const float* q = a.q + i * a.q_stride + int64_t{h} * hd;
        _mm256_storeu_ps(s + p0, _mm256_mul_ps(Dot8Keys(q, kp, hd), scale));
      }
    }
  }
  // Softmax per query; scores past a query's own span (up to n_max) become 0 so that queries of
  // different lengths can share the weighted-sum loop (adding 0 * v leaves a sum unchanged).
  const int64_t nq = (i1 - i0) * nh;
  for (int64_t qi = 0; qi < nq; ++qi) {
    const int64_t n = int64_t{a.q_pos[i0 + qi / nh]} + 1;
    float* s = scratch.data() + qi * stride;
    SoftmaxImpl<false>(s, n);
    std::fill(s + n, s + n_max, 0.0f);
  }
  // Weighted sums of V for up to 6 queries x 16 dims at a time, so each V segment is read once
  // per 6 queries rather than once per query.
  for (int64_t q0 = 0; q0 < nq; q0 += 6) {
    const int qb = static_cast<int>(std::min<int64_t>(6, nq - q0));
    const float* sp[6];
    float* op[6];
    int64_t n_block = 0;
    for (int j = 0; j < qb; ++j) {
      const int64_t qi = q0 + j;
      const int64_t i = i0 + qi / nh;
      const int h = h0 + static_cast<int>(qi % nh);
      sp[j] = scratch.data() + qi * stride;
      op[j] = a.out + i * a.out_stride + int64_t{h} * hd;
      n_block = std::max<int64_t>(n_block, int64_t{a.q_pos[i]} + 1);
    }
    for (int d = 0; d < hd; d += 16) {
      const int dv = hd - d >= 16 ? 2 : 1;
      PvTileAny(qb, dv, sp, vbase + d, a.kv_stride, n_block, op, d);
    }
  }
}

}  // namespace

const OpsTable& Avx2Ops() {
  static const OpsTable table{RmsNormAvx2, SoftmaxAvx2, SiluMulAvx2,
                              AddAvx2,     ScaleAvx2,   AttendAvx2};
  return table;
}

}  // namespace sextant::cpu::internal
