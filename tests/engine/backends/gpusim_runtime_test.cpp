// The GPU simulator's runtime (engine/backends/gpusim/runtime.h): the guarantees the kernel tests
// on it rely on. Barriers order memory between the threads of a block, shuffles exchange values
// between the lanes of a warp, exited threads leave barriers, a barrier that cannot be reached is
// an error rather than a hang, and bad launch configurations are refused as CUDA refuses them.
#include "engine/backends/gpusim/runtime.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <vector>

namespace sextant::gpusim::rt {
namespace {

TEST(GpuSimRuntime, EveryThreadOfEveryBlockRunsOnceWithItsIndex) {
  std::vector<int> seen(3 * 2 * 64, 0);
  LaunchKernel(dim3(3, 2), dim3(32, 2), 0, [&] {
    const unsigned block = BlockIdx().y * GridDim().x + BlockIdx().x;
    const unsigned thread = ThreadIdx().y * BlockDim().x + ThreadIdx().x;
    ++seen[block * 64 + thread];
  });
  ASSERT_EQ(GetLastError(), kSuccess);
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], 1) << i;
}

TEST(GpuSimRuntime, SyncThreadsMakesEveryWriteBeforeItVisibleAfterIt) {
  const int n = 256;
  std::vector<int> shared(n, -1), read(n, -1);
  LaunchKernel(dim3(1), dim3(n), 0, [&] {
    const int t = static_cast<int>(ThreadIdx().x);
    shared[t] = t * 3;
    SyncThreads();
    read[t] = shared[(t + 97) % n];  // written by a thread that runs later in a lockstep order
  });
  ASSERT_EQ(GetLastError(), kSuccess);
  for (int t = 0; t < n; ++t) EXPECT_EQ(read[t], ((t + 97) % n) * 3) << t;
}

TEST(GpuSimRuntime, ShufflesExchangeWithinEachWarp) {
  const int n = 96;  // three warps
  std::vector<float> sums(n), bcast(n);
  LaunchKernel(dim3(1), dim3(n), 0, [&] {
    const int t = static_cast<int>(ThreadIdx().x);
    float v = static_cast<float>(t);
    for (int m = 16; m > 0; m >>= 1) v += ShflXor(v, m);  // butterfly: every lane gets the sum
    sums[t] = v;
    bcast[t] = Shfl(static_cast<float>(t * 10), 5);  // lane 5 of this warp
  });
  ASSERT_EQ(GetLastError(), kSuccess);
  for (int t = 0; t < n; ++t) {
    const int w = t / 32;
    EXPECT_EQ(sums[t], static_cast<float>(32 * 32 * w + 31 * 32 / 2)) << t;
    EXPECT_EQ(bcast[t], static_cast<float>((w * 32 + 5) * 10)) << t;
  }
}

TEST(GpuSimRuntime, ThreadsThatReturnEarlyLeaveTheBarriers) {
  const int n = 128;
  std::vector<int> after(n, 0);
  LaunchKernel(dim3(2), dim3(n), 0, [&] {
    const int t = static_cast<int>(ThreadIdx().x);
    if (t >= 64) return;  // two whole warps leave
    (void)ShflXor(1.0f, 1);
    SyncThreads();
    after[t] += 1;
  });
  ASSERT_EQ(GetLastError(), kSuccess);
  for (int t = 0; t < n; ++t) EXPECT_EQ(after[t], t < 64 ? 2 : 0) << t;
}

TEST(GpuSimRuntime, ABarrierInDivergentCodeIsALaunchFailureNotAHang) {
  std::atomic<int> done{0};
  LaunchKernel(dim3(1), dim3(64), 0, [&] {
    if (ThreadIdx().x < 16) {
      (void)ShflXor(1.0f, 1);  // half of warp 0 waits here ...
    } else {
      SyncThreads();  // ... the rest of the block there
    }
    ++done;
  });
  EXPECT_EQ(GetLastError(), kErrorLaunchFailure);
  EXPECT_EQ(GetLastError(), kSuccess);  // reading the error clears it
  EXPECT_LT(done.load(), 64);
}

TEST(GpuSimRuntime, DynamicSharedMemoryIsPerLaunchAndStartsAsGarbage) {
  std::vector<float> first(64), total(2);
  LaunchKernel(dim3(2), dim3(64), 64 * sizeof(float), [&] {
    auto* s = static_cast<float*>(DynamicShared());
    const int t = static_cast<int>(ThreadIdx().x);
    if (BlockIdx().x == 0) first[t] = s[t];
    SyncThreads();
    s[t] = static_cast<float>(t);
    SyncThreads();
    if (t == 0) {
      float sum = 0.0f;
      for (int i = 0; i < 64; ++i) sum += s[i];
      total[BlockIdx().x] = sum;
    }
  });
  ASSERT_EQ(GetLastError(), kSuccess);
  for (float v : first) EXPECT_TRUE(std::isnan(v));
  EXPECT_EQ(total[0], 63.0f * 64.0f / 2.0f);
  EXPECT_EQ(total[1], 63.0f * 64.0f / 2.0f);
}

TEST(GpuSimRuntime, BadConfigurationsAreRefusedAndRunNothing) {
  int runs = 0;
  const auto body = [&] { ++runs; };
  LaunchKernel(dim3(1), dim3(1025), 0, body);  // more than 1024 threads per block
  EXPECT_EQ(GetLastError(), kErrorInvalidConfiguration);
  LaunchKernel(dim3(1, 65536), dim3(32), 0, body);  // grid y past 65535
  EXPECT_EQ(GetLastError(), kErrorInvalidConfiguration);
  LaunchKernel(dim3(0), dim3(32), 0, body);  // empty grid
  EXPECT_EQ(GetLastError(), kErrorInvalidConfiguration);
  LaunchKernel(dim3(1), dim3(32), 48 * 1024 + 4, body);  // past 48 KiB of dynamic shared memory
  EXPECT_EQ(GetLastError(), kErrorInvalidConfiguration);
  EXPECT_EQ(runs, 0);
  LaunchKernel(dim3(1), dim3(32), 48 * 1024, body);
  EXPECT_EQ(GetLastError(), kSuccess);
  EXPECT_EQ(runs, 32);
}

TEST(GpuSimRuntime, DeviceMemoryIsCountedAndFreshMemoryIsGarbage) {
  size_t free0 = 0, total = 0;
  ASSERT_EQ(MemGetInfo(&free0, &total), kSuccess);
  EXPECT_EQ(total, kTotalMemory);
  void* p = nullptr;
  ASSERT_EQ(Malloc(&p, 1000), kSuccess);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 256, 0u);
  EXPECT_TRUE(std::isnan(*static_cast<float*>(p)));
  size_t free1 = 0;
  ASSERT_EQ(MemGetInfo(&free1, nullptr), kSuccess);
  EXPECT_EQ(free0 - free1, 1024u);
  EXPECT_EQ(Free(p), kSuccess);
  EXPECT_EQ(Free(p), kErrorInvalidValue);  // not (any longer) an allocation
  void* huge = nullptr;
  EXPECT_EQ(Malloc(&huge, kTotalMemory + 1), kErrorMemoryAllocation);
}

}  // namespace
}  // namespace sextant::gpusim::rt
