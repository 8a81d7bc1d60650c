// CPU products of a weight matrix (any supported GGUF type, read in place from the mapping)
// with f32 activations: the hot loop of the engine.
//
//   y[t][r] = sum_c W[r][c] * x[t][c]    for t < n_tokens, r < rows
//
// W is row-major as stored in GGUF: `rows` rows of `cols` elements, each row RowBytes(type, cols)
// bytes. Activations are quantized on the fly where the type's dot product wants it (Q8_0 /
// Q8_K style), never the weights; no dequantized copy of W is ever made.
// n_tokens == 1 is the decode path (matrix-vector); n_tokens > 1 is prefill (matrix-matrix).
//
// Kernels are chosen at run time from the CPU's features (AVX-512 VNNI/BF16, AVX2+FMA+F16C, or
// portable C++); SetCpuKernelLevel() can force a lower level for tests and benchmarks.
//
// Thread-safety: MatMul may be called concurrently with distinct outputs. The ThreadPool runs
// one parallel job at a time (callers serialize their use of one pool).
#pragma once

#include <cstdint>

#include "engine/gguf/types.h"

namespace sextant::cpu {

class ThreadPool;  // engine/backends/cpu/thread_pool.h

struct WeightView {
  gguf::TensorType type = gguf::TensorType::kF32;
  const uint8_t* data = nullptr;  // rows * RowBytes(type, cols) bytes
  int64_t rows = 0;
  int64_t cols = 0;
};

enum class KernelLevel { kPortable = 0, kAvx2 = 1, kAvx512 = 2 };
KernelLevel DetectedKernelLevel();          // what this CPU supports
KernelLevel ActiveKernelLevel();            // what MatMul uses now
void SetCpuKernelLevel(KernelLevel level);  // clamps to DetectedKernelLevel()
const char* KernelLevelName(KernelLevel level);

// REQUIRES: cols a multiple of the type's block size; x has n_tokens * cols floats, y has
// n_tokens * rows floats (row stride `rows`). pool may be null (runs on the calling thread).
void MatMul(const WeightView& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool);

// Row r of W, dequantized to f32 (embedding lookup). REQUIRES: r < w.rows; out has w.cols floats.
void DequantizeRow(const WeightView& w, int64_t r, float* out);

}  // namespace sextant::cpu
