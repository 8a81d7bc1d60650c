// GPU smoke tests: one kernel source, built for each vendor compiled in. Each case skips, and
// says why, where the backend is not built or no device is visible (always so in CI).
#include "engine/backends/gpu_probe.h"

#include <gtest/gtest.h>

namespace sextant {
namespace {

template <typename Probe, typename Smoke>
void RunSmoke(const char* vendor, Probe probe, Smoke smoke) {
  Result<GpuDeviceSummary> devices = probe();
  if (!devices.ok()) {
    GTEST_SKIP() << vendor << " runtime unusable here: " << devices.status().ToString();
  }
  if (devices->count == 0) GTEST_SKIP() << "no " << vendor << " device present";
  Status st = smoke(1 << 20);
  EXPECT_TRUE(st.ok()) << st.ToString() << " on " << devices->first_name;
}

TEST(GpuProbe, CudaVectorAddMatchesHost) {
#if defined(SEXTANT_HAVE_CUDA)
  RunSmoke("CUDA", cuda::ProbeDevices, cuda::RunSmokeKernel);
#else
  GTEST_SKIP() << "CUDA backend not compiled in (no nvcc at configure time)";
#endif
}

TEST(GpuProbe, HipVectorAddMatchesHost) {
#if defined(SEXTANT_HAVE_HIP)
  RunSmoke("HIP", hip::ProbeDevices, hip::RunSmokeKernel);
#else
  GTEST_SKIP() << "HIP backend not compiled in (no Debian hipcc at configure time)";
#endif
}

}  // namespace
}  // namespace sextant
