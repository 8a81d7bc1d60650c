// Device discovery and a smoke kernel; one source for CUDA and HIP (see gpu_vendor.h).
#include <string>
#include <vector>

#include "engine/backends/gpu_probe.h"
#include "gpu_vendor.h"

namespace sextant {
namespace SEXTANT_GPU_NS {
namespace {

__global__ void VectorAddKernel(const float* a, const float* b, float* c, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) c[i] = a[i] + b[i];
}

Status FromGpu(gpuError_t err, const char* what) {
  if (err == gpuSuccess) return Status();
  return Status::Unavailable(std::string(SEXTANT_GPU_VENDOR) + " " + what + ": " +
                             gpuGetErrorString(err));
}

// Device buffer freed on scope exit.
struct DeviceBuffer {
  float* ptr = nullptr;
  ~DeviceBuffer() {
    if (ptr != nullptr) (void)gpuFree(ptr);
  }
};

Status VectorAdd(const std::vector<float>& a, const std::vector<float>& b, std::vector<float>* c) {
  const int n = static_cast<int>(a.size());
  const size_t bytes = sizeof(float) * a.size();
  DeviceBuffer da, db, dc;
  SEXTANT_RETURN_IF_ERROR(FromGpu(gpuMalloc(&da.ptr, bytes), "malloc"));
  SEXTANT_RETURN_IF_ERROR(FromGpu(gpuMalloc(&db.ptr, bytes), "malloc"));
  SEXTANT_RETURN_IF_ERROR(FromGpu(gpuMalloc(&dc.ptr, bytes), "malloc"));
  SEXTANT_RETURN_IF_ERROR(
      FromGpu(gpuMemcpy(da.ptr, a.data(), bytes, gpuMemcpyHostToDevice), "copy"));
  SEXTANT_RETURN_IF_ERROR(
      FromGpu(gpuMemcpy(db.ptr, b.data(), bytes, gpuMemcpyHostToDevice), "copy"));
  const int block = 256;
  gpuLaunch(VectorAddKernel, (n + block - 1) / block, block, 0, 0, da.ptr, db.ptr, dc.ptr, n);
  SEXTANT_RETURN_IF_ERROR(FromGpu(gpuGetLastError(), "launch"));
  return FromGpu(gpuMemcpy(c->data(), dc.ptr, bytes, gpuMemcpyDeviceToHost), "copy back");
}

}  // namespace

Result<GpuDeviceSummary> ProbeDevices() {
  GpuDeviceSummary summary;
  gpuError_t err = gpuGetDeviceCount(&summary.count);
  if (err != gpuSuccess) return FromGpu(err, "device count");
  if (summary.count > 0) {
    gpuDeviceProp_t prop;
    err = gpuGetDeviceProperties(&prop, 0);
    if (err != gpuSuccess) return FromGpu(err, "device properties");
    summary.first_name = prop.name;
  }
  return summary;
}

Status RunSmokeKernel(int n) {
  if (n <= 0) return Status::InvalidArgument("smoke kernel: n must be positive");
  std::vector<float> a(n), b(n), c(n);
  for (int i = 0; i < n; ++i) {
    a[i] = static_cast<float>(i);
    b[i] = 2.0f * static_cast<float>(i);
  }
  SEXTANT_RETURN_IF_ERROR(VectorAdd(a, b, &c));
  for (int i = 0; i < n; ++i) {
    if (c[i] != 3.0f * static_cast<float>(i)) {
      return Status::Internal("smoke kernel: wrong sum at index " + std::to_string(i));
    }
  }
  return Status();
}

}  // namespace SEXTANT_GPU_NS
}  // namespace sextant
