// Neutral gpu* names for the shared kernel sources, HIP edition (see the CUDA edition in
// engine/backends/cuda/gpu_vendor.h). HIP's own API is used under these names only.
//
// Warp-level helpers work on logical warps of 32 lanes (kGpuWarp): a 64-wide wavefront (gfx90a)
// holds two of them, shuffles stay within each half (width 32); wave32 parts (gfx1030) match
// CUDA exactly.
#pragma once

#include <hip/hip_fp16.h>
#include <hip/hip_runtime.h>

#include <string>

#define SEXTANT_GPU_NS hip
#define SEXTANT_GPU_VENDOR "hip"

using gpuError_t = hipError_t;
using gpuStream_t = hipStream_t;
using gpuEvent_t = hipEvent_t;
using gpuDeviceProp_t = hipDeviceProp_t;
constexpr gpuError_t gpuSuccess = hipSuccess;
constexpr gpuError_t gpuErrorMemoryAllocation = hipErrorOutOfMemory;

#define gpuGetDeviceCount hipGetDeviceCount
#define gpuGetDeviceProperties hipGetDeviceProperties
#define gpuSetDevice hipSetDevice
#define gpuMalloc hipMalloc
#define gpuFree hipFree
#define gpuHostMalloc(ptr, bytes) hipHostMalloc(ptr, bytes, hipHostMallocDefault)
#define gpuFreeHost hipHostFree
#define gpuMemcpy hipMemcpy
#define gpuMemcpyAsync hipMemcpyAsync
#define gpuMemcpyHostToDevice hipMemcpyHostToDevice
#define gpuMemcpyDeviceToHost hipMemcpyDeviceToHost
#define gpuMemcpyDeviceToDevice hipMemcpyDeviceToDevice
#define gpuMemset hipMemset
#define gpuMemsetAsync hipMemsetAsync
#define gpuMemGetInfo hipMemGetInfo
#define gpuStreamCreate hipStreamCreate
#define gpuStreamDestroy hipStreamDestroy
#define gpuStreamSynchronize hipStreamSynchronize
#define gpuEventCreateWithFlags hipEventCreateWithFlags
#define gpuEventDisableTiming hipEventDisableTiming
#define gpuEventRecord hipEventRecord
#define gpuEventSynchronize hipEventSynchronize
#define gpuEventDestroy hipEventDestroy
#define gpuDeviceSynchronize hipDeviceSynchronize
#define gpuGetLastError hipGetLastError
#define gpuGetErrorString hipGetErrorString

// Graphs: the decode step's launches are captured once and replayed (engine/backends/gpu/).
using gpuGraph_t = hipGraph_t;
using gpuGraphExec_t = hipGraphExec_t;
#define gpuStreamBeginCapture hipStreamBeginCapture
#define gpuStreamCaptureModeThreadLocal hipStreamCaptureModeThreadLocal
#define gpuStreamEndCapture hipStreamEndCapture
#define gpuGraphInstantiateWithFlags hipGraphInstantiateWithFlags
#define gpuGraphLaunch hipGraphLaunch
#define gpuGraphDestroy hipGraphDestroy
#define gpuGraphExecDestroy hipGraphExecDestroy

inline constexpr int kGpuWarp = 32;

// kernel<<<grid, block, shmem, stream>>>(args...), spelled so that the simulator edition
// (engine/backends/gpusim/gpu_vendor.h) can run the same launch on the CPU.
#define gpuLaunch(kernel, grid, block, shmem, stream, ...) \
  kernel<<<(grid), (block), (shmem), (stream)>>>(__VA_ARGS__)
// The launch's dynamic shared memory as `type name[]`.
#define gpuDynamicShared(type, name) extern __shared__ type name[]

__device__ __forceinline__ float gpuShflXor(float v, int mask) {
  return __shfl_xor(v, mask, kGpuWarp);
}
__device__ __forceinline__ float gpuShfl(float v, int src_lane) {
  return __shfl(v, src_lane, kGpuWarp);
}
__device__ __forceinline__ float gpuHalfBitsToFloat(unsigned short h) {
  return __half2float(__ushort_as_half(h));
}

// "gfx90a": the ISA the kernels run as.
inline std::string gpuArchName(const gpuDeviceProp_t& p) {
  std::string arch = p.gcnArchName;
  const size_t colon = arch.find(':');  // "gfx90a:sramecc+:xnack-"
  return colon == std::string::npos ? arch : arch.substr(0, colon);
}
