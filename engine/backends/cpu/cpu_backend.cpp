#include "engine/backends/cpu/cpu_backend.h"

#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "engine/backends/cpu/matmul.h"
#include "engine/backends/cpu/ops.h"
#include "engine/backends/cpu/thread_pool.h"

namespace sextant::cpu {
namespace {

using v8f = float __attribute__((vector_size(32)));

__attribute__((target("avx2,fma"))) inline v8f Load8(const float* p) {
  v8f v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

__attribute__((target("avx2,fma"))) float DotAvx2(const float* a, const float* b, int64_t n) {
  v8f acc0 = {}, acc1 = {}, acc2 = {}, acc3 = {};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 += Load8(a + i) * Load8(b + i);
    acc1 += Load8(a + i + 8) * Load8(b + i + 8);
    acc2 += Load8(a + i + 16) * Load8(b + i + 16);
    acc3 += Load8(a + i + 24) * Load8(b + i + 24);
  }
  for (; i + 8 <= n; i += 8) acc0 += Load8(a + i) * Load8(b + i);
  const v8f acc = (acc0 + acc1) + (acc2 + acc3);
  float sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

float DotPortable(const float* a, const float* b, int64_t n) {
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  }
  float sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// y += a * x
__attribute__((target("avx2,fma"))) void AxpyAvx2(float a, const float* x, float* y, int64_t n) {
  const v8f va = {a, a, a, a, a, a, a, a};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    v8f vy = Load8(y + i);
    vy += va * Load8(x + i);
    std::memcpy(y + i, &vy, sizeof(vy));
  }
  for (; i < n; ++i) y[i] += a * x[i];
}

void AxpyPortable(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// One head of one token: out = softmax(q . K[0..n) * scale) V, with scores as scratch.
// K and V rows are `stride` floats apart. The same function computes every row of every batch.
using v8i = int32_t __attribute__((vector_size(32)));

// e^x for x <= 0 (softmax arguments), 8 lanes: Cody-Waite range reduction and a degree-6
// polynomial; relative error below 2e-7 (about 2 ulp) over the range, 0 below -87.
__attribute__((target("avx2,fma"))) inline v8f ExpNonPositiveAvx2(v8f x) {
  const v8f lo = {-87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f};
  const v8i underflow = x < lo;
  x = x < lo ? lo : x;
  const v8f log2e = x * 1.44269504088896341f;
  // Round to nearest by the 1.5 * 2^23 trick (|log2e| < 126).
  const v8f magic = {12582912.0f, 12582912.0f, 12582912.0f, 12582912.0f,
                     12582912.0f, 12582912.0f, 12582912.0f, 12582912.0f};
  const v8f n = (log2e + magic) - magic;
  v8f r = x - n * 0.693145751953125f;
  r = r - n * 1.428606765330187045e-06f;
  v8f p = r * 1.9875691500e-4f + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const v8i e = (__builtin_convertvector(n, v8i) + 127) << 23;
  v8f scale;
  std::memcpy(&scale, &e, sizeof(scale));
  const v8f result = p * scale;
  return underflow ? v8f{} : result;
}

// scores[p] = exp(scores[p] - mx) for p < n (mx the maximum, so every exponent is <= 0); returns
// their sum, always in the same order (8 lanes, then the tail, then a fixed lane tree).
__attribute__((target("avx2,fma"))) float SoftmaxExpAvx2(float* scores, int64_t n, float mx) {
  const v8f vmx = {mx, mx, mx, mx, mx, mx, mx, mx};
  v8f vsum = {};
  float sum = 0;
  int64_t p = 0;
  for (; p + 8 <= n; p += 8) {
    const v8f e = ExpNonPositiveAvx2(Load8(scores + p) - vmx);
    std::memcpy(scores + p, &e, sizeof(e));
    vsum += e;
  }
  for (; p < n; ++p) {
    scores[p] = std::exp(scores[p] - mx);
    sum += scores[p];
  }
  return sum + (((vsum[0] + vsum[4]) + (vsum[1] + vsum[5])) +
                ((vsum[2] + vsum[6]) + (vsum[3] + vsum[7])));
}

__attribute__((target("avx2,fma"))) void AttendHeadAvx2(const float* q, const float* k,
                                                        const float* v, int64_t stride, int64_t hd,
                                                        int64_t n, float scale, float* scores,
                                                        float* out) {
  float mx = -INFINITY;
  if (hd == 8) {
    const v8f vq = Load8(q);
    for (int64_t p = 0; p < n; ++p) {
      const v8f prod = vq * Load8(k + p * stride);
      const float s = (((prod[0] + prod[4]) + (prod[1] + prod[5])) +
                       ((prod[2] + prod[6]) + (prod[3] + prod[7]))) *
                      scale;
      scores[p] = s;
      mx = s > mx ? s : mx;
    }
  } else {
    for (int64_t p = 0; p < n; ++p) {
      const float s = DotAvx2(q, k + p * stride, hd) * scale;
      scores[p] = s;
      mx = s > mx ? s : mx;
    }
  }
  const float sum = SoftmaxExpAvx2(scores, n, mx);
  const float inv = 1.0f / sum;
  if (hd % 8 == 0 && hd <= 256) {
    v8f acc[32];
    const int64_t nv = hd / 8;
    for (int64_t j = 0; j < nv; ++j) acc[j] = v8f{};
    for (int64_t p = 0; p < n; ++p) {
      const float w = scores[p] * inv;
      const v8f vw = {w, w, w, w, w, w, w, w};
      const float* vr = v + p * stride;
      for (int64_t j = 0; j < nv; ++j) acc[j] += vw * Load8(vr + 8 * j);
    }
    std::memcpy(out, acc, static_cast<size_t>(hd) * sizeof(float));
  } else {
    std::fill(out, out + hd, 0.0f);
    for (int64_t p = 0; p < n; ++p) AxpyAvx2(scores[p] * inv, v + p * stride, out, hd);
  }
}

// [S0..S7] where S_i is the sum of the 8 lanes of s[i], by the same tree for every i (so a key's
// score does not depend on which other keys share its block). Written to out.
__attribute__((target("avx2,fma"))) inline void Reduce8Ps(const __m256* s, float* out) {
  __m256 ab[4];  // [a b a b] per half, each a sum of 2 lanes
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i)
    ab[i] = _mm256_add_ps(_mm256_unpacklo_ps(s[2 * i], s[2 * i + 1]),
                          _mm256_unpackhi_ps(s[2 * i], s[2 * i + 1]));
  __m256 abcd[2];  // [a b c d] per half, each a sum of 4 lanes
#pragma GCC unroll 2
  for (int i = 0; i < 2; ++i) {
    const __m256d x = _mm256_castps_pd(ab[2 * i]), y = _mm256_castps_pd(ab[2 * i + 1]);
    abcd[i] = _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(x, y)),
                            _mm256_castpd_ps(_mm256_unpackhi_pd(x, y)));
  }
  _mm256_storeu_ps(out, _mm256_add_ps(_mm256_permute2f128_ps(abcd[0], abcd[1], 0x20),
                                      _mm256_permute2f128_ps(abcd[0], abcd[1], 0x31)));
}

// AttendHeadAvx2 for head_dim = 8 * NV: the query stays in registers, keys are scored 8 at a
// time (8 independent FMA chains, one transpose-add), and the output accumulates in registers.
template <int NV>
__attribute__((target("avx2,fma"))) void AttendHeadAvx2Fixed(const float* q, const float* k,
                                                             const float* v, int64_t stride,
                                                             int64_t n, float scale, float* scores,
                                                             float* out) {
  __m256 qv[NV];
#pragma GCC unroll 32
  for (int j = 0; j < NV; ++j) qv[j] = _mm256_loadu_ps(q + 8 * j);
  const __m256 vscale = _mm256_set1_ps(scale);
  __m256 vmax = _mm256_set1_ps(-INFINITY);
  for (int64_t p = 0; p < n; p += 8) {
    const int m = static_cast<int>(std::min<int64_t>(8, n - p));
    __m256 s[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
      if (i < m) {
        const float* kr = k + (p + i) * stride;
        __m256 acc = _mm256_mul_ps(qv[0], _mm256_loadu_ps(kr));
#pragma GCC unroll 32
        for (int j = 1; j < NV; ++j) acc = _mm256_fmadd_ps(qv[j], _mm256_loadu_ps(kr + 8 * j), acc);
        s[i] = acc;
      } else {
        s[i] = _mm256_setzero_ps();
      }
    }
    alignas(32) float red[8];
    Reduce8Ps(s, red);
    const __m256 sc = _mm256_mul_ps(_mm256_load_ps(red), vscale);
    if (m == 8) {
      _mm256_storeu_ps(scores + p, sc);
      vmax = _mm256_max_ps(vmax, sc);
    } else {
      alignas(32) float tmp[8];
      _mm256_store_ps(tmp, sc);
      for (int i = 0; i < m; ++i) scores[p + i] = tmp[i];
      vmax = _mm256_max_ps(
          vmax,
          _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), sc,
                           _mm256_castsi256_ps(_mm256_cmpgt_epi32(
                               _mm256_set1_epi32(m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)))));
    }
  }
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  const float mx = _mm_cvtss_f32(m4);
  const float sum = SoftmaxExpAvx2(scores, n, mx);
  const float inv = 1.0f / sum;
  __m256 acc[NV];
#pragma GCC unroll 32
  for (int j = 0; j < NV; ++j) acc[j] = _mm256_setzero_ps();
  for (int64_t p = 0; p < n; ++p) {
    const __m256 vw = _mm256_set1_ps(scores[p] * inv);
    const float* vr = v + p * stride;
#pragma GCC unroll 32
    for (int j = 0; j < NV; ++j) acc[j] = _mm256_fmadd_ps(vw, _mm256_loadu_ps(vr + 8 * j), acc[j]);
  }
#pragma GCC unroll 32
  for (int j = 0; j < NV; ++j) _mm256_storeu_ps(out + 8 * j, acc[j]);
}

void AttendHeadPortable(const float* q, const float* k, const float* v, int64_t stride, int64_t hd,
                        int64_t n, float scale, float* scores, float* out) {
  float mx = -INFINITY;
  for (int64_t p = 0; p < n; ++p) {
    const float s = DotPortable(q, k + p * stride, hd) * scale;
    scores[p] = s;
    mx = s > mx ? s : mx;
  }
  float sum = 0;
  for (int64_t p = 0; p < n; ++p) {
    scores[p] = std::exp(scores[p] - mx);
    sum += scores[p];
  }
  const float inv = 1.0f / sum;
  std::fill(out, out + hd, 0.0f);
  for (int64_t p = 0; p < n; ++p) AxpyPortable(scores[p] * inv, v + p * stride, out, hd);
}

const bool kHaveAvx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");

// One head with soft-capped scores (gemma2): s = softcap * tanh(q.k * scale / softcap), then the
// softmax and the weighted sum of the values as AttendHeadPortable.
void AttendHeadSoftcap(const float* q, const float* k, const float* v, int64_t stride, int64_t hd,
                       int64_t n, float scale, float softcap, float* scores, float* out) {
  float mx = -INFINITY;
  for (int64_t p = 0; p < n; ++p) {
    const float d =
        (kHaveAvx2 ? DotAvx2(q, k + p * stride, hd) : DotPortable(q, k + p * stride, hd));
    const float s = softcap * std::tanh(d * scale / softcap);
    scores[p] = s;
    mx = s > mx ? s : mx;
  }
  float sum = 0;
  for (int64_t p = 0; p < n; ++p) {
    scores[p] = std::exp(scores[p] - mx);
    sum += scores[p];
  }
  const float inv = 1.0f / sum;
  std::fill(out, out + hd, 0.0f);
  for (int64_t p = 0; p < n; ++p) {
    if (kHaveAvx2) {
      AxpyAvx2(scores[p] * inv, v + p * stride, out, hd);
    } else {
      AxpyPortable(scores[p] * inv, v + p * stride, out, hd);
    }
  }
}

int DefaultThreads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

class CpuContext;

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads) : threads_(threads) {}

  std::string_view name() const override { return "cpu"; }
  std::string device() const override {
    return std::string("cpu (") + KernelLevelName(ActiveKernelLevel()) + ", " +
           std::to_string(threads_) + (threads_ == 1 ? " thread)" : " threads)");
  }
  std::string kernel_level() const override { return KernelLevelName(ActiveKernelLevel()); }
  int32_t threads() const override { return threads_; }

  Result<Weight> AddWeight(const gguf::Tensor& tensor) override {
    if (tensor.dims.empty() || tensor.data == nullptr) {
      return Status::InvalidArgument("cpu backend: tensor '" + tensor.name + "' has no data");
    }
    WeightView view;
    view.type = tensor.type;
    view.data = tensor.data;
    view.cols = tensor.dims[0];
    view.rows = tensor.rows();
    weights_.push_back(view);
    return Weight{static_cast<int32_t>(weights_.size() - 1)};
  }

  Result<std::unique_ptr<BackendContext>> NewContext(const ContextConfig& config) const override;

  const WeightView& view(Weight w) const { return weights_[static_cast<size_t>(w.id)]; }

 private:
  int threads_;
  std::vector<WeightView> weights_;
};

class CpuContext final : public BackendContext {
 public:
  CpuContext(const CpuBackend& backend, const ContextConfig& config, int threads)
      : backend_(backend), kv_(config.kv), max_tokens_(config.max_tokens), pool_(threads) {}

  ~CpuContext() override {
    if (kv_base_ != nullptr) munmap(kv_base_, kv_map_bytes_);
  }

  Status Init() {
    const int64_t bytes = kv_.bytes();
    if (bytes <= 0) return Status::InvalidArgument("cpu backend: empty KV cache shape");
    kv_map_bytes_ = static_cast<size_t>(bytes);
    // Anonymous, lazily backed: a position's pages become resident when first written.
    void* p = mmap(nullptr, kv_map_bytes_, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      kv_map_bytes_ = 0;
      return Status::ResourceExhausted("cpu backend: cannot map a KV cache of " +
                                       std::to_string(bytes >> 20) + " MiB");
    }
    kv_base_ = static_cast<float*>(p);
    tokens_.assign(static_cast<size_t>(max_tokens_), 0);
    positions_.assign(static_cast<size_t>(max_tokens_), 0);
    slots_.assign(static_cast<size_t>(max_tokens_), 0);
    return Status::Ok();
  }

  Result<Buffer> AllocBuffer(int64_t cols, int64_t rows) override {
    if (cols <= 0 || rows < 0) return Status::InvalidArgument("cpu backend: bad buffer shape");
    if (rows == 0) rows = max_tokens_;
    Buf b;
    b.cols = cols;
    b.rows = rows;
    b.data.assign(static_cast<size_t>(cols * rows), 0.0f);
    buffers_.push_back(std::move(b));
    return Buffer{static_cast<int32_t>(buffers_.size() - 1)};
  }
  const KvCacheShape& kv_shape() const override { return kv_; }
  int32_t max_tokens() const override { return max_tokens_; }

  Status SetBatch(const ForwardBatch& batch) override {
    if (batch.n_tokens <= 0 || batch.n_tokens > max_tokens_) {
      return Status::InvalidArgument("batch of " + std::to_string(batch.n_tokens) +
                                     " tokens: expected 1.." + std::to_string(max_tokens_));
    }
    for (int32_t i = 0; i < batch.n_tokens; ++i) {
      if (batch.slots[i] < 0 || batch.slots[i] >= kv_.slots) {
        return Status::InvalidArgument("batch token " + std::to_string(i) + ": slot " +
                                       std::to_string(batch.slots[i]) + " outside 0.." +
                                       std::to_string(kv_.slots - 1));
      }
      if (batch.positions[i] < 0 || batch.positions[i] >= kv_.context_length) {
        return Status::OutOfRange("batch token " + std::to_string(i) + ": position " +
                                  std::to_string(batch.positions[i]) + " outside the context of " +
                                  std::to_string(kv_.context_length) + " positions");
      }
    }
    n_ = batch.n_tokens;
    std::copy_n(batch.tokens, n_, tokens_.begin());
    std::copy_n(batch.positions, n_, positions_.begin());
    std::copy_n(batch.slots, n_, slots_.begin());
    return Status::Ok();
  }

  void GetRows(Weight table, Buffer out) override {
    const WeightView& w = backend_.view(table);
    Buf& o = buf(out);
    for (int32_t r = 0; r < n_; ++r) {
      DequantizeRow(w, tokens_[static_cast<size_t>(r)], o.row(r));
    }
  }

  void RmsNorm(Buffer x, Weight gamma, float eps, int64_t rows, Buffer out) override {
    const Buf& in = buf(x);
    Buf& o = buf(out);
    const float* g = reinterpret_cast<const float*>(backend_.view(gamma).data);
    for (int64_t r = 0; r < rows; ++r) cpu::RmsNorm(in.row(r), g, in.cols, eps, o.row(r));
  }

  void MatMul(Weight w, Buffer x, int64_t rows, Buffer y) override {
    cpu::MatMul(backend_.view(w), buf(x).data.data(), rows, buf(y).data.data(), &pool_);
  }

  void Rope(Buffer x, const RopeShape& shape) override {
    Buf& b = buf(x);
    const int64_t half = shape.rope_dims / 2;
    const float theta_scale =
        std::pow(shape.freq_base, -2.0f / static_cast<float>(shape.rope_dims));
    const float* factors =
        shape.freq_factors.valid()
            ? reinterpret_cast<const float*>(backend_.view(shape.freq_factors).data)
            : nullptr;
    // Pair i of a head: (2i, 2i + 1), or (i, i + half) in NeoX mode.
    const int64_t stride = shape.neox ? 1 : 2;
    const int64_t second = shape.neox ? half : 1;
    for (int32_t r = 0; r < n_; ++r) {
      float* v = b.row(r);
      float theta = static_cast<float>(positions_[static_cast<size_t>(r)]) * shape.freq_scale;
      for (int64_t i = 0; i < half; ++i) {
        const float angle = factors != nullptr ? theta / factors[i] : theta;
        const float c = std::cos(angle);
        const float s = std::sin(angle);
        for (int32_t h = 0; h < shape.heads; ++h) {
          float* p = v + int64_t{h} * shape.head_dim + stride * i;
          const float x0 = p[0];
          const float x1 = p[second];
          p[0] = x0 * c - x1 * s;
          p[second] = x0 * s + x1 * c;
        }
        theta *= theta_scale;
      }
    }
  }

  void Attention(int32_t layer, Buffer q, Buffer k, Buffer v, const AttentionShape& shape,
                 Buffer out) override {
    const int64_t kv_dim = kv_.kv_dim();
    const int64_t ctx = kv_.context_length;
    const int64_t slot_stride = ctx * kv_dim;
    float* k_cache = kv_base_ + int64_t{layer} * 2 * kv_.slots * slot_stride;
    float* v_cache = k_cache + int64_t{kv_.slots} * slot_stride;
    const Buf& kb = buf(k);
    const Buf& vb = buf(v);
    for (int32_t r = 0; r < n_; ++r) {
      const int64_t off = slots_[static_cast<size_t>(r)] * slot_stride +
                          int64_t{positions_[static_cast<size_t>(r)]} * kv_dim;
      std::memcpy(k_cache + off, kb.row(r), static_cast<size_t>(kv_dim) * sizeof(float));
      std::memcpy(v_cache + off, vb.row(r), static_cast<size_t>(kv_dim) * sizeof(float));
    }
    const Buf& qb = buf(q);
    Buf& ob = buf(out);
    const int64_t tasks = int64_t{n_} * shape.heads;
    const int group = shape.heads / shape.kv_heads;
    const int64_t hd = shape.head_dim;
    // Tasks (token, head) go out in small chunks claimed dynamically: causal rows late in a
    // prefill cost more than early ones, and a descheduled thread holds up one chunk only.
    const auto run = [&](int64_t begin, int64_t end) {
      thread_local std::vector<float> scores;
      if (scores.size() < static_cast<size_t>(ctx)) scores.resize(static_cast<size_t>(ctx));
      for (int64_t t = begin; t < end; ++t) {
        const int64_t r = t / shape.heads;
        const int64_t h = t % shape.heads;
        const int64_t kvh = h / group;
        const int64_t pos = positions_[static_cast<size_t>(r)];
        // A sliding window starts the keys at pos - window + 1.
        const int64_t first =
            shape.window > 0 ? std::max<int64_t>(0, pos - shape.window + 1) : int64_t{0};
        const float* qv = qb.row(r) + h * hd;
        const float* kbase =
            k_cache + slots_[static_cast<size_t>(r)] * slot_stride + first * kv_dim + kvh * hd;
        const float* vbase =
            v_cache + slots_[static_cast<size_t>(r)] * slot_stride + first * kv_dim + kvh * hd;
        float* o = ob.row(r) + h * hd;
        const int64_t n = pos + 1 - first;
        if (shape.softcap > 0.0f) {
          AttendHeadSoftcap(qv, kbase, vbase, kv_dim, hd, n, shape.scale, shape.softcap,
                            scores.data(), o);
        } else if (kHaveAvx2 && hd == 64) {
          AttendHeadAvx2Fixed<8>(qv, kbase, vbase, kv_dim, n, shape.scale, scores.data(), o);
        } else if (kHaveAvx2 && hd == 128) {
          AttendHeadAvx2Fixed<16>(qv, kbase, vbase, kv_dim, n, shape.scale, scores.data(), o);
        } else if (kHaveAvx2) {
          AttendHeadAvx2(qv, kbase, vbase, kv_dim, hd, n, shape.scale, scores.data(), o);
        } else {
          AttendHeadPortable(qv, kbase, vbase, kv_dim, hd, n, shape.scale, scores.data(), o);
        }
      }
    };
    const int n_threads = pool_.n_threads();
    // Small jobs (a tiny model's decode step) cost less inline than a hand-off to the workers.
    int32_t max_pos = 0;
    for (int32_t r = 0; r < n_; ++r)
      max_pos = std::max(max_pos, positions_[static_cast<size_t>(r)]);
    const int64_t work = tasks * (int64_t{max_pos} + 1) * hd;
    if (n_threads == 1 || tasks < 2 || work < (int64_t{1} << 15)) {
      run(0, tasks);
    } else {
      pool_.ParallelForDynamic(tasks, std::max<int64_t>(1, tasks / (int64_t{n_threads} * 16)), run);
    }
  }

  void SwiGlu(Buffer gate, Buffer up) override {
    Buf& g = buf(gate);
    const Buf& u = buf(up);
    for (int32_t r = 0; r < n_; ++r) cpu::SiluMul(g.row(r), u.row(r), g.cols, g.row(r));
  }

  void GeGlu(Buffer gate, Buffer up) override {
    Buf& g = buf(gate);
    const Buf& u = buf(up);
    const int64_t n = int64_t{n_} * g.cols;
    float* gd = g.data.data();
    const float* ud = u.data.data();
    constexpr float kSqrt2OverPi = 0.7978845608028654f;
    for (int64_t i = 0; i < n; ++i) {
      const float x = gd[i];
      gd[i] = 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + 0.044715f * x * x))) * ud[i];
    }
  }

  void AddBias(Buffer x, Weight bias) override {
    Buf& a = buf(x);
    const float* b = reinterpret_cast<const float*>(backend_.view(bias).data);
    for (int32_t r = 0; r < n_; ++r) cpu::Add(a.row(r), b, a.cols, a.row(r));
  }

  void RmsNormHeads(Buffer x, Weight gamma, float eps, int32_t heads, int32_t head_dim) override {
    Buf& a = buf(x);
    const float* g = reinterpret_cast<const float*>(backend_.view(gamma).data);
    for (int32_t r = 0; r < n_; ++r) {
      for (int32_t h = 0; h < heads; ++h) {
        float* p = a.row(r) + int64_t{h} * head_dim;
        cpu::RmsNorm(p, g, head_dim, eps, p);
      }
    }
  }

  void Scale(Buffer x, float s, int64_t rows) override {
    Buf& a = buf(x);
    cpu::Scale(a.data.data(), rows * a.cols, s);
  }

  void SoftCap(Buffer x, float cap, int64_t rows) override {
    Buf& a = buf(x);
    float* d = a.data.data();
    const float inv = 1.0f / cap;
    for (int64_t i = 0; i < rows * a.cols; ++i) d[i] = cap * std::tanh(d[i] * inv);
  }

  void Add(Buffer x, Buffer y) override {
    Buf& a = buf(x);
    const Buf& b = buf(y);
    const int64_t n = int64_t{n_} * a.cols;
    cpu::Add(a.data.data(), b.data.data(), n, a.data.data());
  }

  void SelectRows(Buffer src, std::span<const int32_t> rows, Buffer dst) override {
    const Buf& s = buf(src);
    Buf& d = buf(dst);
    for (size_t i = 0; i < rows.size(); ++i) {
      std::memcpy(d.row(static_cast<int64_t>(i)), s.row(rows[i]),
                  static_cast<size_t>(s.cols) * sizeof(float));
    }
  }

  Status ReadRows(Buffer b, int64_t n_rows, float* host) override {
    const Buf& s = buf(b);
    if (n_rows > s.rows) return Status::InvalidArgument("ReadRows: more rows than the buffer has");
    std::memcpy(host, s.data.data(), static_cast<size_t>(n_rows * s.cols) * sizeof(float));
    return Status::Ok();
  }

 private:
  struct Buf {
    std::vector<float> data;
    int64_t cols = 0;
    int64_t rows = 0;
    float* row(int64_t r) { return data.data() + r * cols; }
    const float* row(int64_t r) const { return data.data() + r * cols; }
  };
  Buf& buf(Buffer b) { return buffers_[static_cast<size_t>(b.id)]; }
  const Buf& buf(Buffer b) const { return buffers_[static_cast<size_t>(b.id)]; }

  const CpuBackend& backend_;
  KvCacheShape kv_;
  int32_t max_tokens_;
  ThreadPool pool_;
  float* kv_base_ = nullptr;  // per layer: K [slots][ctx][kv_dim], then V likewise
  size_t kv_map_bytes_ = 0;
  std::vector<Buf> buffers_;
  int32_t n_ = 0;
  std::vector<int32_t> tokens_, positions_, slots_;
};

Result<std::unique_ptr<BackendContext>> CpuBackend::NewContext(const ContextConfig& config) const {
  if (config.max_tokens <= 0) return Status::InvalidArgument("cpu backend: max_tokens must be > 0");
  const KvCacheShape& kv = config.kv;
  if (kv.layers <= 0 || kv.slots <= 0 || kv.context_length <= 0 || kv.kv_heads <= 0 ||
      kv.head_dim <= 0) {
    return Status::InvalidArgument("cpu backend: bad KV cache shape");
  }
  const int threads = config.threads > 0 ? config.threads : threads_;
  auto ctx = std::make_unique<CpuContext>(*this, config, threads);
  SEXTANT_RETURN_IF_ERROR(ctx->Init());
  return std::unique_ptr<BackendContext>(std::move(ctx));
}

}  // namespace

float Dot(const float* a, const float* b, int64_t n) {
  return kHaveAvx2 ? DotAvx2(a, b, n) : DotPortable(a, b, n);
}

Result<std::unique_ptr<Backend>> NewCpuBackend(const BackendOptions& options) {
  const int threads = options.threads > 0 ? options.threads : DefaultThreads();
  return std::unique_ptr<Backend>(std::make_unique<CpuBackend>(threads));
}

}  // namespace sextant::cpu
