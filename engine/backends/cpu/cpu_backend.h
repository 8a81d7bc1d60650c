// The CPU backend: runs the llama graph's ops on the weights in place in the file mapping
// (engine/backends/cpu/matmul.h for the products), with one ThreadPool per context and an f32
// KV cache in lazily mapped anonymous memory (only positions written become resident).
// Thread-safety: as Backend / BackendContext (engine/backends/backend.h).
#pragma once

#include <memory>

#include "engine/backends/backend.h"

namespace sextant::cpu {

Result<std::unique_ptr<Backend>> NewCpuBackend(const BackendOptions& options);

// Dot product of n floats (AVX2+FMA when the CPU has them). The same function computes every row
// of every batch, so results do not depend on the batch.
float Dot(const float* a, const float* b, int64_t n);

}  // namespace sextant::cpu
