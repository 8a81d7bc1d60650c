// The GPU simulator's runtime: executes kernels written against the neutral gpu* names of
// engine/backends/gpu/ on the CPU, so the one kernel source that CUDA and HIP compile can be run
// and checked on a machine without a GPU. It is a test instrument, not a backend: no product
// program links it and the backend registry never offers it.
//
// Execution model. A launch runs its blocks one after another on the calling thread. The threads
// of a block are fibers (each with its own stack) that switch only where the programming model
// lets threads observe one another: __syncthreads() (every live thread of the block) and the
// warp shuffles (every live lane of a logical 32-lane warp). Between those points a thread runs
// alone, so any interleaving a GPU could produce at a barrier is one this simulator may produce.
// Threads that wait at barriers that can never all be reached (a barrier in divergent code) end
// the launch with an error instead of hanging. `__shared__` variables are function statics, which
// is correct because one block runs at a time (launches hold a process-wide lock).
//
// What it does not model: timing, memory coalescing, bank conflicts, warp divergence costs,
// concurrent blocks (a kernel that relies on inter-block communication within a launch is wrong
// on a GPU anyway). The configuration limits it checks are CUDA's: at most 1024 threads per block,
// grid y/z at most 65535, and 48 KiB of dynamic shared memory without an opt-in.
//
// Thread-safety: every function may be called from any thread; launches are serialized.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

namespace sextant::gpusim::rt {

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

enum Error : int {
  kSuccess = 0,
  kErrorInvalidValue = 1,
  kErrorMemoryAllocation = 2,
  kErrorInvalidConfiguration = 9,
  kErrorInvalidDevice = 101,
  kErrorLaunchFailure = 719,
};
const char* ErrorString(Error e);

// ---- inside a kernel (REQUIRES: called from a thread of a running launch) ----------------------
const dim3& ThreadIdx();
const dim3& BlockIdx();
const dim3& BlockDim();
const dim3& GridDim();
void SyncThreads();
// Width-32 shuffles among the live lanes of the calling thread's logical warp.
float ShflXor(float v, int lane_mask);
float Shfl(float v, int src_lane);
// The launch's dynamic shared memory (its shared_bytes; all bytes 0xFF at the start of each
// block, so that reading it before writing shows as NaN).
void* DynamicShared();

// ---- host side ----------------------------------------------------------------------------------
// Runs body() once per thread of every block of the grid. A bad configuration, a barrier deadlock
// or no memory for the fibers' stacks is recorded for GetLastError() (the launch then runs
// nothing more).
void LaunchKernel(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body);
// The error of the last failed launch since the previous call, then kSuccess.
Error GetLastError();

// Graphs instantiated and launched so far in this process (the simulator's
// gpuGraphInstantiateWithFlags and gpuGraphLaunch count them).
void CountGraphInstantiation();
void CountGraphLaunch();
uint64_t GraphInstantiations();
uint64_t GraphLaunches();

// Device memory is host memory aligned to 256 bytes; bytes allocated are counted.
Error Malloc(void** p, size_t bytes);
Error Free(void* p);
Error MemGetInfo(size_t* free_bytes, size_t* total_bytes);
inline constexpr size_t kTotalMemory = size_t{16} << 30;  // what the simulated device reports

}  // namespace sextant::gpusim::rt
