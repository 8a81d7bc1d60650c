// Neutral gpu* names for the shared kernel sources, CUDA edition. The HIP edition lives in
// engine/backends/hip/gpu_vendor.h; kernels in engine/backends/gpu/ use only these names.
//
// Warp-level helpers work on logical warps of 32 lanes (kGpuWarp): CUDA's warps, and halves of
// a 64-wide AMD wavefront, so kernels written for 32 lanes run unchanged on both.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <string>

#define SEXTANT_GPU_NS cuda
#define SEXTANT_GPU_VENDOR "cuda"

using gpuError_t = cudaError_t;
using gpuStream_t = cudaStream_t;
using gpuEvent_t = cudaEvent_t;
using gpuDeviceProp_t = cudaDeviceProp;
constexpr gpuError_t gpuSuccess = cudaSuccess;
constexpr gpuError_t gpuErrorMemoryAllocation = cudaErrorMemoryAllocation;

#define gpuGetDeviceCount cudaGetDeviceCount
#define gpuGetDeviceProperties cudaGetDeviceProperties
#define gpuSetDevice cudaSetDevice
#define gpuMalloc cudaMalloc
#define gpuFree cudaFree
#define gpuHostMalloc(ptr, bytes) cudaMallocHost(ptr, bytes)
#define gpuFreeHost cudaFreeHost
#define gpuMemcpy cudaMemcpy
#define gpuMemcpyAsync cudaMemcpyAsync
#define gpuMemcpyHostToDevice cudaMemcpyHostToDevice
#define gpuMemcpyDeviceToHost cudaMemcpyDeviceToHost
#define gpuMemcpyDeviceToDevice cudaMemcpyDeviceToDevice
#define gpuMemset cudaMemset
#define gpuMemsetAsync cudaMemsetAsync
#define gpuMemGetInfo cudaMemGetInfo
#define gpuStreamCreate cudaStreamCreate
#define gpuStreamDestroy cudaStreamDestroy
#define gpuStreamSynchronize cudaStreamSynchronize
#define gpuEventCreateWithFlags cudaEventCreateWithFlags
#define gpuEventDisableTiming cudaEventDisableTiming
#define gpuEventRecord cudaEventRecord
#define gpuEventSynchronize cudaEventSynchronize
#define gpuEventDestroy cudaEventDestroy
#define gpuDeviceSynchronize cudaDeviceSynchronize
#define gpuGetLastError cudaGetLastError
#define gpuGetErrorString cudaGetErrorString

// Graphs: the decode step's launches are captured once and replayed (engine/backends/gpu/).
using gpuGraph_t = cudaGraph_t;
using gpuGraphExec_t = cudaGraphExec_t;
#define gpuStreamBeginCapture cudaStreamBeginCapture
#define gpuStreamCaptureModeThreadLocal cudaStreamCaptureModeThreadLocal
#define gpuStreamEndCapture cudaStreamEndCapture
#define gpuGraphInstantiateWithFlags cudaGraphInstantiateWithFlags
#define gpuGraphLaunch cudaGraphLaunch
#define gpuGraphDestroy cudaGraphDestroy
#define gpuGraphExecDestroy cudaGraphExecDestroy

inline constexpr int kGpuWarp = 32;

// kernel<<<grid, block, shmem, stream>>>(args...), spelled so that the simulator edition
// (engine/backends/gpusim/gpu_vendor.h) can run the same launch on the CPU.
#define gpuLaunch(kernel, grid, block, shmem, stream, ...) \
  kernel<<<(grid), (block), (shmem), (stream)>>>(__VA_ARGS__)
// The launch's dynamic shared memory as `type name[]`.
#define gpuDynamicShared(type, name) extern __shared__ type name[]

__device__ __forceinline__ float gpuShflXor(float v, int mask) {
  return __shfl_xor_sync(0xffffffffu, v, mask, kGpuWarp);
}
__device__ __forceinline__ float gpuShfl(float v, int src_lane) {
  return __shfl_sync(0xffffffffu, v, src_lane, kGpuWarp);
}
__device__ __forceinline__ float gpuHalfBitsToFloat(unsigned short h) {
  return __half2float(__ushort_as_half(h));
}

// "sm_90": the compute capability the kernels run as.
inline std::string gpuArchName(const gpuDeviceProp_t& p) {
  return "sm_" + std::to_string(p.major) + std::to_string(p.minor);
}
