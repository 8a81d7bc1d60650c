// The GPU engine backend: kernels for every BackendContext op and the Backend / BackendContext
// classes of engine/backends/gpu_backend.h. One source for CUDA and HIP: it is compiled once per
// vendor with that vendor's gpu_vendor.h, which maps the neutral gpu* names (launches are
// gpuLaunch(kernel, grid, block, shmem, stream, args...)) and puts everything in namespace
// sextant::cuda or sextant::hip. The tests also compile it as C++ for the GPU simulator
// (engine/backends/gpusim/), which runs these kernels on the CPU where no GPU is present.
//
// Layouts follow the CPU backend (engine/backends/cpu/cpu_backend.cpp, the reference):
//   activation buffer: rows x cols f32, row-major, zero-initialized;
//   weight: the GGUF tensor's bytes as stored (row r at r * row_bytes), never dequantized;
//   KV cache, per layer: K [slots][context][kv_dim] f32, then V likewise.
//
// Each op has three layers: the __global__ kernel, the launch in the context's method (grid and
// block sizes; recorded, then issued on the context's stream at the next ReadRows() or
// SetBatch(), as a replayed graph for decode steps), and the checks of types and shapes before it.
// A failed check or launch marks the context failed; ReadRows() reports it.
//
// Kernels read weights in chunks of 8 consecutive elements (Dequant8): a Q8_0 / Q4_0 block is 4
// chunks, a K-quant super-block 32. Products are one template per weight type and kernel (matrix-
// vector for up to kMmvMaxTokens tokens, tiled matrix-matrix above), 14 instantiations in all.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "engine/backends/gpu_backend.h"
#include "gpu_vendor.h"

namespace sextant {
namespace SEXTANT_GPU_NS {
namespace {

using gguf::TensorType;

// ---- errors ------------------------------------------------------------------------------------

Status GpuStatus(gpuError_t err, const std::string& what) {
  const std::string msg =
      std::string(SEXTANT_GPU_VENDOR) + " backend: " + what + ": " + gpuGetErrorString(err);
  if (err == gpuErrorMemoryAllocation) return Status::ResourceExhausted(msg);
  return Status::Unavailable(msg);
}

// Returns the error of a runtime call as a Status from the enclosing function.
#define SEXTANT_GPU_CHECK(expr, what)             \
  do {                                            \
    const gpuError_t sextant_gpu_err_ = (expr);   \
    if (sextant_gpu_err_ != gpuSuccess) {         \
      return GpuStatus(sextant_gpu_err_, (what)); \
    }                                             \
  } while (0)

// ---- device helpers ----------------------------------------------------------------------------

__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int m = kGpuWarp / 2; m > 0; m >>= 1) v += gpuShflXor(v, m);
  return v;
}

__device__ __forceinline__ float WarpMax(float v) {
#pragma unroll
  for (int m = kGpuWarp / 2; m > 0; m >>= 1) v = fmaxf(v, gpuShflXor(v, m));
  return v;
}

// Sum over the block. REQUIRES: blockDim.x a multiple of kGpuWarp, at most 1024; every thread
// calls it, once per kernel.
__device__ float BlockSum(float v) {
  __shared__ float part[1024 / kGpuWarp];
  const int lane = static_cast<int>(threadIdx.x) % kGpuWarp;
  const int warp = static_cast<int>(threadIdx.x) / kGpuWarp;
  v = WarpSum(v);
  if (lane == 0) part[warp] = v;
  __syncthreads();
  const int warps = static_cast<int>(blockDim.x) / kGpuWarp;
  float total = 0.0f;
  for (int i = 0; i < warps; ++i) total += part[i];
  return total;
}

// REQUIRES: p is 2-byte aligned.
__device__ __forceinline__ unsigned LoadU16(const uint8_t* p) {
  return *reinterpret_cast<const uint16_t*>(p);
}

__device__ __forceinline__ float Bf16BitsToFloat(unsigned h) { return __uint_as_float(h << 16); }

// Eight floats at f[8c..8c+8); entries at or past n read as 0. REQUIRES: f 32-byte aligned when
// n % 8 == 0 (rows of such buffers and weights are).
__device__ __forceinline__ void LoadF32x8(const float* f, int64_t c, int64_t n, float v[8]) {
  const int64_t e = c * 8;
  if ((n & 7) == 0) {
    const float4 a = *reinterpret_cast<const float4*>(f + e);
    const float4 b = *reinterpret_cast<const float4*>(f + e + 4);
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
    v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] = e + i < n ? f[e + i] : 0.0f;
  }
}

// 16-bit float types (F16, BF16): eight elements at h[8c..), as LoadF32x8.
template <bool kBf16>
__device__ __forceinline__ void Load16x8(const uint8_t* row, int64_t c, int64_t n, float v[8]) {
  const int64_t e = c * 8;
  const auto* h = reinterpret_cast<const uint16_t*>(row);
  if ((n & 7) == 0) {
    const uint4 q = *reinterpret_cast<const uint4*>(h + e);
    const unsigned words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const unsigned lo = words[i] & 0xFFFFu;
      const unsigned hi = words[i] >> 16;
      v[2 * i] = kBf16 ? Bf16BitsToFloat(lo) : gpuHalfBitsToFloat(static_cast<unsigned short>(lo));
      v[2 * i + 1] =
          kBf16 ? Bf16BitsToFloat(hi) : gpuHalfBitsToFloat(static_cast<unsigned short>(hi));
    }
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const unsigned b = e + i < n ? h[e + i] : 0u;
      v[i] = kBf16 ? Bf16BitsToFloat(b) : gpuHalfBitsToFloat(static_cast<unsigned short>(b));
    }
  }
}

// Q4_K's packed 6-bit scale and min of sub-block j (0..7), as the CPU's Q4KScaleMin.
__device__ __forceinline__ void Q4KScaleMin(const uint8_t* q, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Elements [8c, 8c+8) of a weight row of `cols` elements, dequantized exactly as the CPU's
// DequantizeRow does (same products in the same order). Block layouts: engine/gguf/types.h.
// REQUIRES: 8c < cols; the row starts at a multiple of 16 bytes for F32/F16/BF16 with
// cols % 8 == 0 and for Q4_K, at an even address for the other types.
template <TensorType T>
__device__ __forceinline__ void Dequant8(const uint8_t* row, int64_t c, int64_t cols, float v[8]) {
  if constexpr (T == TensorType::kF32) {
    LoadF32x8(reinterpret_cast<const float*>(row), c, cols, v);
  } else if constexpr (T == TensorType::kF16) {
    Load16x8<false>(row, c, cols, v);
  } else if constexpr (T == TensorType::kBF16) {
    Load16x8<true>(row, c, cols, v);
  } else if constexpr (T == TensorType::kQ8_0) {
    // Block: f16 d, int8 qs[32] (34 bytes). Chunk k of a block is qs[8k..8k+8).
    const uint8_t* blk = row + (c >> 2) * 34;
    const float d = gpuHalfBitsToFloat(static_cast<unsigned short>(LoadU16(blk)));
    const uint8_t* q = blk + 2 + (c & 3) * 8;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const unsigned w = LoadU16(q + 2 * i);
      v[2 * i] = d * static_cast<float>(static_cast<int8_t>(w & 0xFFu));
      v[2 * i + 1] = d * static_cast<float>(static_cast<int8_t>(w >> 8));
    }
  } else if constexpr (T == TensorType::kQ4_0) {
    // Block: f16 d, qs[16] (18 bytes); low nibbles are elements 0..15, high 16..31. Chunk k:
    // bytes (k & 1) * 8 .. +8, low nibbles for k < 2, high for k >= 2.
    const int k = static_cast<int>(c & 3);
    const uint8_t* blk = row + (c >> 2) * 18;
    const float d = gpuHalfBitsToFloat(static_cast<unsigned short>(LoadU16(blk)));
    const uint8_t* q = blk + 2 + (k & 1) * 8;
    const int shift = (k >> 1) * 4;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const unsigned w = LoadU16(q + 2 * i);
      v[2 * i] = d * static_cast<float>(static_cast<int>(((w & 0xFFu) >> shift) & 0xFu) - 8);
      v[2 * i + 1] = d * static_cast<float>(static_cast<int>(((w >> 8) >> shift) & 0xFu) - 8);
    }
  } else if constexpr (T == TensorType::kQ4_K) {
    // Super-block (144 bytes): f16 d, f16 dmin, scales[12], qs[128]. Sub-block j (32 elements)
    // uses qs[(j/2)*32 ..] nibbles (low for even j, high for odd j).
    const int within = static_cast<int>(c & 31);
    const int j = within >> 2;
    const int i0 = (within & 3) * 8;
    const uint8_t* blk = row + (c >> 5) * 144;
    const float d = gpuHalfBitsToFloat(static_cast<unsigned short>(LoadU16(blk)));
    const float dmin = gpuHalfBitsToFloat(static_cast<unsigned short>(LoadU16(blk + 2)));
    int sc, m;
    Q4KScaleMin(blk + 4, j, &sc, &m);
    const uint2 q = *reinterpret_cast<const uint2*>(blk + 16 + (j >> 1) * 32 + i0);
    const int shift = (j & 1) * 4;
    const float dsc = d * static_cast<float>(sc);
    const float mm = dmin * static_cast<float>(m);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const unsigned byte = ((i < 4 ? q.x : q.y) >> (8 * (i & 3))) & 0xFFu;
      v[i] = dsc * static_cast<float>((byte >> shift) & 0xFu) - mm;
    }
  } else {
    static_assert(T == TensorType::kQ6_K, "unsupported weight type");
    // Super-block (210 bytes): ql[128], qh[64], int8 scales[16], f16 d. Element i: half = i/128,
    // l = i%128, group = l/32, pos = l%32; low 4 bits from ql[half*64 + (group&1)*32 + pos]
    // (low nibble for group < 2), high 2 bits from qh[half*32 + pos] >> 2*group.
    const int i0 = static_cast<int>(c & 31) * 8;
    const int half = i0 >> 7;
    const int l = i0 & 127;
    const int group = l >> 5;
    const int pos = l & 31;
    const uint8_t* blk = row + (c >> 5) * 210;
    const float d = gpuHalfBitsToFloat(static_cast<unsigned short>(LoadU16(blk + 208)));
    const float scale = static_cast<float>(static_cast<int8_t>(blk[192 + (i0 >> 4)]));
    const uint8_t* ql = blk + half * 64 + (group & 1) * 32 + pos;
    const uint8_t* qh = blk + 128 + half * 32 + pos;
    const int lshift = group < 2 ? 0 : 4;
    const int hshift = 2 * group;
    const float ds = d * scale;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const unsigned lw = LoadU16(ql + 2 * i);
      const unsigned hw = LoadU16(qh + 2 * i);
      const int q0 = static_cast<int>((((lw & 0xFFu) >> lshift) & 0xFu) |
                                      ((((hw & 0xFFu) >> hshift) & 3u) << 4));
      const int q1 =
          static_cast<int>((((lw >> 8) >> lshift) & 0xFu) | ((((hw >> 8) >> hshift) & 3u) << 4));
      v[2 * i] = ds * static_cast<float>(q0 - 32);
      v[2 * i + 1] = ds * static_cast<float>(q1 - 32);
    }
  }
}

// ---- kernels -----------------------------------------------------------------------------------

// out[r][0..cols) = row tokens[r] of the table, dequantized. Grid: one block per batch row.
template <TensorType T>
__global__ void GetRowsKernel(const uint8_t* table, int64_t row_bytes, int64_t cols,
                              const int32_t* tokens, float* out, int64_t out_stride) {
  const int64_t r = blockIdx.x;
  const uint8_t* src = table + static_cast<int64_t>(tokens[r]) * row_bytes;
  float* dst = out + r * out_stride;
  const int64_t chunks = (cols + 7) / 8;
  for (int64_t c = threadIdx.x; c < chunks; c += blockDim.x) {
    float v[8];
    Dequant8<T>(src, c, cols, v);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      if (c * 8 + i < cols) dst[c * 8 + i] = v[i];
    }
  }
}

// Matrix-vector products for up to kMmvMaxTokens tokens: one logical warp per weight row, each
// lane a strided share of the row's chunks, the weights read once for all tokens.
// y[t * rows + r] = W[r] . x[t * cols ..]. Grid: ceil(rows / kMmvWarps) blocks of kMmvWarps warps.
constexpr int kMmvMaxTokens = 8;
// Passes of at most this many tokens are issued as graphs (GpuContext::Flush).
constexpr int kGraphMaxTokens = kMmvMaxTokens;
constexpr int kMmvWarps = 4;

template <TensorType T>
__global__ void __launch_bounds__(kMmvWarps* kGpuWarp)
    MatVecKernel(const uint8_t* w, int64_t row_bytes, int64_t rows, int64_t cols, const float* x,
                 int n_tok, float* y) {
  const int lane = static_cast<int>(threadIdx.x) % kGpuWarp;
  const int64_t r =
      static_cast<int64_t>(blockIdx.x) * kMmvWarps + static_cast<int>(threadIdx.x) / kGpuWarp;
  if (r >= rows) return;  // the whole logical warp leaves together
  const uint8_t* wr = w + r * row_bytes;
  const int64_t chunks = (cols + 7) / 8;
  float acc[kMmvMaxTokens];
#pragma unroll
  for (int t = 0; t < kMmvMaxTokens; ++t) acc[t] = 0.0f;
  for (int64_t c = lane; c < chunks; c += kGpuWarp) {
    float wv[8];
    Dequant8<T>(wr, c, cols, wv);
#pragma unroll
    for (int t = 0; t < kMmvMaxTokens; ++t) {
      if (t < n_tok) {
        float xv[8];
        LoadF32x8(x + t * cols, c, cols, xv);
        float s = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; ++i) s = fmaf(wv[i], xv[i], s);
        acc[t] += s;
      }
    }
  }
#pragma unroll
  for (int t = 0; t < kMmvMaxTokens; ++t) {
    if (t < n_tok) {
      const float s = WarpSum(acc[t]);
      if (lane == 0) y[t * rows + r] = s;
    }
  }
}

// Tiled matrix-matrix product: a block computes kTileM weight rows x kTileN tokens, stepping
// through the columns kTileK at a time; each step dequantizes a kTileM x kTileK weight tile and
// loads a kTileN x kTileK activation tile into shared memory (one 8-element chunk per thread
// each), then every thread accumulates a 4 x 4 sub-tile. Grid: (ceil(rows / kTileM),
// ceil(n_tok / kTileN)); block: kGemmThreads.
constexpr int kTileM = 64;
constexpr int kTileN = 64;
constexpr int kTileK = 32;
constexpr int kGemmThreads = 256;
static_assert(kTileM * (kTileK / 8) == kGemmThreads, "one weight chunk per thread");
static_assert(kTileN * (kTileK / 8) == kGemmThreads, "one activation chunk per thread");
static_assert(kGemmThreads * 16 == kTileM * kTileN, "4 x 4 outputs per thread");

template <TensorType T>
__global__ void __launch_bounds__(kGemmThreads)
    MatMulKernel(const uint8_t* w, int64_t row_bytes, int64_t rows, int64_t cols, const float* x,
                 int64_t n_tok, float* y) {
  __shared__ float ws[kTileK][kTileM + 4];
  __shared__ float xs[kTileK][kTileN + 4];
  const int tid = static_cast<int>(threadIdx.x);
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * kTileM;
  const int64_t t0 = static_cast<int64_t>(blockIdx.y) * kTileN;
  const int lr = tid >> 2;  // tile row (weights) / tile token (activations) this thread loads
  const int lc = tid & 3;   // which chunk of 8 of the kTileK columns
  const int tr = tid % 16;  // outputs: rows r0 + tr + 16 i, tokens t0 + tt + 16 j
  const int tt = tid / 16;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  }
  const int64_t wrow = r0 + lr;
  const int64_t xtok = t0 + lr;
  for (int64_t k0 = 0; k0 < cols; k0 += kTileK) {
    const int64_t c = k0 / 8 + lc;
    const bool in_cols = c * 8 < cols;
    float v[8];
    if (wrow < rows && in_cols) {
      Dequant8<T>(w + wrow * row_bytes, c, cols, v);
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) v[i] = 0.0f;
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) ws[lc * 8 + i][lr] = v[i];
    if (xtok < n_tok && in_cols) {
      LoadF32x8(x + xtok * cols, c, cols, v);
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) v[i] = 0.0f;
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) xs[lc * 8 + i][lr] = v[i];
    __syncthreads();
#pragma unroll 8
    for (int kk = 0; kk < kTileK; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = ws[kk][tr + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = xs[kk][tt + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t r = r0 + tr + 16 * i;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t t = t0 + tt + 16 * j;
      if (r < rows && t < n_tok) y[t * rows + r] = acc[i][j];
    }
  }
}

// out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * gamma. One block per row; out may alias x (each
// element is read and written by the same thread, after the block's sum).
constexpr int kRowThreads = 256;

__global__ void __launch_bounds__(kRowThreads)
    RmsNormKernel(const float* x, int64_t x_stride, const float* gamma, int64_t cols, float eps,
                  float* out, int64_t out_stride) {
  const float* xr = x + static_cast<int64_t>(blockIdx.x) * x_stride;
  float* o = out + static_cast<int64_t>(blockIdx.x) * out_stride;
  float s = 0.0f;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) s = fmaf(xr[i], xr[i], s);
  s = BlockSum(s);
  const float scale = 1.0f / sqrtf(s / static_cast<float>(cols) + eps);
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) o[i] = xr[i] * scale * gamma[i];
}

// RoPE on `heads` heads of each batch row: pairs (2i, 2i+1) (llama's normal mode) or (i, i+half)
// (NeoX mode), 2i < rope_dims, rotated by pos * freq_scale * theta_scale^i / factors[i] (factors
// null: 1). One block per row.
__global__ void __launch_bounds__(kRowThreads)
    RopeKernel(float* x, int64_t stride, const int32_t* positions, int heads, int head_dim,
               int half, float theta_scale, int neox, float freq_scale, const float* factors) {
  const float pos = static_cast<float>(positions[blockIdx.x]) * freq_scale;
  float* row = x + static_cast<int64_t>(blockIdx.x) * stride;
  for (int t = static_cast<int>(threadIdx.x); t < heads * half; t += static_cast<int>(blockDim.x)) {
    const int h = t / half;
    const int i = t % half;
    float theta = pos * powf(theta_scale, static_cast<float>(i));
    if (factors != nullptr) theta /= factors[i];
    float s, c;
    sincosf(theta, &s, &c);
    float* p = row + h * head_dim + (neox ? i : 2 * i);
    const int second = neox ? half : 1;
    const float x0 = p[0];
    const float x1 = p[second];
    p[0] = x0 * c - x1 * s;
    p[second] = x0 * s + x1 * c;
  }
}

// Writes each batch row's k and v (kv_dim floats) to the cache at (slot, position).
__global__ void __launch_bounds__(kRowThreads)
    KvWriteKernel(const float* k, int64_t k_stride, const float* v, int64_t v_stride,
                  const int32_t* positions, const int32_t* slots, float* k_cache, float* v_cache,
                  int64_t slot_stride, int64_t kv_dim) {
  const int64_t r = blockIdx.x;
  const int64_t off = slots[r] * slot_stride + static_cast<int64_t>(positions[r]) * kv_dim;
  for (int64_t i = threadIdx.x; i < kv_dim; i += blockDim.x) {
    k_cache[off + i] = k[r * k_stride + i];
    v_cache[off + i] = v[r * v_stride + i];
  }
}

// Attention over the KV cache, flash style (online softmax, K/V tiles in shared memory).
//
// A block takes a tile of `rows_per_tile` consecutive batch rows (all of one slot: the host
// guarantees it), one query head, and one split of the positions: [split * chunk, (split + 1) *
// chunk) cut at the tile's longest causal prefix. Each logical warp owns kAttnRowsPerWarp rows of
// the tile; per K/V tile of kKvTile positions, lane j scores position p0 + j for each of its
// rows, and lane l accumulates output dims l, l + 32, ... Decode (one row per tile) splits the
// positions over many blocks ("flash-decoding") and AttentionCombineKernel merges the splits;
// prefill (one slot, many rows) tiles the rows so each K/V tile serves kAttnWarps *
// kAttnRowsPerWarp queries, one split.
//
// Shared memory (dynamic): K and V tiles [tile][head_dim + 1] (padded: lane j reads row j
// without bank conflicts), queries [warps * kAttnRowsPerWarp][head_dim].
//
// Two instances: heads up to 128 wide (4 output dims per lane, K/V tiles of kKvTile = 32
// positions, up to kAttnWarps warps) and up to 256 wide (Gemma: 8 dims per lane, tiles of 16
// positions and at most kAttnWarpsWide warps, so the shared memory stays within 48 KiB, the
// default a launch gets on CUDA, and AMD's 64 KiB LDS).
constexpr int kKvTile = 32;
constexpr int kKvTileWide = 16;
constexpr int kAttnWarps = 4;
constexpr int kAttnWarpsWide = 2;
constexpr int kAttnRowsPerWarp = 4;
constexpr int kAttnNarrowHeadDim = 128;
constexpr int kAttnMaxHeadDim = 256;
constexpr int kAttnMaxSplits = 32;
static_assert(kKvTile == kGpuWarp, "one position per lane");
static_assert(kKvTile % kKvTileWide == 0, "split chunks are whole tiles of both sizes");
static_assert(kAttnMaxHeadDim == 256, "the head_dim error messages name 256");

struct AttentionArgs {
  const float* q = nullptr;
  int64_t q_stride = 0;
  const float* k_cache = nullptr;  // the layer's K: [slots][context][kv_dim]
  const float* v_cache = nullptr;
  int64_t slot_stride = 0;  // context * kv_dim
  int64_t kv_dim = 0;
  const int32_t* positions = nullptr;
  const int32_t* slots = nullptr;
  float* out = nullptr;
  int64_t out_stride = 0;
  float* partial = nullptr;  // splits > 1: [row][head][split] records of head_dim + 2 floats
  int n_rows = 0;
  int heads = 0;
  int group = 1;  // query heads per kv head
  int head_dim = 0;
  float scale = 1.0f;
  int rows_per_tile = 1;  // <= kAttnRowsPerWarp * blockDim.x / kGpuWarp
  int splits = 1;
  int chunk = 0;      // positions per split, a multiple of kKvTile
  int window = 0;     // sliding window (AttentionShape::window); 0 = none
  float softcap = 0;  // score soft-capping (AttentionShape::softcap); 0 = none
};

// Its bytes key a graph (GpuContext::Flush): no padding, every byte is a field.
static_assert(sizeof(AttentionArgs) == 11 * 8 + 10 * 4, "AttentionArgs has padding");

size_t AttentionSharedBytes(int head_dim, int warps) {
  const size_t tile = head_dim > kAttnNarrowHeadDim ? kKvTileWide : kKvTile;
  return sizeof(float) *
         (2 * tile * (head_dim + 1) + static_cast<size_t>(warps) * kAttnRowsPerWarp * head_dim);
}

// kDims: output dims per lane (head_dim <= kDims * 32); kTile: positions per K/V tile (<= 32).
template <int kDims, int kTile>
__global__ void __launch_bounds__(kAttnWarps* kGpuWarp) AttentionKernel(AttentionArgs a) {
  gpuDynamicShared(float, smem);
  const int hd = a.head_dim;
  const int hp = hd + 1;
  float* ks = smem;             // [kTile][hp]
  float* vs = ks + kTile * hp;  // [kTile][hp]
  float* qs = vs + kTile * hp;  // [warps * kAttnRowsPerWarp][hd]
  const int lane = static_cast<int>(threadIdx.x) % kGpuWarp;
  const int warp = static_cast<int>(threadIdx.x) / kGpuWarp;
  const int warps = static_cast<int>(blockDim.x) / kGpuWarp;
  const int h = static_cast<int>(blockIdx.y);
  const int split = static_cast<int>(blockIdx.z);
  const int kvh = h / a.group;
  const int r_begin = static_cast<int>(blockIdx.x) * a.rows_per_tile;
  const int n_tile = min(a.rows_per_tile, a.n_rows - r_begin);
  const int64_t slot = a.slots[r_begin];
  const float* kbase = a.k_cache + slot * a.slot_stride + static_cast<int64_t>(kvh) * hd;
  const float* vbase = a.v_cache + slot * a.slot_stride + static_cast<int64_t>(kvh) * hd;

  int max_len = 0;
  for (int i = 0; i < n_tile; ++i) max_len = max(max_len, a.positions[r_begin + i] + 1);
  const int p_begin = split * a.chunk;
  const int p_end = min(max_len, p_begin + a.chunk);

  for (int i = static_cast<int>(threadIdx.x); i < warps * kAttnRowsPerWarp * hd;
       i += static_cast<int>(blockDim.x)) {
    const int rr = i / hd;
    const int d = i % hd;
    qs[i] = rr < n_tile ? a.q[static_cast<int64_t>(r_begin + rr) * a.q_stride +
                              static_cast<int64_t>(h) * hd + d]
                        : 0.0f;
  }

  float m[kAttnRowsPerWarp], l[kAttnRowsPerWarp], acc[kAttnRowsPerWarp][kDims];
  int len[kAttnRowsPerWarp], lo[kAttnRowsPerWarp];
#pragma unroll
  for (int i = 0; i < kAttnRowsPerWarp; ++i) {
    const int rr = warp * kAttnRowsPerWarp + i;
    len[i] = rr < n_tile ? a.positions[r_begin + rr] + 1 : 0;
    lo[i] = a.window > 0 ? max(0, len[i] - a.window) : 0;  // first position in the window
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int u = 0; u < kDims; ++u) acc[i][u] = 0.0f;
  }
  __syncthreads();

  for (int p0 = p_begin; p0 < p_end; p0 += kTile) {
    const int n_pos = min(kTile, p_end - p0);
    for (int i = static_cast<int>(threadIdx.x); i < kTile * hd; i += static_cast<int>(blockDim.x)) {
      const int j = i / hd;
      const int d = i % hd;
      float kv = 0.0f, vv = 0.0f;
      if (j < n_pos) {
        const int64_t off = static_cast<int64_t>(p0 + j) * a.kv_dim + d;
        kv = kbase[off];
        vv = vbase[off];
      }
      ks[j * hp + d] = kv;
      vs[j * hp + d] = vv;
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < kAttnRowsPerWarp; ++i) {
      const float* q = qs + (warp * kAttnRowsPerWarp + i) * hd;
      const int p = p0 + lane;
      float s = -INFINITY;
      if (lane < n_pos && p < len[i] && p >= lo[i]) {
        float dot = 0.0f;
        for (int d = 0; d < hd; ++d) dot = fmaf(q[d], ks[lane * hp + d], dot);
        s = dot * a.scale;
        if (a.softcap > 0.0f) s = a.softcap * tanhf(s / a.softcap);
      }
      const float tile_max = WarpMax(s);
      if (tile_max == -INFINITY) continue;  // uniform over the warp: nothing of this row here
      const float m_new = fmaxf(m[i], tile_max);
      const float corr = expf(m[i] - m_new);  // 0 while m[i] is still -inf
      const float e = s == -INFINITY ? 0.0f : expf(s - m_new);
      l[i] = l[i] * corr + WarpSum(e);
#pragma unroll
      for (int u = 0; u < kDims; ++u) acc[i][u] *= corr;
      for (int j = 0; j < n_pos; ++j) {
        const float pj = gpuShfl(e, j);
#pragma unroll
        for (int u = 0; u < kDims; ++u) {
          const int d = lane + u * kGpuWarp;
          if (d < hd) acc[i][u] = fmaf(pj, vs[j * hp + d], acc[i][u]);
        }
      }
      m[i] = m_new;
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < kAttnRowsPerWarp; ++i) {
    const int rr = warp * kAttnRowsPerWarp + i;
    if (rr >= n_tile) continue;
    const int64_t r = r_begin + rr;
    if (a.splits == 1) {
      const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
      float* o = a.out + r * a.out_stride + static_cast<int64_t>(h) * hd;
#pragma unroll
      for (int u = 0; u < kDims; ++u) {
        const int d = lane + u * kGpuWarp;
        if (d < hd) o[d] = acc[i][u] * inv;
      }
    } else {
      float* rec = a.partial + ((r * a.heads + h) * a.splits + split) * (hd + 2);
#pragma unroll
      for (int u = 0; u < kDims; ++u) {
        const int d = lane + u * kGpuWarp;
        if (d < hd) rec[d] = acc[i][u];
      }
      if (lane == 0) {
        rec[hd] = m[i];  // -inf when this split saw none of the row's positions
        rec[hd + 1] = l[i];
      }
    }
  }
}

// Merges the splits of AttentionKernel: out = sum_s acc_s e^(m_s - M) / sum_s l_s e^(m_s - M).
// Grid: (rows, heads); split 0 always holds position 0, so the denominator is positive.
__global__ void __launch_bounds__(kAttnMaxHeadDim)
    AttentionCombineKernel(const float* partial, int heads, int splits, int head_dim, float* out,
                           int64_t out_stride) {
  const int64_t r = blockIdx.x;
  const int h = static_cast<int>(blockIdx.y);
  const int rec_len = head_dim + 2;
  const float* rec = partial + (r * heads + h) * splits * rec_len;
  float mx = -INFINITY;
  for (int s = 0; s < splits; ++s) mx = fmaxf(mx, rec[s * rec_len + head_dim]);
  float denom = 0.0f;
  for (int s = 0; s < splits; ++s) {
    const float ms = rec[s * rec_len + head_dim];
    if (ms != -INFINITY) denom += rec[s * rec_len + head_dim + 1] * expf(ms - mx);
  }
  const float inv = 1.0f / denom;
  float* o = out + r * out_stride + static_cast<int64_t>(h) * head_dim;
  for (int d = static_cast<int>(threadIdx.x); d < head_dim; d += static_cast<int>(blockDim.x)) {
    float sum = 0.0f;
    for (int s = 0; s < splits; ++s) {
      const float ms = rec[s * rec_len + head_dim];
      if (ms != -INFINITY) sum += rec[s * rec_len + d] * expf(ms - mx);
    }
    o[d] = sum * inv;
  }
}

// gate[i] = silu(gate[i]) * up[i] over n elements.
__global__ void SwiGluKernel(float* gate, const float* up, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) {
    const float g = gate[i];
    gate[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

// gate[i] = gelu(gate[i]) * up[i] over n elements (tanh approximation).
__global__ void GeGluKernel(float* gate, const float* up, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) {
    const float x = gate[i];
    gate[i] =
        0.5f * x * (1.0f + tanhf(0.7978845608028654f * x * (1.0f + 0.044715f * x * x))) * up[i];
  }
}

// x[r][c] += bias[c] over rows x cols elements.
__global__ void AddBiasKernel(float* x, const float* bias, int64_t cols, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] += bias[i % cols];
}

// x[i] *= s, or x[i] = cap * tanh(x[i] / cap) when cap > 0, over n elements.
__global__ void ScaleKernel(float* x, float s, float cap, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] = cap > 0.0f ? cap * tanhf(x[i] / cap) : x[i] * s;
}

// RMS norm of each head (head_dim floats) of each batch row, in place, with gain gamma. One block
// of one warp per (row, head): blockIdx.x = row * heads + head.
__global__ void RmsNormHeadsKernel(float* x, int64_t stride, const float* gamma, int heads,
                                   int head_dim, float eps) {
  const int64_t r = blockIdx.x / heads;
  const int h = static_cast<int>(blockIdx.x % heads);
  float* p = x + r * stride + static_cast<int64_t>(h) * head_dim;
  float s = 0.0f;
  for (int i = static_cast<int>(threadIdx.x); i < head_dim; i += kGpuWarp) s = fmaf(p[i], p[i], s);
  s = WarpSum(s);
  const float scale = 1.0f / sqrtf(s / static_cast<float>(head_dim) + eps);
  for (int i = static_cast<int>(threadIdx.x); i < head_dim; i += kGpuWarp) {
    p[i] = p[i] * scale * gamma[i];
  }
}

// x[i] += y[i] over n elements.
__global__ void AddKernel(float* x, const float* y, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] += y[i];
}

// ---- type dispatch -----------------------------------------------------------------------------

// Enqueues KERNEL<type> for a weight type (the seven types of engine/gguf/types.h).
#define SEXTANT_ENQUEUE_FOR_TYPE(type, KERNEL, op, grid, block, shmem, ...)    \
  switch (type) {                                                              \
    case TensorType::kF32:                                                     \
      Enqueue(op, KERNEL<TensorType::kF32>, grid, block, shmem, __VA_ARGS__);  \
      break;                                                                   \
    case TensorType::kF16:                                                     \
      Enqueue(op, KERNEL<TensorType::kF16>, grid, block, shmem, __VA_ARGS__);  \
      break;                                                                   \
    case TensorType::kBF16:                                                    \
      Enqueue(op, KERNEL<TensorType::kBF16>, grid, block, shmem, __VA_ARGS__); \
      break;                                                                   \
    case TensorType::kQ8_0:                                                    \
      Enqueue(op, KERNEL<TensorType::kQ8_0>, grid, block, shmem, __VA_ARGS__); \
      break;                                                                   \
    case TensorType::kQ4_0:                                                    \
      Enqueue(op, KERNEL<TensorType::kQ4_0>, grid, block, shmem, __VA_ARGS__); \
      break;                                                                   \
    case TensorType::kQ4_K:                                                    \
      Enqueue(op, KERNEL<TensorType::kQ4_K>, grid, block, shmem, __VA_ARGS__); \
      break;                                                                   \
    case TensorType::kQ6_K:                                                    \
      Enqueue(op, KERNEL<TensorType::kQ6_K>, grid, block, shmem, __VA_ARGS__); \
      break;                                                                   \
  }

bool SupportedType(TensorType t) {
  switch (t) {
    case TensorType::kF32:
    case TensorType::kF16:
    case TensorType::kBF16:
    case TensorType::kQ8_0:
    case TensorType::kQ4_0:
    case TensorType::kQ4_K:
    case TensorType::kQ6_K:
      return true;
  }
  return false;
}

unsigned Blocks(int64_t n, int per_block) {
  return static_cast<unsigned>((n + per_block - 1) / per_block);
}

// ---- backend -----------------------------------------------------------------------------------

// Held by stream captures and by the runtime calls that use the legacy default stream or may
// synchronize the device (allocations, frees, blocking copies and memsets, stream and event
// creation), so that no capture in this process overlaps them: the runtime invalidates a capture
// that such a call from another thread would implicitly synchronize with, and fails that call.
std::mutex& DeviceApiMutex() {
  static std::mutex m;
  return m;
}

struct DeviceWeight {
  TensorType type = TensorType::kF32;
  uint8_t* data = nullptr;  // rows * row_bytes bytes of device memory
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t row_bytes = 0;
};

class GpuBackend final : public Backend {
 public:
  GpuBackend(int device, const gpuDeviceProp_t& prop)
      : device_(device),
        name_(prop.name),
        arch_(gpuArchName(prop)),
        multiprocessors_(prop.multiProcessorCount) {}

  ~GpuBackend() override {
    std::lock_guard<std::mutex> lock(DeviceApiMutex());
    (void)gpuSetDevice(device_);
    for (DeviceWeight& w : weights_) (void)gpuFree(w.data);
  }

  std::string_view name() const override { return SEXTANT_GPU_VENDOR; }
  std::string device() const override { return name_; }
  std::string kernel_level() const override { return arch_; }
  int32_t threads() const override { return 1; }

  Result<Weight> AddWeight(const gguf::Tensor& tensor) override {
    if (tensor.dims.empty() || tensor.data == nullptr || tensor.size_bytes == 0) {
      return Status::InvalidArgument(std::string(SEXTANT_GPU_VENDOR) + " backend: tensor '" +
                                     tensor.name + "' has no data");
    }
    if (!SupportedType(tensor.type)) {
      return Status::Unimplemented(std::string(SEXTANT_GPU_VENDOR) + " backend: tensor '" +
                                   tensor.name + "' has type id " +
                                   std::to_string(static_cast<uint32_t>(tensor.type)) +
                                   ", which this backend cannot compute with");
    }
    // Shapes from the dims and size the reader checked (this library does not link the reader).
    DeviceWeight w;
    w.type = tensor.type;
    w.cols = tensor.dims[0];
    w.rows = 1;
    for (size_t i = 1; i < tensor.dims.size(); ++i) w.rows *= tensor.dims[i];
    if (w.cols <= 0 || w.rows <= 0 || tensor.size_bytes % static_cast<uint64_t>(w.rows) != 0) {
      return Status::InvalidArgument(std::string(SEXTANT_GPU_VENDOR) + " backend: tensor '" +
                                     tensor.name + "' has a bad shape");
    }
    w.row_bytes = static_cast<int64_t>(tensor.size_bytes / static_cast<uint64_t>(w.rows));
    std::lock_guard<std::mutex> lock(DeviceApiMutex());
    SEXTANT_GPU_CHECK(gpuSetDevice(device_), "select device");
    SEXTANT_GPU_CHECK(
        gpuMalloc(reinterpret_cast<void**>(&w.data), tensor.size_bytes),
        "allocate " + std::to_string(tensor.size_bytes >> 20) + " MiB for '" + tensor.name + "'");
    weights_.push_back(w);  // owned from here on (freed by the destructor)
    SEXTANT_GPU_CHECK(gpuMemcpy(w.data, tensor.data, tensor.size_bytes, gpuMemcpyHostToDevice),
                      "upload '" + tensor.name + "'");
    return Weight{static_cast<int32_t>(weights_.size() - 1)};
  }

  Result<std::unique_ptr<BackendContext>> NewContext(const ContextConfig& config) const override;

  const DeviceWeight* weight(Weight w) const {
    if (w.id < 0 || static_cast<size_t>(w.id) >= weights_.size()) return nullptr;
    return &weights_[static_cast<size_t>(w.id)];
  }
  int device_index() const { return device_; }
  int multiprocessors() const { return multiprocessors_; }

 private:
  int device_;
  std::string name_;
  std::string arch_;
  int multiprocessors_;
  std::vector<DeviceWeight> weights_;
};

class GpuContext final : public BackendContext {
 public:
  GpuContext(const GpuBackend& backend, const ContextConfig& config)
      : backend_(backend), kv_(config.kv), max_tokens_(config.max_tokens) {
    const char* graphs = std::getenv("SEXTANT_GPU_GRAPHS");
    graphs_ = graphs == nullptr || std::string(graphs) != "0";
  }

  ~GpuContext() override {
    std::lock_guard<std::mutex> lock(DeviceApiMutex());
    (void)gpuSetDevice(backend_.device_index());
    if (stream_ != nullptr) (void)gpuStreamSynchronize(stream_);
    if (graph_exec_ != nullptr) (void)gpuGraphExecDestroy(graph_exec_);
    for (Buf& b : buffers_) (void)gpuFree(b.data);
    (void)gpuFree(kv_cache_);
    (void)gpuFree(batch_dev_);
    (void)gpuFree(partial_);
    if (batch_host_ != nullptr) (void)gpuFreeHost(batch_host_);
    if (batch_uploaded_ != nullptr) (void)gpuEventDestroy(batch_uploaded_);
    if (stream_ != nullptr) (void)gpuStreamDestroy(stream_);
  }

  Status Init() {
    std::lock_guard<std::mutex> lock(DeviceApiMutex());
    SEXTANT_GPU_CHECK(gpuSetDevice(backend_.device_index()), "select device");
    SEXTANT_GPU_CHECK(gpuStreamCreate(&stream_), "create stream");
    SEXTANT_GPU_CHECK(gpuEventCreateWithFlags(&batch_uploaded_, gpuEventDisableTiming),
                      "create event");
    const int64_t kv_bytes = kv_.bytes();
    SEXTANT_GPU_CHECK(
        gpuMalloc(reinterpret_cast<void**>(&kv_cache_), static_cast<size_t>(kv_bytes)),
        "allocate a KV cache of " + std::to_string(kv_bytes >> 20) + " MiB");
    SEXTANT_GPU_CHECK(gpuMemset(kv_cache_, 0, static_cast<size_t>(kv_bytes)), "clear KV cache");
    // Batch arrays: tokens, positions, slots (max_tokens each), device and pinned host staging.
    const size_t batch_bytes = 3 * sizeof(int32_t) * static_cast<size_t>(max_tokens_);
    SEXTANT_GPU_CHECK(gpuMalloc(reinterpret_cast<void**>(&batch_dev_), batch_bytes),
                      "allocate batch arrays");
    SEXTANT_GPU_CHECK(gpuHostMalloc(reinterpret_cast<void**>(&batch_host_), batch_bytes),
                      "allocate pinned batch arrays");
    // Split-K partials: enough records for a full batch of rows at the most splits the launch
    // heuristic picks for it (it never exceeds this capacity).
    partial_records_ = std::max<int64_t>(int64_t{max_tokens_} * 64, 4096);
    const size_t partial_bytes =
        sizeof(float) * static_cast<size_t>(partial_records_) * (kv_.head_dim + 2);
    SEXTANT_GPU_CHECK(gpuMalloc(reinterpret_cast<void**>(&partial_), partial_bytes),
                      "allocate attention scratch");
    positions_.assign(static_cast<size_t>(max_tokens_), 0);
    slots_.assign(static_cast<size_t>(max_tokens_), 0);
    tokens_.assign(static_cast<size_t>(max_tokens_), 0);
    return Status::Ok();
  }

  Result<Buffer> AllocBuffer(int64_t cols, int64_t rows) override {
    if (cols <= 0 || rows < 0) return Fail("bad buffer shape");
    if (rows == 0) rows = max_tokens_;
    Buf b;
    b.cols = cols;
    b.rows = rows;
    const size_t bytes = sizeof(float) * static_cast<size_t>(cols * rows);
    std::lock_guard<std::mutex> lock(DeviceApiMutex());
    SEXTANT_GPU_CHECK(gpuSetDevice(backend_.device_index()), "select device");
    SEXTANT_GPU_CHECK(gpuMalloc(reinterpret_cast<void**>(&b.data), bytes),
                      "allocate a buffer of " + std::to_string(bytes >> 10) + " KiB");
    buffers_.push_back(b);  // owned from here on
    SEXTANT_GPU_CHECK(gpuMemset(b.data, 0, bytes), "clear buffer");
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
    SEXTANT_GPU_CHECK(gpuSetDevice(backend_.device_index()), "select device");
    Flush();  // the previous pass's launches read the batch arrays this upload replaces
    SEXTANT_RETURN_IF_ERROR(failed_);
    // The previous batch's upload reads the pinned staging; wait for it before overwriting.
    SEXTANT_GPU_CHECK(gpuEventSynchronize(batch_uploaded_), "wait for the previous batch");
    n_ = batch.n_tokens;
    std::copy_n(batch.tokens, n_, tokens_.begin());
    std::copy_n(batch.positions, n_, positions_.begin());
    std::copy_n(batch.slots, n_, slots_.begin());
    single_slot_ =
        std::all_of(slots_.begin(), slots_.begin() + n_, [&](int32_t s) { return s == slots_[0]; });
    max_len_ = 1 + *std::max_element(positions_.begin(), positions_.begin() + n_);
    // Staging layout [tokens | positions | slots], each n_ entries at stride max_tokens.
    std::copy_n(batch.tokens, n_, batch_host_);
    std::copy_n(batch.positions, n_, batch_host_ + max_tokens_);
    std::copy_n(batch.slots, n_, batch_host_ + 2 * int64_t{max_tokens_});
    SEXTANT_GPU_CHECK(gpuMemcpyAsync(batch_dev_, batch_host_,
                                     3 * sizeof(int32_t) * static_cast<size_t>(max_tokens_),
                                     gpuMemcpyHostToDevice, stream_),
                      "upload batch");
    SEXTANT_GPU_CHECK(gpuEventRecord(batch_uploaded_, stream_), "record batch upload");
    return Status::Ok();
  }

  void GetRows(Weight table, Buffer out) override {
    const DeviceWeight* w = backend_.weight(table);
    Buf* o = buf(out);
    if (!Usable() || !Check(w != nullptr && o != nullptr, "GetRows: unknown handle")) return;
    if (!Check(o->cols >= w->cols && o->rows >= n_, "GetRows: output buffer too small")) return;
    for (int32_t r = 0; r < n_; ++r) {
      const int32_t token = tokens_[static_cast<size_t>(r)];
      if (token < 0 || token >= w->rows) {
        SetFailed(Fail("GetRows: token " + std::to_string(token) + " outside the table of " +
                       std::to_string(w->rows) + " rows"));
        return;
      }
    }
    SEXTANT_ENQUEUE_FOR_TYPE(w->type, GetRowsKernel, "GetRows", static_cast<unsigned>(n_),
                             kRowThreads, 0, w->data, w->row_bytes, w->cols, tokens_dev(), o->data,
                             o->cols);
  }

  void RmsNorm(Buffer x, Weight gamma, float eps, int64_t rows, Buffer out) override {
    const Buf* in = buf(x);
    Buf* o = buf(out);
    const DeviceWeight* g = backend_.weight(gamma);
    if (!Usable() ||
        !Check(in != nullptr && o != nullptr && g != nullptr, "RmsNorm: unknown handle")) {
      return;
    }
    if (!Check(g->type == TensorType::kF32 && g->cols * g->rows >= in->cols,
               "RmsNorm: the gain must be f32 with a value per column")) {
      return;
    }
    if (!Check(rows <= in->rows && rows <= o->rows && o->cols >= in->cols,
               "RmsNorm: row count past the buffers")) {
      return;
    }
    if (rows <= 0) return;
    Enqueue("RmsNorm", RmsNormKernel, static_cast<unsigned>(rows), kRowThreads, 0, in->data,
            in->cols, reinterpret_cast<const float*>(g->data), in->cols, eps, o->data, o->cols);
  }

  void MatMul(Weight w, Buffer x, int64_t rows, Buffer y) override {
    const DeviceWeight* dw = backend_.weight(w);
    const Buf* xb = buf(x);
    Buf* yb = buf(y);
    if (!Usable() ||
        !Check(dw != nullptr && xb != nullptr && yb != nullptr, "MatMul: unknown handle")) {
      return;
    }
    // The CPU reads x with row stride w.cols and writes y with row stride w.rows; the graph's
    // buffers have exactly those widths.
    if (xb->cols != dw->cols || yb->cols != dw->rows) {
      SetFailed(Fail("MatMul: buffer widths " + std::to_string(xb->cols) + " -> " +
                     std::to_string(yb->cols) + " do not match a " + std::to_string(dw->rows) +
                     " x " + std::to_string(dw->cols) + " weight"));
      return;
    }
    if (!Check(rows <= xb->rows && rows <= yb->rows, "MatMul: row count past the buffers")) return;
    if (rows <= 0) return;
    if (rows <= kMmvMaxTokens) {
      SEXTANT_ENQUEUE_FOR_TYPE(dw->type, MatVecKernel, "MatMul", Blocks(dw->rows, kMmvWarps),
                               kMmvWarps * kGpuWarp, 0, dw->data, dw->row_bytes, dw->rows, dw->cols,
                               xb->data, static_cast<int>(rows), yb->data);
    } else {
      const dim3 grid(Blocks(dw->rows, kTileM), Blocks(rows, kTileN));
      SEXTANT_ENQUEUE_FOR_TYPE(dw->type, MatMulKernel, "MatMul", grid, kGemmThreads, 0, dw->data,
                               dw->row_bytes, dw->rows, dw->cols, xb->data, rows, yb->data);
    }
  }

  void Rope(Buffer x, const RopeShape& shape) override {
    Buf* b = buf(x);
    if (!Usable() || !Check(b != nullptr, "Rope: unknown handle")) return;
    if (!Check(shape.rope_dims >= 2 && shape.rope_dims <= shape.head_dim && shape.heads > 0 &&
                   int64_t{shape.heads} * shape.head_dim <= b->cols && b->rows >= n_,
               "Rope: shape does not fit the buffer")) {
      return;
    }
    const float* factors = nullptr;
    if (shape.freq_factors.valid()) {
      const DeviceWeight* f = backend_.weight(shape.freq_factors);
      if (!Check(f != nullptr && f->type == TensorType::kF32 &&
                     f->cols * f->rows >= shape.rope_dims / 2,
                 "Rope: the frequency factors must be f32, one per rotated pair")) {
        return;
      }
      factors = reinterpret_cast<const float*>(f->data);
    }
    const float theta_scale =
        std::pow(shape.freq_base, -2.0f / static_cast<float>(shape.rope_dims));
    Enqueue("Rope", RopeKernel, static_cast<unsigned>(n_), kRowThreads, 0, b->data, b->cols,
            positions_dev(), shape.heads, shape.head_dim, shape.rope_dims / 2, theta_scale,
            shape.neox ? 1 : 0, shape.freq_scale, factors);
  }

  void Attention(int32_t layer, Buffer q, Buffer k, Buffer v, const AttentionShape& shape,
                 Buffer out) override {
    const Buf* qb = buf(q);
    const Buf* kb = buf(k);
    const Buf* vb = buf(v);
    Buf* ob = buf(out);
    if (!Usable() || !Check(qb != nullptr && kb != nullptr && vb != nullptr && ob != nullptr,
                            "Attention: unknown handle")) {
      return;
    }
    const int hd = shape.head_dim;
    const int64_t kv_dim = kv_.kv_dim();
    if (!Check(layer >= 0 && layer < kv_.layers, "Attention: layer outside the KV cache")) return;
    if (!Check(shape.kv_heads == kv_.kv_heads && hd == kv_.head_dim && shape.heads > 0 &&
                   shape.heads % shape.kv_heads == 0,
               "Attention: heads do not match the KV cache")) {
      return;
    }
    if (!Check(hd >= 1 && hd <= kAttnMaxHeadDim, "Attention: head_dim above the supported 256")) {
      return;
    }
    if (!Check(kb->cols >= kv_dim && vb->cols >= kv_dim && qb->cols >= int64_t{shape.heads} * hd &&
                   ob->cols >= int64_t{shape.heads} * hd && qb->rows >= n_ && kb->rows >= n_ &&
                   vb->rows >= n_ && ob->rows >= n_,
               "Attention: buffers too small for the shape")) {
      return;
    }
    const int64_t slot_stride = int64_t{kv_.context_length} * kv_dim;
    float* k_cache = kv_cache_ + int64_t{layer} * 2 * kv_.slots * slot_stride;
    float* v_cache = k_cache + int64_t{kv_.slots} * slot_stride;
    Enqueue("Attention (KV write)", KvWriteKernel, static_cast<unsigned>(n_), kRowThreads, 0,
            kb->data, kb->cols, vb->data, vb->cols, positions_dev(), slots_dev(), k_cache, v_cache,
            slot_stride, kv_dim);

    AttentionArgs a;
    a.q = qb->data;
    a.q_stride = qb->cols;
    a.k_cache = k_cache;
    a.v_cache = v_cache;
    a.slot_stride = slot_stride;
    a.kv_dim = kv_dim;
    a.positions = positions_dev();
    a.slots = slots_dev();
    a.out = ob->data;
    a.out_stride = ob->cols;
    a.partial = partial_;
    a.n_rows = n_;
    a.heads = shape.heads;
    a.group = shape.heads / shape.kv_heads;
    a.head_dim = hd;
    a.scale = shape.scale;
    a.window = shape.window;
    a.softcap = shape.softcap;
    int warps = 1;
    if (single_slot_ && n_ > 1) {
      // Prefill of one sequence: tiles of up to kAttnWarps * kAttnRowsPerWarp rows share each
      // K/V tile; the row tiles and heads give enough blocks without splitting positions.
      warps = std::min(hd > kAttnNarrowHeadDim ? kAttnWarpsWide : kAttnWarps,
                       (n_ + kAttnRowsPerWarp - 1) / kAttnRowsPerWarp);
      a.rows_per_tile = warps * kAttnRowsPerWarp;
      a.splits = 1;
      a.chunk = ((max_len_ + kKvTile - 1) / kKvTile) * kKvTile;
    } else {
      // Decode (one row per block, rows may be of different slots): split the positions so the
      // device has a few blocks per multiprocessor, within the scratch's capacity. The split is
      // sized for the longest position rounded up to a power of two (at least one K/V tile), so
      // it stays the same for many steps and a captured decode graph keeps being replayed;
      // splits past a row's length find no position and the combine skips them.
      a.rows_per_tile = 1;
      int64_t len = kKvTile;
      while (len < max_len_) len *= 2;
      const int64_t blocks = int64_t{n_} * shape.heads;
      const int64_t want = std::max<int64_t>(1, 4 * int64_t{backend_.multiprocessors()});
      int64_t splits = std::min<int64_t>((want + blocks - 1) / blocks, kAttnMaxSplits);
      splits = std::min<int64_t>(splits, (len + kKvTile - 1) / kKvTile);
      splits = std::min<int64_t>(splits, partial_records_ / blocks);
      splits = std::max<int64_t>(splits, 1);
      const int64_t per = (len + splits - 1) / splits;
      a.chunk = static_cast<int>(((per + kKvTile - 1) / kKvTile) * kKvTile);
      a.splits = static_cast<int>((len + a.chunk - 1) / a.chunk);
    }
    const dim3 grid(Blocks(n_, a.rows_per_tile), static_cast<unsigned>(shape.heads),
                    static_cast<unsigned>(a.splits));
    if (hd > kAttnNarrowHeadDim) {
      Enqueue("Attention", AttentionKernel<kAttnMaxHeadDim / kGpuWarp, kKvTileWide>, grid,
              warps * kGpuWarp, AttentionSharedBytes(hd, warps), a);
    } else {
      Enqueue("Attention", AttentionKernel<kAttnNarrowHeadDim / kGpuWarp, kKvTile>, grid,
              warps * kGpuWarp, AttentionSharedBytes(hd, warps), a);
    }
    if (a.splits > 1) {
      const dim3 cgrid(static_cast<unsigned>(n_), static_cast<unsigned>(shape.heads));
      Enqueue("Attention (combine)", AttentionCombineKernel, cgrid, kAttnMaxHeadDim, 0, partial_,
              shape.heads, a.splits, hd, ob->data, ob->cols);
    }
  }

  void SwiGlu(Buffer gate, Buffer up) override {
    Buf* g = buf(gate);
    const Buf* u = buf(up);
    if (!Usable() || !Check(g != nullptr && u != nullptr, "SwiGlu: unknown handle")) return;
    if (!Check(g->cols == u->cols && g->rows >= n_ && u->rows >= n_,
               "SwiGlu: buffers of different shapes")) {
      return;
    }
    const int64_t n = int64_t{n_} * g->cols;
    Enqueue("SwiGlu", SwiGluKernel, Blocks(n, kRowThreads), kRowThreads, 0, g->data, u->data, n);
  }

  void GeGlu(Buffer gate, Buffer up) override {
    Buf* g = buf(gate);
    const Buf* u = buf(up);
    if (!Usable() || !Check(g != nullptr && u != nullptr, "GeGlu: unknown handle")) return;
    if (!Check(g->cols == u->cols && g->rows >= n_ && u->rows >= n_,
               "GeGlu: buffers of different shapes")) {
      return;
    }
    const int64_t n = int64_t{n_} * g->cols;
    Enqueue("GeGlu", GeGluKernel, Blocks(n, kRowThreads), kRowThreads, 0, g->data, u->data, n);
  }

  void AddBias(Buffer x, Weight bias) override {
    Buf* a = buf(x);
    const DeviceWeight* b = backend_.weight(bias);
    if (!Usable() || !Check(a != nullptr && b != nullptr, "AddBias: unknown handle")) return;
    if (!Check(b->type == TensorType::kF32 && b->cols * b->rows == a->cols && a->rows >= n_,
               "AddBias: the bias must be f32 with a value per column")) {
      return;
    }
    const int64_t n = int64_t{n_} * a->cols;
    Enqueue("AddBias", AddBiasKernel, Blocks(n, kRowThreads), kRowThreads, 0, a->data,
            reinterpret_cast<const float*>(b->data), a->cols, n);
  }

  void RmsNormHeads(Buffer x, Weight gamma, float eps, int32_t heads, int32_t head_dim) override {
    Buf* a = buf(x);
    const DeviceWeight* g = backend_.weight(gamma);
    if (!Usable() || !Check(a != nullptr && g != nullptr, "RmsNormHeads: unknown handle")) return;
    if (!Check(g->type == TensorType::kF32 && g->cols * g->rows == head_dim && heads > 0 &&
                   int64_t{heads} * head_dim <= a->cols && a->rows >= n_,
               "RmsNormHeads: the gain must be f32 with a value per head dimension")) {
      return;
    }
    Enqueue("RmsNormHeads", RmsNormHeadsKernel, static_cast<unsigned>(int64_t{n_} * heads),
            kGpuWarp, 0, a->data, a->cols, reinterpret_cast<const float*>(g->data), heads, head_dim,
            eps);
  }

  void Scale(Buffer x, float s, int64_t rows) override { ScaleOrCap("Scale", x, s, 0.0f, rows); }

  void SoftCap(Buffer x, float cap, int64_t rows) override {
    if (!Check(cap > 0.0f, "SoftCap: the cap must be positive")) return;
    ScaleOrCap("SoftCap", x, 1.0f, cap, rows);
  }

  void Add(Buffer x, Buffer y) override {
    Buf* a = buf(x);
    const Buf* b = buf(y);
    if (!Usable() || !Check(a != nullptr && b != nullptr, "Add: unknown handle")) return;
    if (!Check(a->cols == b->cols && a->rows >= n_ && b->rows >= n_,
               "Add: buffers of different shapes")) {
      return;
    }
    const int64_t n = int64_t{n_} * a->cols;
    Enqueue("Add", AddKernel, Blocks(n, kRowThreads), kRowThreads, 0, a->data, b->data, n);
  }

  void SelectRows(Buffer src, std::span<const int32_t> rows, Buffer dst) override {
    const Buf* s = buf(src);
    Buf* d = buf(dst);
    if (!Usable() || !Check(s != nullptr && d != nullptr, "SelectRows: unknown handle")) return;
    if (!Check(s->cols == d->cols && static_cast<int64_t>(rows.size()) <= d->rows,
               "SelectRows: destination too small")) {
      return;
    }
    const size_t row_bytes = sizeof(float) * static_cast<size_t>(s->cols);
    for (size_t i = 0; i < rows.size(); ++i) {
      if (!Check(rows[i] >= 0 && rows[i] < s->rows, "SelectRows: row outside the source")) return;
      EnqueueCopy("SelectRows", d->data + static_cast<int64_t>(i) * d->cols,
                  s->data + int64_t{rows[i]} * s->cols, row_bytes);
    }
  }

  Status ReadRows(Buffer b, int64_t n_rows, float* host) override {
    const Buf* s = buf(b);
    if (s == nullptr) return Status::InvalidArgument("ReadRows: unknown buffer");
    if (n_rows > s->rows) return Status::InvalidArgument("ReadRows: more rows than the buffer has");
    SEXTANT_GPU_CHECK(gpuSetDevice(backend_.device_index()), "select device");
    Flush();
    SEXTANT_RETURN_IF_ERROR(failed_);
    if (n_rows > 0) {
      SEXTANT_GPU_CHECK(
          gpuMemcpyAsync(host, s->data, sizeof(float) * static_cast<size_t>(n_rows * s->cols),
                         gpuMemcpyDeviceToHost, stream_),
          "read back");
    }
    // Kernel faults surface at the synchronization; the context stays failed after one.
    const gpuError_t err = gpuStreamSynchronize(stream_);
    if (err != gpuSuccess) {
      SetFailed(GpuStatus(err, "forward pass"));
      return failed_;
    }
    return Status::Ok();
  }

 private:
  struct Buf {
    float* data = nullptr;
    int64_t cols = 0;
    int64_t rows = 0;
  };
  Buf* buf(Buffer b) {
    if (b.id < 0 || static_cast<size_t>(b.id) >= buffers_.size()) return nullptr;
    return &buffers_[static_cast<size_t>(b.id)];
  }

  void ScaleOrCap(const char* op, Buffer x, float s, float cap, int64_t rows) {
    Buf* a = buf(x);
    if (!Usable() || !Check(a != nullptr, "Scale: unknown handle")) return;
    if (!Check(rows <= a->rows, "Scale: row count past the buffer")) return;
    if (rows <= 0) return;
    const int64_t n = rows * a->cols;
    Enqueue(op, ScaleKernel, Blocks(n, kRowThreads), kRowThreads, 0, a->data, s, cap, n);
  }

  const int32_t* tokens_dev() const { return batch_dev_; }
  const int32_t* positions_dev() const { return batch_dev_ + max_tokens_; }
  const int32_t* slots_dev() const { return batch_dev_ + 2 * int64_t{max_tokens_}; }

  Status Fail(const std::string& what) const {
    return Status::InvalidArgument(std::string(SEXTANT_GPU_VENDOR) + " backend: " + what);
  }
  // Keeps the first error: the context stays failed from then on.
  void SetFailed(Status st) {
    if (failed_.ok()) (void)(failed_ = std::move(st));
  }
  // False (and the context failed) when `ok` is false. Ops return at once while failed.
  bool Check(bool ok, const char* what) {
    if (!ok) SetFailed(Fail(what));
    return ok;
  }
  bool Usable() { return failed_.ok() && Check(n_ > 0, "an op before the first SetBatch"); }

  // ---- deferred launches and graphs -----------------------------------------------------------
  //
  // Ops record their launches as steps; the steps are issued at the next ReadRows() or SetBatch().
  // A pass of at most kGraphMaxTokens tokens (a decode step, where launch overhead would dominate)
  // is issued as a graph: captured once, then replayed with one launch for as long as the passes
  // issue exactly the same launches (kernels, configurations and argument bytes: the same
  // buffers, row counts and attention split; the tokens and positions themselves are read from
  // device memory). Larger passes issue their launches directly. If the runtime refuses a graph
  // call, the context issues directly from then on. SEXTANT_GPU_GRAPHS=0 turns graphs off.
  struct Step {
    std::function<gpuError_t(gpuStream_t)> issue;
    const char* op;
  };

  template <typename T>
  void AppendKey(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* b = reinterpret_cast<const uint8_t*>(&v);
    key_.insert(key_.end(), b, b + sizeof(T));
  }

  template <typename... P, typename... A>
  void Enqueue(const char* op, void (*kernel)(P...), dim3 grid, dim3 block, size_t shmem,
               A... args) {
    std::tuple<std::decay_t<P>...> params(args...);  // converted once, as a launch would
    AppendKey('K');                                  // each step's record starts with its kind
    AppendKey(kernel);
    AppendKey(grid);
    AppendKey(block);
    AppendKey(shmem);
    std::apply([&](const auto&... p) { (AppendKey(p), ...); }, params);
    steps_.push_back(
        {[kernel, grid, block, shmem, params](gpuStream_t stream) {
           std::apply(
               [&](const auto&... p) { gpuLaunch(kernel, grid, block, shmem, stream, p...); },
               params);
           return gpuGetLastError();
         },
         op});
  }

  void EnqueueCopy(const char* op, float* dst, const float* src, size_t bytes) {
    AppendKey('C');
    AppendKey(dst);
    AppendKey(src);
    AppendKey(bytes);
    steps_.push_back({[dst, src, bytes](gpuStream_t stream) {
                        return gpuMemcpyAsync(dst, src, bytes, gpuMemcpyDeviceToDevice, stream);
                      },
                      op});
  }

  // Issues the recorded steps on the stream (a failure marks the context failed).
  void Flush() {
    if (steps_.empty()) return;
    if (!(graphs_ && n_ <= kGraphMaxTokens && IssueAsGraph())) {
      for (const Step& st : steps_) {
        const gpuError_t err = st.issue(stream_);
        if (err != gpuSuccess) {
          SetFailed(GpuStatus(err, std::string(st.op) + " launch"));
          break;
        }
      }
    }
    steps_.clear();
    key_.clear();
  }

  // Issues the steps as a graph, capturing a new one when they differ from the last capture.
  // False when the runtime refused a graph call (graphs are then off for this context and the
  // caller issues the steps directly, which reports any error of the steps themselves).
  bool IssueAsGraph() {
    if (graph_exec_ == nullptr || key_ != graph_key_) {
      std::lock_guard<std::mutex> lock(DeviceApiMutex());
      if (gpuStreamBeginCapture(stream_, gpuStreamCaptureModeThreadLocal) != gpuSuccess) {
        return DisableGraphs();
      }
      gpuError_t err = gpuSuccess;
      for (const Step& st : steps_) {
        err = st.issue(stream_);
        if (err != gpuSuccess) break;
      }
      gpuGraph_t graph = nullptr;
      const gpuError_t end = gpuStreamEndCapture(stream_, &graph);
      if (err != gpuSuccess || end != gpuSuccess || graph == nullptr) {
        if (graph != nullptr) (void)gpuGraphDestroy(graph);
        return DisableGraphs();
      }
      gpuGraphExec_t exec = nullptr;
      err = gpuGraphInstantiateWithFlags(&exec, graph, 0);
      (void)gpuGraphDestroy(graph);
      if (err != gpuSuccess) return DisableGraphs();
      if (graph_exec_ != nullptr) (void)gpuGraphExecDestroy(graph_exec_);
      graph_exec_ = exec;
      graph_key_ = key_;
    }
    if (gpuGraphLaunch(graph_exec_, stream_) != gpuSuccess) return DisableGraphs();
    return true;
  }

  bool DisableGraphs() {
    (void)gpuGetLastError();  // the refused graph call's error is not the pass's
    graphs_ = false;
    if (graph_exec_ != nullptr) (void)gpuGraphExecDestroy(graph_exec_);
    graph_exec_ = nullptr;
    graph_key_.clear();
    return false;
  }

  const GpuBackend& backend_;
  KvCacheShape kv_;
  int32_t max_tokens_;
  gpuStream_t stream_ = nullptr;
  gpuEvent_t batch_uploaded_ = nullptr;
  float* kv_cache_ = nullptr;      // per layer: K [slots][ctx][kv_dim], then V likewise
  int32_t* batch_dev_ = nullptr;   // [tokens | positions | slots], max_tokens each
  int32_t* batch_host_ = nullptr;  // pinned staging of the same
  float* partial_ = nullptr;       // attention split-K records
  int64_t partial_records_ = 0;
  std::vector<Buf> buffers_;
  Status failed_;  // the first error of an op; sticky
  // Deferred launches (see Flush) and the last captured graph.
  std::vector<Step> steps_;
  std::vector<uint8_t> key_;  // the steps' kernels, configurations and argument bytes
  bool graphs_ = true;        // off after a refused graph call or SEXTANT_GPU_GRAPHS=0
  gpuGraphExec_t graph_exec_ = nullptr;
  std::vector<uint8_t> graph_key_;  // key_ of the passes graph_exec_ replays
  // The current batch, host side (launch decisions and checks).
  int32_t n_ = 0;
  bool single_slot_ = false;
  int32_t max_len_ = 0;  // 1 + the largest position
  std::vector<int32_t> tokens_, positions_, slots_;
};

Result<std::unique_ptr<BackendContext>> GpuBackend::NewContext(const ContextConfig& config) const {
  if (config.max_tokens <= 0) {
    return Status::InvalidArgument(std::string(SEXTANT_GPU_VENDOR) +
                                   " backend: max_tokens must be > 0");
  }
  const KvCacheShape& kv = config.kv;
  if (kv.layers <= 0 || kv.slots <= 0 || kv.context_length <= 0 || kv.kv_heads <= 0 ||
      kv.head_dim <= 0) {
    return Status::InvalidArgument(std::string(SEXTANT_GPU_VENDOR) +
                                   " backend: bad KV cache shape");
  }
  if (kv.head_dim > kAttnMaxHeadDim) {
    return Status::Unimplemented(std::string(SEXTANT_GPU_VENDOR) + " backend: head_dim " +
                                 std::to_string(kv.head_dim) + " is above the supported " +
                                 std::to_string(kAttnMaxHeadDim));
  }
  auto ctx = std::make_unique<GpuContext>(*this, config);
  SEXTANT_RETURN_IF_ERROR(ctx->Init());
  return std::unique_ptr<BackendContext>(std::move(ctx));
}

}  // namespace

Result<std::unique_ptr<Backend>> NewGpuBackend(const BackendOptions& options) {
  int count = 0;
  SEXTANT_GPU_CHECK(gpuGetDeviceCount(&count), "device count");
  if (count == 0) {
    return Status::Unavailable(std::string(SEXTANT_GPU_VENDOR) + " backend: no device present");
  }
  if (options.device < 0 || options.device >= count) {
    return Status::InvalidArgument(std::string(SEXTANT_GPU_VENDOR) + " backend: device " +
                                   std::to_string(options.device) + " does not exist (" +
                                   std::to_string(count) + " present)");
  }
  gpuDeviceProp_t prop;
  SEXTANT_GPU_CHECK(gpuGetDeviceProperties(&prop, options.device), "device properties");
  SEXTANT_GPU_CHECK(gpuSetDevice(options.device), "select device");
  return std::unique_ptr<Backend>(std::make_unique<GpuBackend>(options.device, prop));
}

}  // namespace SEXTANT_GPU_NS
}  // namespace sextant
