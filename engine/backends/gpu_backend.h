// The GPU engine backends (CUDA and HIP), built from one kernel source
// (engine/backends/gpu/gpu_backend.cu) once per vendor compiled in. Each implements Backend /
// BackendContext (engine/backends/backend.h) on one device: weights are uploaded once with plain
// device allocations (never managed memory), kernels dequantize inside the products, and each
// context runs its ops in order on its own stream.
//
// Errors: creation returns UNAVAILABLE when the runtime or device cannot be used,
// INVALID_ARGUMENT for a device index past the device count, RESOURCE_EXHAUSTED when device
// memory runs out. An op that fails on the device (launch error, unsupported shape) leaves the
// context failed: the next ReadRows() returns that error, and so does every later one.
//
// Thread-safety: as Backend / BackendContext.
#pragma once

#include <memory>

#include "engine/backends/backend.h"

namespace sextant {

#define SEXTANT_DECLARE_GPU_BACKEND(ns)                                                       \
  namespace ns {                                                                              \
  /* The backend on device options.device (the registry's choice names the device it saw). */ \
  Result<std::unique_ptr<Backend>> NewGpuBackend(const BackendOptions& options);              \
  }

#if defined(SEXTANT_HAVE_CUDA)
SEXTANT_DECLARE_GPU_BACKEND(cuda)
#endif
#if defined(SEXTANT_HAVE_HIP)
SEXTANT_DECLARE_GPU_BACKEND(hip)
#endif
#if defined(SEXTANT_HAVE_GPUSIM)  // the GPU simulator (engine/backends/gpusim/), tests only
SEXTANT_DECLARE_GPU_BACKEND(gpusim)
#endif
#undef SEXTANT_DECLARE_GPU_BACKEND

}  // namespace sextant
