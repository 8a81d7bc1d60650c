#include "engine/backends/backend.h"

#include <string>

#include "engine/backends/cpu/cpu_backend.h"
#include "engine/backends/gpu_backend.h"

namespace sextant {

Result<std::unique_ptr<Backend>> CreateBackend(const BackendChoice& choice,
                                               const BackendOptions& options) {
  switch (choice.kind) {
    case BackendKind::kCpu:
      return cpu::NewCpuBackend(options);
    case BackendKind::kCuda:
#if defined(SEXTANT_HAVE_CUDA)
      return cuda::NewGpuBackend(options);
#else
      return Status::FailedPrecondition(
          "cuda backend: this build has no CUDA backend (built without nvcc); use --backend cpu");
#endif
    case BackendKind::kHip:
#if defined(SEXTANT_HAVE_HIP)
      return hip::NewGpuBackend(options);
#else
      return Status::FailedPrecondition(
          "hip backend: this build has no HIP backend (built without hipcc); use --backend cpu");
#endif
  }
  return Status::InvalidArgument("unknown backend kind");
}

}  // namespace sextant
