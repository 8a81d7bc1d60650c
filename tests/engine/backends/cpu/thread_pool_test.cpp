#include "engine/backends/cpu/thread_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

namespace sextant::cpu {
namespace {

// Every index of [0, n) is visited exactly once, by the static chunks Chunk(n, i, threads).
TEST(CpuThreadPool, ParallelForCoversEveryIndexOnce) {
  for (int threads : {1, 2, 3, 4}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.n_threads(), threads);
    for (int64_t n : {0, 1, 2, 3, 5, 7, 64, 1001}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::mutex mu;
      std::set<std::pair<int64_t, int64_t>> ranges;
      pool.ParallelFor(n, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
        std::lock_guard<std::mutex> lock(mu);
        ranges.emplace(b, e);
      });
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[static_cast<size_t>(i)].load(), 1) << n;
      const int count = static_cast<int>(std::min<int64_t>(threads, n));
      std::set<std::pair<int64_t, int64_t>> expected;
      for (int c = 0; c < count; ++c) {
        int64_t b, e;
        ThreadPool::Chunk(n, c, count, &b, &e);
        expected.emplace(b, e);
      }
      EXPECT_EQ(ranges, expected) << n;
    }
  }
}

// Dynamic jobs: every index once, in chunks of `grain` (the last shorter), whoever runs them.
TEST(CpuThreadPool, DynamicChunksCoverEveryIndexOnce) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 5, 64, 1001}) {
      for (int64_t grain : {0, 1, 3, 16, 2000}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        std::mutex mu;
        std::vector<std::pair<int64_t, int64_t>> ranges;
        pool.ParallelForDynamic(n, grain, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
          std::lock_guard<std::mutex> lock(mu);
          ranges.emplace_back(b, e);
        });
        for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[static_cast<size_t>(i)].load(), 1);
        const int64_t g = std::max<int64_t>(grain, 1);
        EXPECT_EQ(static_cast<int64_t>(ranges.size()), (n + g - 1) / g);
        for (const auto& [b, e] : ranges) {
          EXPECT_EQ(b % g, 0);
          EXPECT_EQ(e, std::min(n, b + g));
        }
      }
    }
  }
}

// A worker stuck in a chunk does not stop the caller from taking all the remaining chunks: the
// worker's first chunk waits (bounded) until the caller has run the other 39.
TEST(CpuThreadPool, DynamicChunksFlowAroundAStuckThread) {
  ThreadPool pool(2);
  const std::thread::id caller = std::this_thread::get_id();
  std::atomic<int> by_caller{0};
  std::atomic<int> by_worker{0};
  pool.ParallelForDynamic(40, 1, [&](int64_t, int64_t) {
    if (std::this_thread::get_id() == caller) {
      by_caller.fetch_add(1);
      return;
    }
    if (by_worker.fetch_add(1) == 0) {
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (by_caller.load() < 39 && std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
  });
  EXPECT_EQ(by_caller.load() + by_worker.load(), 40);
  EXPECT_GE(by_caller.load(), 39);
}

TEST(CpuThreadPool, StaticChunksAreBalancedAndOrdered) {
  int64_t b0, e0, b1, e1;
  ThreadPool::Chunk(10, 0, 3, &b0, &e0);
  ThreadPool::Chunk(10, 1, 3, &b1, &e1);
  EXPECT_EQ(b0, 0);
  EXPECT_EQ(e0, b1);
  int64_t b2, e2;
  ThreadPool::Chunk(10, 2, 3, &b2, &e2);
  EXPECT_EQ(e2, 10);
  EXPECT_LE(e2 - b2 - (e0 - b0), 1);
}

TEST(CpuThreadPool, CallerRunsTheFirstChunk) {
  ThreadPool pool(2);
  std::thread::id first;
  pool.ParallelFor(2, [&](int64_t b, int64_t) {
    if (b == 0) first = std::this_thread::get_id();
  });
  EXPECT_EQ(first, std::this_thread::get_id());
}

// Many short jobs back to back (the decode pattern) and jobs after the workers went to sleep.
TEST(CpuThreadPool, ReusedAcrossManyJobs) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  int64_t expected = 0;
  for (int job = 0; job < 5000; ++job) {
    const int64_t n = 1 + job % 9;
    pool.ParallelFor(n, [&](int64_t b, int64_t e) {
      int64_t s = 0;
      for (int64_t i = b; i < e; ++i) s += i + job;
      sum.fetch_add(s);
    });
    for (int64_t i = 0; i < n; ++i) expected += i + job;
  }
  EXPECT_EQ(sum.load(), expected);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));  // let the workers sleep
  std::atomic<int> calls{0};
  pool.ParallelFor(3, [&](int64_t, int64_t) { calls.fetch_add(1); });
  EXPECT_EQ(calls.load(), pool.n_threads());
}

TEST(CpuThreadPool, DestroysCleanlyIdleOrRightAfterWork) {
  for (int i = 0; i < 50; ++i) {
    ThreadPool pool(4);
    if (i % 2 == 0) {
      std::atomic<int> n{0};
      pool.ParallelFor(100, [&](int64_t b, int64_t e) { n.fetch_add(static_cast<int>(e - b)); });
      EXPECT_EQ(n.load(), 100);
    }
  }
  ThreadPool single(0);  // clamps to 1: runs inline
  EXPECT_EQ(single.n_threads(), 1);
  int64_t seen = -1;
  single.ParallelFor(5, [&](int64_t b, int64_t e) { seen = e - b; });
  EXPECT_EQ(seen, 5);
}

}  // namespace
}  // namespace sextant::cpu
