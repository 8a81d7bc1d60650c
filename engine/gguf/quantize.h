// Reference scalar quantization and dequantization of rows, for every tensor type the engine
// reads. These are the plain f32 reference that optimized kernels are checked against, and what
// the GGUF writer uses: the algorithms and bit layouts are those of ggml's reference
// quantize_row_*_ref / dequantize_row_*, so files written with them load in llama.cpp.
//
// Thread-safety: pure functions; rows may be processed concurrently.
#pragma once

#include <cstdint>

#include "engine/base/status.h"
#include "engine/gguf/types.h"

namespace sextant::gguf {

// Quantizes n floats into dst, which holds RowBytes(type, n) bytes.
// INVALID_ARGUMENT when n is negative or not a multiple of BlockElements(type).
Status QuantizeRow(TensorType type, const float* src, int64_t n, uint8_t* dst);

// Dequantizes a row of n elements (RowBytes(type, n) bytes at src) into n floats.
// INVALID_ARGUMENT when n is negative or not a multiple of BlockElements(type).
Status DequantizeRow(TensorType type, const uint8_t* src, int64_t n, float* dst);

// Per-type entry points. REQUIRES: n a multiple of the block size (32 or 256).
void QuantizeRowQ8_0(const float* x, BlockQ8_0* y, int64_t n);
void QuantizeRowQ4_0(const float* x, BlockQ4_0* y, int64_t n);
void QuantizeRowQ4_K(const float* x, BlockQ4_K* y, int64_t n);
void QuantizeRowQ6_K(const float* x, BlockQ6_K* y, int64_t n);
void DequantizeRowQ8_0(const BlockQ8_0* x, float* y, int64_t n);
void DequantizeRowQ4_0(const BlockQ4_0* x, float* y, int64_t n);
void DequantizeRowQ4_K(const BlockQ4_K* x, float* y, int64_t n);
void DequantizeRowQ6_K(const BlockQ6_K* x, float* y, int64_t n);

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K block's packed scales.
void Q4KScaleMin(int j, const uint8_t* scales, uint8_t* scale, uint8_t* min);

}  // namespace sextant::gguf
