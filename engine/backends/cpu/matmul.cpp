// MatMul / DequantizeRow: kernel-level selection, activation quantization, the split of rows over
// threads, and the portable (plain C++) kernels every other level is checked against.
#include "engine/backends/cpu/matmul.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "engine/backends/cpu/matmul_kernels.h"
#include "engine/backends/cpu/thread_pool.h"

namespace sextant::cpu {
namespace internal {
namespace {

using gguf::BlockQ4_0;
using gguf::BlockQ4_K;
using gguf::BlockQ6_K;
using gguf::BlockQ8_0;

// ---- activation quantizers ------------------------------------------------------------------

// Both quantizers round x / d to nearest-even, as the SIMD levels do, so every level sees the
// same integers.
void QuantizeQ8A(const float* x, int64_t cols, void* out) {
  const int64_t nb = cols / 32;
  const Q8ARow row = Q8ARowAt(out, nb);
  for (int64_t b = 0; b < nb; ++b) {
    const float* xb = x + b * 32;
    float amax = 0.0f;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(xb[i]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 127.0f / amax : 0.0f;
    row.d[b] = d;
    int32_t sum = 0;
    for (int i = 0; i < 32; ++i) {
      const auto q = static_cast<int8_t>(std::nearbyint(xb[i] * id));
      row.qs[b * 32 + i] = q;
      sum += q;
    }
    row.sum[b] = sum;
  }
}

void QuantizeQ8A4(const float* x, int64_t cols, void* out) {
  const int64_t nb = cols / 32;
  auto* row = static_cast<uint8_t*>(out);
  std::memset(row, 0, Q8A4RowBytes(nb));
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* group = row + (b / 8) * kQ8A4GroupBytes;
    const int k = static_cast<int>(b % 8);
    const float* xb = x + b * 32;
    float amax = 0.0f;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(xb[i]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 127.0f / amax : 0.0f;
    int32_t sum = 0;
    for (int i = 0; i < 32; ++i) {
      const auto q = static_cast<int8_t>(std::nearbyint(xb[i] * id));
      group[Q8A4QsPos(k, i)] = static_cast<uint8_t>(q);
      sum += q;
    }
    std::memcpy(group + 4 * Q8A4ScalePos(k), &d, 4);
    std::memcpy(group + 32 + 4 * Q8A4ScalePos(k), &sum, 4);
  }
}

void QuantizeQ8K(const float* x, int64_t cols, void* out) {
  auto* blocks = static_cast<BlockQ8K*>(out);
  for (int64_t b = 0; b < cols / 256; ++b) {
    const float* xb = x + b * 256;
    float amax = 0.0f;
    for (int i = 0; i < 256; ++i) amax = std::max(amax, std::fabs(xb[i]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 127.0f / amax : 0.0f;
    blocks[b].d = d;
    for (int i = 0; i < 256; ++i) blocks[b].qs[i] = static_cast<int8_t>(std::nearbyint(xb[i] * id));
    for (int j = 0; j < 16; ++j) {
      int s = 0;
      for (int i = 0; i < 16; ++i) s += blocks[b].qs[j * 16 + i];
      blocks[b].bsums[j] = static_cast<int16_t>(s);
    }
  }
}

// ---- portable dot products --------------------------------------------------------------------

template <typename Load>
float DotFloat(const uint8_t* w, const float* x, int64_t cols, Load load) {
  float acc[8] = {};
  int64_t c = 0;
  for (; c + 8 <= cols; c += 8)
    for (int i = 0; i < 8; ++i) acc[i] += load(w, c + i) * x[c + i];
  for (; c < cols; ++c) acc[0] += load(w, c) * x[c];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

float DotQ8_0(const uint8_t* wrow, const uint8_t* xrow, int64_t cols) {
  const auto* w = reinterpret_cast<const BlockQ8_0*>(wrow);
  const Q8ARow x = Q8ARowAt(xrow, cols / 32);
  float acc = 0.0f;
  for (int64_t b = 0; b < cols / 32; ++b) {
    int32_t s = 0;
    for (int i = 0; i < 32; ++i) s += int32_t{w[b].qs[i]} * x.qs[b * 32 + i];
    acc += HalfToFloat(LoadU16(&w[b].d)) * x.d[b] * static_cast<float>(s);
  }
  return acc;
}

float DotQ4_0(const uint8_t* wrow, const uint8_t* xrow, int64_t cols) {
  const auto* w = reinterpret_cast<const BlockQ4_0*>(wrow);
  float acc = 0.0f;
  for (int64_t b = 0; b < cols / 32; ++b) {
    const uint8_t* group = xrow + (b / 8) * kQ8A4GroupBytes;
    const int k = static_cast<int>(b % 8);
    const auto* qs = reinterpret_cast<const int8_t*>(group);
    int32_t s = 0;
    for (int i = 0; i < 16; ++i) {
      s += ((w[b].qs[i] & 0xF) - 8) * qs[Q8A4QsPos(k, i)];
      s += ((w[b].qs[i] >> 4) - 8) * qs[Q8A4QsPos(k, i + 16)];
    }
    float dx;
    std::memcpy(&dx, group + 4 * Q8A4ScalePos(k), 4);
    acc += HalfToFloat(LoadU16(&w[b].d)) * dx * static_cast<float>(s);
  }
  return acc;
}

float DotQ4_K(const uint8_t* wrow, const uint8_t* xrow, int64_t cols) {
  const auto* w = reinterpret_cast<const BlockQ4_K*>(wrow);
  const auto* x = reinterpret_cast<const BlockQ8K*>(xrow);
  float acc = 0.0f;
  for (int64_t b = 0; b < cols / 256; ++b) {
    int32_t sumi = 0, summ = 0;
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      Q4KScaleMin(w[b].scales, j, &sc, &m);
      const uint8_t* q = w[b].qs + (j / 2) * 32;
      const int shift = (j % 2) * 4;
      int32_t s = 0;
      for (int i = 0; i < 32; ++i) s += ((q[i] >> shift) & 0xF) * x[b].qs[j * 32 + i];
      sumi += sc * s;
      summ += m * (x[b].bsums[2 * j] + x[b].bsums[2 * j + 1]);
    }
    const float d = HalfToFloat(LoadU16(&w[b].d)) * x[b].d;
    const float dmin = HalfToFloat(LoadU16(&w[b].dmin)) * x[b].d;
    acc += d * static_cast<float>(sumi) - dmin * static_cast<float>(summ);
  }
  return acc;
}

// Q6_K element i of a super-block as an unsigned 6-bit value (0..63; the stored value is q - 32).
inline int Q6KValue(const BlockQ6_K& b, int i) {
  const int half = i / 128, l = i % 128;
  const int group = l / 32, pos = l % 32;  // group 0..3 within the half
  const uint8_t* ql = b.ql + half * 64;
  const uint8_t* qh = b.qh + half * 32;
  const int low = (group % 2 == 0 ? ql[pos] : ql[pos + 32]);
  const int lo4 = group < 2 ? (low & 0xF) : (low >> 4);
  const int hi2 = (qh[pos] >> (2 * group)) & 3;
  return lo4 | (hi2 << 4);
}

float DotQ6_K(const uint8_t* wrow, const uint8_t* xrow, int64_t cols) {
  const auto* w = reinterpret_cast<const BlockQ6_K*>(wrow);
  const auto* x = reinterpret_cast<const BlockQ8K*>(xrow);
  float acc = 0.0f;
  for (int64_t b = 0; b < cols / 256; ++b) {
    int32_t sumi = 0;
    for (int j = 0; j < 16; ++j) {
      int32_t s = 0;
      for (int i = 0; i < 16; ++i) s += (Q6KValue(w[b], j * 16 + i) - 32) * x[b].qs[j * 16 + i];
      sumi += w[b].scales[j] * s;
    }
    acc += HalfToFloat(LoadU16(&w[b].d)) * x[b].d * static_cast<float>(sumi);
  }
  return acc;
}

template <float (*Dot)(const uint8_t*, const uint8_t*, int64_t)>
void GemmQuant(const GemmArgs& a, int64_t r0, int64_t r1) {
  for (int64_t t = 0; t < a.n_tokens; ++t)
    for (int64_t r = r0; r < r1; ++r)
      a.y[t * a.ldy + r] = Dot(a.w + r * a.w_row_bytes, a.x + t * a.x_row_bytes, a.cols);
}

template <typename Load>
void GemmFloat(const GemmArgs& a, int64_t r0, int64_t r1, Load load) {
  for (int64_t t = 0; t < a.n_tokens; ++t)
    for (int64_t r = r0; r < r1; ++r)
      a.y[t * a.ldy + r] =
          DotFloat(a.w + r * a.w_row_bytes, reinterpret_cast<const float*>(a.x + t * a.x_row_bytes),
                   a.cols, load);
}

void GemmF32(const GemmArgs& a, int64_t r0, int64_t r1) {
  GemmFloat(a, r0, r1, [](const uint8_t* w, int64_t i) {
    float v;
    std::memcpy(&v, w + i * 4, 4);
    return v;
  });
}
void GemmF16(const GemmArgs& a, int64_t r0, int64_t r1) {
  GemmFloat(a, r0, r1, [](const uint8_t* w, int64_t i) { return HalfToFloat(LoadU16(w + i * 2)); });
}
void GemmBF16(const GemmArgs& a, int64_t r0, int64_t r1) {
  GemmFloat(a, r0, r1, [](const uint8_t* w, int64_t i) { return Bf16ToFloat(LoadU16(w + i * 2)); });
}

KernelTable MakePortable() {
  KernelTable t;
  t.gemm[kSlotF32] = GemmF32;
  t.gemm[kSlotF16] = GemmF16;
  t.gemm[kSlotBF16] = GemmBF16;
  t.gemm[kSlotQ8_0] = GemmQuant<DotQ8_0>;
  t.gemm[kSlotQ4_0] = GemmQuant<DotQ4_0>;
  t.gemm[kSlotQ4_K] = GemmQuant<DotQ4_K>;
  t.gemm[kSlotQ6_K] = GemmQuant<DotQ6_K>;
  t.quantize_q8a = QuantizeQ8A;
  t.quantize_q8a4 = QuantizeQ8A4;
  t.quantize_q8k = QuantizeQ8K;
  return t;
}

}  // namespace

const KernelTable& PortableKernels() {
  static const KernelTable table = MakePortable();
  return table;
}

}  // namespace internal

namespace {

using internal::KernelTable;

#if defined(__x86_64__) || defined(__i386__)
// F16C from CPUID leaf 1 (ECX bit 29): clang does not accept "f16c" in __builtin_cpu_supports.
bool CpuHasF16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
}
#endif

KernelLevel Detect() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && CpuHasF16c();
  if (!avx2) return KernelLevel::kPortable;
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bf16");
  return avx512 ? KernelLevel::kAvx512 : KernelLevel::kAvx2;
#else
  return KernelLevel::kPortable;
#endif
}

std::atomic<int>& ActiveLevelStore() {
  static std::atomic<int> level{static_cast<int>(DetectedKernelLevel())};
  return level;
}

const KernelTable& Table(KernelLevel level) {
  switch (level) {
    case KernelLevel::kAvx512:
      return internal::Avx512Kernels();
    case KernelLevel::kAvx2:
      return internal::Avx2Kernels();
    case KernelLevel::kPortable:
      break;
  }
  return internal::PortableKernels();
}

int Slot(gguf::TensorType type) {
  switch (type) {
    case gguf::TensorType::kF32:
      return internal::kSlotF32;
    case gguf::TensorType::kF16:
      return internal::kSlotF16;
    case gguf::TensorType::kBF16:
      return internal::kSlotBF16;
    case gguf::TensorType::kQ8_0:
      return internal::kSlotQ8_0;
    case gguf::TensorType::kQ4_0:
      return internal::kSlotQ4_0;
    case gguf::TensorType::kQ4_K:
      return internal::kSlotQ4_K;
    case gguf::TensorType::kQ6_K:
      return internal::kSlotQ6_K;
  }
  return internal::kSlotF32;
}

// Activation scratch of the calling thread (concurrent MatMul calls come from distinct threads).
std::vector<uint8_t>& ActivationScratch() {
  thread_local std::vector<uint8_t> buf;
  return buf;
}

// Rows per unit of work handed to threads: a multiple of every kernel's row tile.
constexpr int64_t kRowUnit = 16;
// Work chunks per thread of a parallel MatMul (claimed dynamically).
constexpr int64_t kChunksPerThread = 8;
// Below this many multiply-adds a call runs on the calling thread (dispatch costs more).
constexpr int64_t kMinParallelWork = 1 << 16;

}  // namespace

KernelLevel DetectedKernelLevel() {
  static const KernelLevel level = Detect();
  return level;
}

KernelLevel ActiveKernelLevel() { return static_cast<KernelLevel>(ActiveLevelStore().load()); }

void SetCpuKernelLevel(KernelLevel level) {
  const int l = std::min(static_cast<int>(level), static_cast<int>(DetectedKernelLevel()));
  ActiveLevelStore().store(std::max(l, 0));
}

const char* KernelLevelName(KernelLevel level) {
  switch (level) {
    case KernelLevel::kAvx512:
      return "avx512";
    case KernelLevel::kAvx2:
      return "avx2";
    case KernelLevel::kPortable:
      break;
  }
  return "portable";
}

namespace {
std::atomic<const KernelTable*>& TestTable() {
  static std::atomic<const KernelTable*> table{nullptr};
  return table;
}
}  // namespace

void internal::SetKernelTableForTesting(const KernelTable* k) {
  TestTable().store(k, std::memory_order_release);
}

void MatMul(const WeightView& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool) {
  const KernelTable* test_table = TestTable().load(std::memory_order_acquire);
  internal::MatMulWith(test_table != nullptr ? *test_table : Table(ActiveKernelLevel()), w, x,
                       n_tokens, y, pool);
}

void internal::MatMulWith(const KernelTable& k, const WeightView& w, const float* x,
                          int64_t n_tokens, float* y, ThreadPool* pool) {
  if (n_tokens <= 0 || w.rows <= 0) return;
  const int slot = Slot(w.type);
  const bool parallel = pool != nullptr && pool->n_threads() > 1 &&
                        w.rows * w.cols * n_tokens >= kMinParallelWork && w.rows >= 2 * kRowUnit;

  internal::GemmArgs a;
  a.w = w.data;
  a.w_row_bytes = static_cast<size_t>(gguf::RowBytes(w.type, w.cols).value_or(0));
  a.cols = w.cols;
  a.n_tokens = n_tokens;
  a.y = y;
  a.ldy = w.rows;

  internal::QuantizeFn quantize = nullptr;
  if (slot == internal::kSlotQ8_0) {
    quantize = k.quantize_q8a;
    a.x_row_bytes = internal::Q8ARowBytes(w.cols / 32);
  } else if (slot == internal::kSlotQ4_0) {
    quantize = k.quantize_q8a4;
    a.x_row_bytes = internal::Q8A4RowBytes(w.cols / 32);
  } else if (slot == internal::kSlotQ4_K || slot == internal::kSlotQ6_K) {
    quantize = k.quantize_q8k;
    a.x_row_bytes = static_cast<size_t>(w.cols / 256) * sizeof(internal::BlockQ8K);
  }
  if (quantize == nullptr) {
    a.x = reinterpret_cast<const uint8_t*>(x);
    a.x_row_bytes = static_cast<size_t>(w.cols) * sizeof(float);
  } else {
    std::vector<uint8_t>& scratch = ActivationScratch();
    scratch.resize(a.x_row_bytes * static_cast<size_t>(n_tokens));
    uint8_t* xq = scratch.data();
    const size_t xrb = a.x_row_bytes;
    auto quantize_rows = [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) quantize(x + t * w.cols, w.cols, xq + t * xrb);
    };
    if (parallel && n_tokens >= 2 * pool->n_threads()) {
      pool->ParallelFor(n_tokens, quantize_rows);
    } else {
      quantize_rows(0, n_tokens);
    }
    a.x = xq;
  }

  const internal::GemmFn gemm = k.gemm[slot];
  if (!parallel) {
    gemm(a, 0, w.rows);
    return;
  }
  // Rows go out in chunks claimed by whichever thread is free (about kChunksPerThread per
  // thread), so a thread descheduled on a busy host delays one chunk, not half the matrix.
  const int64_t units = (w.rows + kRowUnit - 1) / kRowUnit;
  const int64_t grain =
      std::max<int64_t>(1, units / (int64_t{pool->n_threads()} * kChunksPerThread));
  pool->ParallelForDynamic(units, grain, [&](int64_t u0, int64_t u1) {
    gemm(a, u0 * kRowUnit, std::min(u1 * kRowUnit, w.rows));
  });
}

void DequantizeRow(const WeightView& w, int64_t r, float* out) {
  using namespace internal;
  const size_t row_bytes = static_cast<size_t>(gguf::RowBytes(w.type, w.cols).value_or(0));
  const uint8_t* row = w.data + static_cast<size_t>(r) * row_bytes;
  switch (w.type) {
    case gguf::TensorType::kF32:
      std::memcpy(out, row, static_cast<size_t>(w.cols) * 4);
      return;
    case gguf::TensorType::kF16:
      for (int64_t i = 0; i < w.cols; ++i) out[i] = HalfToFloat(LoadU16(row + 2 * i));
      return;
    case gguf::TensorType::kBF16:
      for (int64_t i = 0; i < w.cols; ++i) out[i] = Bf16ToFloat(LoadU16(row + 2 * i));
      return;
    case gguf::TensorType::kQ8_0: {
      const auto* b = reinterpret_cast<const gguf::BlockQ8_0*>(row);
      for (int64_t j = 0; j < w.cols / 32; ++j) {
        const float d = HalfToFloat(LoadU16(&b[j].d));
        for (int i = 0; i < 32; ++i) out[j * 32 + i] = d * static_cast<float>(b[j].qs[i]);
      }
      return;
    }
    case gguf::TensorType::kQ4_0: {
      const auto* b = reinterpret_cast<const gguf::BlockQ4_0*>(row);
      for (int64_t j = 0; j < w.cols / 32; ++j) {
        const float d = HalfToFloat(LoadU16(&b[j].d));
        for (int i = 0; i < 16; ++i) {
          out[j * 32 + i] = d * static_cast<float>((b[j].qs[i] & 0xF) - 8);
          out[j * 32 + i + 16] = d * static_cast<float>((b[j].qs[i] >> 4) - 8);
        }
      }
      return;
    }
    case gguf::TensorType::kQ4_K: {
      const auto* b = reinterpret_cast<const gguf::BlockQ4_K*>(row);
      for (int64_t s = 0; s < w.cols / 256; ++s) {
        const float d = HalfToFloat(LoadU16(&b[s].d));
        const float dmin = HalfToFloat(LoadU16(&b[s].dmin));
        for (int j = 0; j < 8; ++j) {
          uint8_t sc, m;
          Q4KScaleMin(b[s].scales, j, &sc, &m);
          const uint8_t* q = b[s].qs + (j / 2) * 32;
          const int shift = (j % 2) * 4;
          for (int i = 0; i < 32; ++i)
            out[s * 256 + j * 32 + i] =
                d * sc * static_cast<float>((q[i] >> shift) & 0xF) - dmin * m;
        }
      }
      return;
    }
    case gguf::TensorType::kQ6_K: {
      const auto* b = reinterpret_cast<const gguf::BlockQ6_K*>(row);
      for (int64_t s = 0; s < w.cols / 256; ++s) {
        const float d = HalfToFloat(LoadU16(&b[s].d));
        for (int i = 0; i < 256; ++i)
          out[s * 256 + i] = d * static_cast<float>(b[s].scales[i / 16]) *
                             static_cast<float>(Q6KValue(b[s], i) - 32);
      }
      return;
    }
  }
}

}  // namespace sextant::cpu
