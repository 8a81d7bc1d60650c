// ops.h: dispatch, the portable kernels, RoPE and the split of attention into work items.
#include "engine/backends/cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/backends/cpu/matmul.h"
#include "engine/backends/cpu/ops_kernels.h"
#include "engine/backends/cpu/thread_pool.h"

namespace sextant::cpu {
namespace internal {
namespace {

void RmsNormPortable(const float* x, const float* w, int64_t n, float eps, float* out) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float s = 1.0f / std::sqrt(static_cast<float>(sum / static_cast<double>(n)) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = w != nullptr ? x[i] * s * w[i] : x[i] * s;
}

void SoftmaxPortable(float* x, int64_t n) {
  if (n <= 0) return;
  float m = x[0];
  for (int64_t i = 1; i < n; ++i) m = std::max(m, x[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - m);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void SiluMulPortable(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void AddPortable(const float* a, const float* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void ScalePortable(float* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

void AttendPortable(const AttendArgs& a, int g, int h0, int h1, int64_t i0, int64_t i1) {
  std::vector<float> scores;
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t n = int64_t{a.q_pos[i]} + 1;
    scores.resize(static_cast<size_t>(n));
    for (int h = h0; h < h1; ++h) {
      const float* q = a.q + i * a.q_stride + int64_t{h} * a.head_dim;
      for (int64_t p = 0; p < n; ++p) {
        const float* k = a.k + p * a.kv_stride + int64_t{g} * a.head_dim;
        float s = 0.0f;
        for (int d = 0; d < a.head_dim; ++d) s += q[d] * k[d];
        scores[p] = s * a.scale;
      }
      SoftmaxPortable(scores.data(), n);
      float* o = a.out + i * a.out_stride + int64_t{h} * a.head_dim;
      std::fill(o, o + a.head_dim, 0.0f);
      for (int64_t p = 0; p < n; ++p) {
        const float* v = a.v + p * a.kv_stride + int64_t{g} * a.head_dim;
        for (int d = 0; d < a.head_dim; ++d) o[d] += scores[p] * v[d];
      }
    }
  }
}

}  // namespace

const OpsTable& PortableOps() {
  static const OpsTable table{RmsNormPortable, SoftmaxPortable, SiluMulPortable,
                              AddPortable,     ScalePortable,   AttendPortable};
  return table;
}

}  // namespace internal

namespace {

const internal::OpsTable& Ops() {
  return ActiveKernelLevel() >= KernelLevel::kAvx2 ? internal::Avx2Ops() : internal::PortableOps();
}

}  // namespace

void RmsNorm(const float* x, const float* w, int64_t n, float eps, float* out) {
  Ops().rms_norm(x, w, n, eps, out);
}
void Softmax(float* x, int64_t n) { Ops().softmax(x, n); }
void SiluMul(const float* gate, const float* up, int64_t n, float* out) {
  Ops().silu_mul(gate, up, n, out);
}
void Add(const float* a, const float* b, int64_t n, float* out) { Ops().add(a, b, n, out); }
void Scale(float* x, int64_t n, float s) { Ops().scale(x, n, s); }

void RopeAngles(int64_t pos, int rope_dims, float freq_base, float* cos_out, float* sin_out) {
  const float theta_scale = std::pow(freq_base, -2.0f / static_cast<float>(rope_dims));
  float theta = static_cast<float>(pos);
  for (int i = 0; i < rope_dims / 2; ++i) {
    cos_out[i] = std::cos(theta);
    sin_out[i] = std::sin(theta);
    theta *= theta_scale;
  }
}

void RopeApply(float* x, int n_heads, int head_dim, int rope_dims, const float* cos,
               const float* sin) {
  for (int h = 0; h < n_heads; ++h) {
    float* xh = x + int64_t{h} * head_dim;
    for (int i = 0; i < rope_dims / 2; ++i) {
      const float x0 = xh[2 * i], x1 = xh[2 * i + 1];
      xh[2 * i] = x0 * cos[i] - x1 * sin[i];
      xh[2 * i + 1] = x0 * sin[i] + x1 * cos[i];
    }
  }
}

void Rope(float* x, int n_heads, int head_dim, int rope_dims, int64_t pos, float freq_base) {
  thread_local std::vector<float> cs;
  cs.resize(static_cast<size_t>(rope_dims));
  float* c = cs.data();
  float* s = c + rope_dims / 2;
  RopeAngles(pos, rope_dims, freq_base, c, s);
  RopeApply(x, n_heads, head_dim, rope_dims, c, s);
}

void Attention(const AttentionParams& p, const float* q, int64_t q_stride, int64_t n_q,
               const int32_t* q_pos, const float* k, const float* v, int64_t kv_stride, float* out,
               int64_t out_stride, ThreadPool* pool) {
  if (n_q <= 0 || p.heads <= 0 || p.kv_heads <= 0) return;
  internal::AttendArgs a;
  a.q = q;
  a.q_stride = q_stride;
  a.q_pos = q_pos;
  a.k = k;
  a.v = v;
  a.kv_stride = kv_stride;
  a.out = out;
  a.out_stride = out_stride;
  a.head_dim = p.head_dim;
  a.scale = p.scale;
  const auto attend = Ops().attend;
  const int group = p.heads / p.kv_heads;
  const int threads = pool != nullptr ? pool->n_threads() : 1;

  // Work items: (kv head, head slice, row tile). A slice holds all heads of a group unless that
  // leaves too few items for the threads (decode with few kv heads), then single heads.
  const int64_t row_tile = std::max<int64_t>(1, 64 / group);
  const int64_t tiles = (n_q + row_tile - 1) / row_tile;
  const int slices = (int64_t{p.kv_heads} * tiles >= 2 * threads) ? 1 : group;
  const int heads_per_slice = group / slices;
  const int64_t items = int64_t{p.kv_heads} * slices * tiles;
  auto run = [&](int64_t b, int64_t e) {
    for (int64_t it = b; it < e; ++it) {
      const int64_t tile = it % tiles;
      const int64_t gs = it / tiles;
      const int g = static_cast<int>(gs / slices);
      const int slice = static_cast<int>(gs % slices);
      const int h0 = g * group + slice * heads_per_slice;
      const int64_t i0 = tile * row_tile;
      attend(a, g, h0, h0 + heads_per_slice, i0, std::min(n_q, i0 + row_tile));
    }
  };
  int32_t max_pos = 0;
  for (int64_t i = 0; i < n_q; ++i) max_pos = std::max(max_pos, q_pos[i]);
  const int64_t work = n_q * p.heads * (int64_t{max_pos} + 1) * p.head_dim;
  if (pool != nullptr && threads > 1 && items > 1 && work >= (1 << 15)) {
    pool->ParallelFor(items, run);
  } else {
    run(0, items);
  }
}

}  // namespace sextant::cpu
