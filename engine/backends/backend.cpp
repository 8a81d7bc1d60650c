#include "engine/backends/backend.h"

#include <string>

#include "engine/backends/cpu/cpu_backend.h"

namespace sextant {

Result<std::unique_ptr<Backend>> CreateBackend(const BackendChoice& choice,
                                               const BackendOptions& options) {
  switch (choice.kind) {
    case BackendKind::kCpu:
      return cpu::NewCpuBackend(options);
    case BackendKind::kCuda:
    case BackendKind::kHip:
      break;
  }
  return Status::FailedPrecondition(std::string(BackendName(choice.kind)) + " backend: device '" +
                                    choice.device +
                                    "' found, but this backend has no model support yet; use "
                                    "--backend cpu");
}

}  // namespace sextant
