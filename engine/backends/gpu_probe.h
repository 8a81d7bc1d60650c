// GPU presence and a smoke kernel, for each GPU backend compiled in. The functions of a backend
// exist only when it was built (SEXTANT_HAVE_CUDA / SEXTANT_HAVE_HIP); callers guard with those.
// Thread-safety: all functions are safe to call from any thread.
#pragma once

#include <string>

#include "engine/base/status.h"

namespace sextant {

struct GpuDeviceSummary {
  int count = 0;           // devices visible to this backend's runtime
  std::string first_name;  // name of device 0, when count > 0
};

#define SEXTANT_DECLARE_GPU_PROBE(ns)                                            \
  namespace ns {                                                                 \
  /* Devices of this vendor; an error when the runtime or driver is unusable. */ \
  Result<GpuDeviceSummary> ProbeDevices();                                       \
  /* Runs a vector-add kernel on device 0 and checks the result on the host. */  \
  Status RunSmokeKernel(int n);                                                  \
  }

#if defined(SEXTANT_HAVE_CUDA)
SEXTANT_DECLARE_GPU_PROBE(cuda)
#endif
#if defined(SEXTANT_HAVE_HIP)
SEXTANT_DECLARE_GPU_PROBE(hip)
#endif
#undef SEXTANT_DECLARE_GPU_PROBE

}  // namespace sextant
