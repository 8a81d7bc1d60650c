// Internal to the CPU backend: the per-level kernel tables behind MatMul (matmul.cpp picks one at
// run time), the activation block formats, and small helpers shared by the kernel files.
// Thread-safety: tables are immutable; kernels are pure functions of their arguments.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "engine/backends/cpu/matmul.h"
#include "engine/gguf/types.h"

namespace sextant::cpu::internal {

// Activations quantized for the integer dot products. Each token row is quantized on its own
// (the result of a row never depends on other rows of the batch).
// Q8A: blocks of 32 values, symmetric, scale d = max|x| / 127 (paired with Q4_0 and Q8_0
// weights). A row of nb blocks is stored as arrays: float d[nb], int32 sum[nb] (sum of the block's
// quants, for Q4_0's offset of 8), int8 qs[nb * 32], so kernels load 8 blocks' scales at once.
struct Q8ARow {
  float* d;
  int32_t* sum;
  int8_t* qs;
};
inline size_t Q8ARowBytes(int64_t nb) { return static_cast<size_t>(nb) * 40; }
inline Q8ARow Q8ARowAt(const void* row, int64_t nb) {
  auto* p = static_cast<uint8_t*>(const_cast<void*>(row));
  return {reinterpret_cast<float*>(p), reinterpret_cast<int32_t*>(p + 4 * nb),
          reinterpret_cast<int8_t*>(p + 8 * nb)};
}
// Q8A4: the same quantized values as Q8A, laid out for Q4_0 weights, whose blocks store elements
// 0..15 in low nibbles and 16..31 in high nibbles. A row is split into groups of 8 blocks (the
// last padded with zero blocks); a group is 320 bytes:
//   float d[8], int32 sum[8]  in block order 0 2 4 6 1 3 5 7
//   int8 qs[256]: for each block pair (2p, 2p+1): x_2p[0..15] x_2p+1[0..15] x_2p[16..31]
//   x_2p+1[16..31]
// so two Q4_0 blocks loaded side by side in one 256-bit register meet their activations with one
// mask (low nibbles) and one shift (high nibbles).
inline constexpr size_t kQ8A4GroupBytes = 320;
inline size_t Q8A4RowBytes(int64_t nb) {
  return static_cast<size_t>((nb + 7) / 8) * kQ8A4GroupBytes;
}
inline int Q8A4ScalePos(int k) { return (k & 1) * 4 + (k >> 1); }  // k = block in group
inline int Q8A4QsPos(int k, int i) {                               // i = element 0..31
  return 64 + (k >> 1) * 64 + (i >= 16 ? 32 : 0) + (k & 1) * 16 + (i & 15);
}

// Q8K: 256 values with sums of each 16 (paired with Q4_K and Q6_K weights).
struct BlockQ8K {
  float d;
  int8_t qs[256];
  int16_t bsums[16];
};
static_assert(sizeof(BlockQ8K) == 292);

// What one kernel call computes: y[t * ldy + r] = W[r] . x[t] for r in [r0, r1), t < n_tokens.
// x is f32 (x_row_bytes = cols * 4) for F32/F16/BF16 weights, else quantized activation rows.
struct GemmArgs {
  const uint8_t* w = nullptr;
  size_t w_row_bytes = 0;
  int64_t cols = 0;
  const uint8_t* x = nullptr;
  size_t x_row_bytes = 0;
  int64_t n_tokens = 0;
  float* y = nullptr;
  int64_t ldy = 0;
};

using GemmFn = void (*)(const GemmArgs& a, int64_t r0, int64_t r1);
using QuantizeFn = void (*)(const float* x, int64_t cols, void* out);

// One kernel level: gemm per weight type (indexed by TypeSlot) and activation quantizers.
enum TypeSlot { kSlotF32, kSlotF16, kSlotBF16, kSlotQ8_0, kSlotQ4_0, kSlotQ4_K, kSlotQ6_K, kSlots };
struct KernelTable {
  GemmFn gemm[kSlots] = {};
  QuantizeFn quantize_q8a = nullptr;
  QuantizeFn quantize_q8a4 = nullptr;
  QuantizeFn quantize_q8k = nullptr;
};

const KernelTable& PortableKernels();
const KernelTable& Avx2Kernels();    // REQUIRES: the CPU has AVX2, FMA and F16C
const KernelTable& Avx512Kernels();  // REQUIRES: the CPU has AVX-512 F/BW/VL/DQ/VNNI/BF16
// The AVX-512 kernels on emulated AVX-512 (engine/backends/x86emu), for the tests; defined only
// in sextant_engine_avx512emu, which only engine_tests links. REQUIRES: AVX2, FMA and F16C.
const KernelTable& Avx512EmulatedKernels();

// MatMul (matmul.h) with the kernels of `k` instead of the active level's: the activations
// quantized for the weight type, the rows split over `pool`. For the tests of one table.
void MatMulWith(const KernelTable& k, const WeightView& w, const float* x, int64_t n_tokens,
                float* y, ThreadPool* pool);

// Tests: MatMul uses `k` instead of the active level's table until called again with nullptr.
// REQUIRES: no MatMul is running when it changes.
void SetKernelTableForTesting(const KernelTable* k);

// Scalar half-precision conversions (exact; F16 -> F32 handles subnormals, inf and NaN).
inline float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalize
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (mant & 0x3ffu) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | mant << 13;
  } else {
    bits = sign | (exp + 112) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline float Bf16ToFloat(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline uint16_t LoadU16(const void* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// Q4_K's packed 6-bit scale and min of sub-block j (0..7).
inline void Q4KScaleMin(const uint8_t* q, int j, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

}  // namespace sextant::cpu::internal
