#include "engine/backends/registry.h"

#include "engine/backends/gpu_probe.h"

namespace sextant {
namespace {

// Returns the device name of a GPU backend, or an error saying why it cannot run here.
template <typename Probe>
Result<std::string> GpuDevice(std::string_view vendor, Probe probe) {
  Result<GpuDeviceSummary> devices = probe();
  if (!devices.ok()) return devices.status();
  if (devices->count == 0) {
    return Status::Unavailable(std::string(vendor) + " backend: no device present");
  }
  return devices->first_name;
}

Result<std::string> CudaDevice() {
#if defined(SEXTANT_HAVE_CUDA)
  return GpuDevice("cuda", cuda::ProbeDevices);
#else
  return Status::FailedPrecondition("this build has no CUDA backend (built without nvcc)");
#endif
}

Result<std::string> HipDevice() {
#if defined(SEXTANT_HAVE_HIP)
  return GpuDevice("hip", hip::ProbeDevices);
#else
  return Status::FailedPrecondition("this build has no HIP backend (built without hipcc)");
#endif
}

}  // namespace

std::string_view BackendName(BackendKind kind) {
  switch (kind) {
    case BackendKind::kCpu:
      return "cpu";
    case BackendKind::kCuda:
      return "cuda";
    case BackendKind::kHip:
      return "hip";
  }
  return "cpu";
}

Result<BackendChoice> ChooseBackend(std::string_view requested) {
  if (requested == "cpu") return BackendChoice{BackendKind::kCpu, "cpu", ""};
  if (requested == "cuda") {
    SEXTANT_ASSIGN_OR_RETURN(std::string device, CudaDevice());
    return BackendChoice{BackendKind::kCuda, device, ""};
  }
  if (requested == "hip") {
    SEXTANT_ASSIGN_OR_RETURN(std::string device, HipDevice());
    return BackendChoice{BackendKind::kHip, device, ""};
  }
  if (requested != "auto") {
    return Status::InvalidArgument("--backend '" + std::string(requested) +
                                   "': expected auto, cpu, cuda or hip");
  }
  Result<std::string> cuda = CudaDevice();
  if (cuda.ok()) return BackendChoice{BackendKind::kCuda, *cuda, "auto: CUDA device found"};
  Result<std::string> hip = HipDevice();
  if (hip.ok()) return BackendChoice{BackendKind::kHip, *hip, "auto: HIP device found"};
  return BackendChoice{BackendKind::kCpu, "cpu",
                       "no GPU found (cuda: " + cuda.status().message() +
                           "; hip: " + hip.status().message() + "); using the CPU"};
}

}  // namespace sextant
