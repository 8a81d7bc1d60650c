// Neutral gpu* names for the shared kernel sources, simulator edition: the kernels of
// engine/backends/gpu/ compiled as plain C++ and run on the CPU by the GPU simulator
// (engine/backends/gpusim/runtime.h). Everything lands in namespace sextant::gpusim. Only tests
// link this build; see the CUDA edition (engine/backends/cuda/gpu_vendor.h) for the contract.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "engine/backends/gpusim/runtime.h"
#include "engine/gguf/types.h"

#define SEXTANT_GPU_NS gpusim
#define SEXTANT_GPU_VENDOR "gpusim"

// ---- the kernel language ------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static  // one block runs at a time (runtime.h)
#define threadIdx (::sextant::gpusim::rt::ThreadIdx())
#define blockIdx (::sextant::gpusim::rt::BlockIdx())
#define blockDim (::sextant::gpusim::rt::BlockDim())
#define gridDim (::sextant::gpusim::rt::GridDim())
#define __syncthreads() ::sextant::gpusim::rt::SyncThreads()

using dim3 = ::sextant::gpusim::rt::dim3;
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
struct alignas(8) uint2 {
  unsigned x, y;
};
template <typename T>
constexpr T min(T a, T b) {
  return b < a ? b : a;
}
template <typename T>
constexpr T max(T a, T b) {
  return a < b ? b : a;
}
inline float __uint_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline constexpr int kGpuWarp = 32;

inline float gpuShflXor(float v, int mask) { return ::sextant::gpusim::rt::ShflXor(v, mask); }
inline float gpuShfl(float v, int src_lane) { return ::sextant::gpusim::rt::Shfl(v, src_lane); }

// IEEE half -> float, exact (the GGUF reader's conversion).
inline float gpuHalfBitsToFloat(unsigned short h) { return ::sextant::gguf::F16ToF32(h); }

// Dynamic shared memory of the running launch.
#define gpuDynamicShared(type, name) \
  type* name = static_cast<type*>(::sextant::gpusim::rt::DynamicShared())

// Streams and graphs: work runs at once, except on a stream being captured, where it is recorded
// into the graph that gpuStreamEndCapture returns; launching a graph runs what it recorded.
struct GpuSimStream {
  bool capturing = false;
  std::vector<std::function<void()>> captured;
};
struct GpuSimGraph {
  std::vector<std::function<void()>> work;
};

namespace sextant::gpusim::rt {
// kernel<<<grid, block, shmem, stream>>>(args...): the arguments are converted to the kernel's
// parameter types once, then every simulated thread calls the kernel with them.
template <typename... P, typename... A>
void LaunchTyped(GpuSimStream* stream, dim3 grid, dim3 block, size_t shmem, void (*kernel)(P...),
                 A&&... args) {
  std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);
  auto run = [grid, block, shmem, kernel, params] {
    LaunchKernel(grid, block, shmem, [&] { std::apply(kernel, params); });
  };
  if (stream != nullptr && stream->capturing) {
    stream->captured.push_back(run);
  } else {
    run();
  }
}
}  // namespace sextant::gpusim::rt
#define gpuLaunch(kernel, grid, block, shmem, stream, ...)                               \
  ::sextant::gpusim::rt::LaunchTyped((stream), dim3(grid), dim3(block), (shmem), kernel, \
                                     __VA_ARGS__)

// ---- the runtime API --------------------------------------------------------------------------
using gpuError_t = ::sextant::gpusim::rt::Error;
struct GpuSimEvent {};
using gpuStream_t = GpuSimStream*;
using gpuEvent_t = GpuSimEvent*;
struct gpuDeviceProp_t {
  char name[256];
  int multiProcessorCount;
  int major;
  int minor;
  size_t totalGlobalMem;
};
constexpr gpuError_t gpuSuccess = ::sextant::gpusim::rt::kSuccess;
constexpr gpuError_t gpuErrorMemoryAllocation = ::sextant::gpusim::rt::kErrorMemoryAllocation;
enum gpuMemcpyKind { gpuMemcpyHostToDevice, gpuMemcpyDeviceToHost, gpuMemcpyDeviceToDevice };
constexpr unsigned gpuEventDisableTiming = 2;

inline gpuError_t gpuGetDeviceCount(int* n) {
  *n = 1;
  return gpuSuccess;
}
inline gpuError_t gpuGetDeviceProperties(gpuDeviceProp_t* p, int device) {
  if (device != 0) return ::sextant::gpusim::rt::kErrorInvalidDevice;
  std::memset(p, 0, sizeof(*p));
  std::strncpy(p->name, "GPU simulator (CPU)", sizeof(p->name) - 1);
  p->multiProcessorCount = 32;  // as a mid-size GPU: decode attention splits positions widely
  p->totalGlobalMem = ::sextant::gpusim::rt::kTotalMemory;
  return gpuSuccess;
}
inline gpuError_t gpuSetDevice(int device) {
  return device == 0 ? gpuSuccess : ::sextant::gpusim::rt::kErrorInvalidDevice;
}
template <typename T>
gpuError_t gpuMalloc(T** p, size_t bytes) {
  void* v = nullptr;
  const gpuError_t e = ::sextant::gpusim::rt::Malloc(&v, bytes);
  *p = static_cast<T*>(v);
  return e;
}
inline gpuError_t gpuFree(void* p) { return ::sextant::gpusim::rt::Free(p); }
template <typename T>
gpuError_t gpuHostMalloc(T** p, size_t bytes) {
  *p = static_cast<T*>(std::malloc(bytes));
  return *p != nullptr ? gpuSuccess : gpuErrorMemoryAllocation;
}
inline gpuError_t gpuFreeHost(void* p) {
  std::free(p);
  return gpuSuccess;
}
inline gpuError_t gpuMemcpy(void* dst, const void* src, size_t n, gpuMemcpyKind) {
  if (n > 0) std::memmove(dst, src, n);
  return gpuSuccess;
}
inline gpuError_t gpuMemcpyAsync(void* dst, const void* src, size_t n, gpuMemcpyKind k,
                                 gpuStream_t s) {
  if (s != nullptr && s->capturing) {
    s->captured.push_back([=] { (void)gpuMemcpy(dst, src, n, k); });
    return gpuSuccess;
  }
  return gpuMemcpy(dst, src, n, k);
}
inline gpuError_t gpuMemset(void* p, int v, size_t n) {
  if (n > 0) std::memset(p, v, n);
  return gpuSuccess;
}
inline gpuError_t gpuMemsetAsync(void* p, int v, size_t n, gpuStream_t s) {
  if (s != nullptr && s->capturing) {
    s->captured.push_back([=] { (void)gpuMemset(p, v, n); });
    return gpuSuccess;
  }
  return gpuMemset(p, v, n);
}
inline gpuError_t gpuMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  return ::sextant::gpusim::rt::MemGetInfo(free_bytes, total_bytes);
}
inline gpuError_t gpuStreamCreate(gpuStream_t* s) {
  *s = new GpuSimStream;
  return gpuSuccess;
}
inline gpuError_t gpuStreamDestroy(gpuStream_t s) {
  delete s;
  return gpuSuccess;
}
// Work outside a capture runs when it is issued, so there is never anything to wait for.
inline gpuError_t gpuStreamSynchronize(gpuStream_t) { return gpuSuccess; }
inline gpuError_t gpuEventCreateWithFlags(gpuEvent_t* e, unsigned) {
  *e = new GpuSimEvent;
  return gpuSuccess;
}
inline gpuError_t gpuEventRecord(gpuEvent_t, gpuStream_t) { return gpuSuccess; }
inline gpuError_t gpuEventSynchronize(gpuEvent_t) { return gpuSuccess; }
inline gpuError_t gpuEventDestroy(gpuEvent_t e) {
  delete e;
  return gpuSuccess;
}
inline gpuError_t gpuDeviceSynchronize() { return gpuSuccess; }
inline gpuError_t gpuGetLastError() { return ::sextant::gpusim::rt::GetLastError(); }
inline const char* gpuGetErrorString(gpuError_t e) { return ::sextant::gpusim::rt::ErrorString(e); }

using gpuGraph_t = GpuSimGraph*;
using gpuGraphExec_t = GpuSimGraph*;
enum gpuStreamCaptureMode { gpuStreamCaptureModeGlobal, gpuStreamCaptureModeThreadLocal };
inline gpuError_t gpuStreamBeginCapture(gpuStream_t s, gpuStreamCaptureMode) {
  if (s == nullptr || s->capturing) return ::sextant::gpusim::rt::kErrorInvalidValue;
  s->capturing = true;
  s->captured.clear();
  return gpuSuccess;
}
inline gpuError_t gpuStreamEndCapture(gpuStream_t s, gpuGraph_t* graph) {
  if (s == nullptr || !s->capturing) return ::sextant::gpusim::rt::kErrorInvalidValue;
  s->capturing = false;
  *graph = new GpuSimGraph{std::move(s->captured)};
  s->captured.clear();
  return gpuSuccess;
}
inline gpuError_t gpuGraphInstantiateWithFlags(gpuGraphExec_t* exec, gpuGraph_t graph,
                                               unsigned long long) {
  ::sextant::gpusim::rt::CountGraphInstantiation();
  *exec = new GpuSimGraph{graph->work};
  return gpuSuccess;
}
inline gpuError_t gpuGraphLaunch(gpuGraphExec_t exec, gpuStream_t s) {
  if (s != nullptr && s->capturing) return ::sextant::gpusim::rt::kErrorInvalidValue;
  ::sextant::gpusim::rt::CountGraphLaunch();
  for (const auto& w : exec->work) w();
  return gpuSuccess;
}
inline gpuError_t gpuGraphDestroy(gpuGraph_t g) {
  delete g;
  return gpuSuccess;
}
inline gpuError_t gpuGraphExecDestroy(gpuGraphExec_t e) {
  delete e;
  return gpuSuccess;
}

inline std::string gpuArchName(const gpuDeviceProp_t&) { return "gpusim"; }
