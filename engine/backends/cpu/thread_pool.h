// A persistent pool of worker threads for the CPU kernels: ParallelFor splits [0, n) into one
// contiguous chunk per thread (static chunking; the calling thread runs chunk 0) and returns when
// every chunk is done. Workers spin briefly after a job so back-to-back jobs (a decode step is a
// few hundred matmuls of tens of microseconds each) start without a wake-up, then sleep.
//
// Thread-safety: one ParallelFor at a time per pool (callers serialize their use of a pool);
// ParallelFor must not be called from inside a job of the same pool. Destruction joins the
// workers; it must not race with a running ParallelFor.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace sextant::cpu {

class ThreadPool {
 public:
  // n_threads counts the calling thread; values < 1 mean 1 (no workers: everything runs inline).
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int n_threads() const { return n_threads_; }

  // Calls fn(begin, end) on disjoint, contiguous, non-empty ranges that together cover [0, n),
  // at most one per thread, in parallel; returns when all calls have returned. fn must not throw.
  void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

  // The chunk of [0, n) that thread `index` of `count` gets (exposed for tests).
  static void Chunk(int64_t n, int index, int count, int64_t* begin, int64_t* end);

 private:
  void WorkerLoop(int index);
  void RunChunk(int index);

  const int n_threads_;
  std::vector<std::thread> workers_;

  // The current job; written by the caller before generation_ is bumped (release), read by
  // workers after they observe the new generation (acquire).
  const std::function<void(int64_t, int64_t)>* job_fn_ = nullptr;
  int64_t job_n_ = 0;
  int job_threads_ = 0;  // threads that take part in the current job (<= n_threads_)

  std::atomic<uint64_t> generation_{0};  // bumped once per job
  std::atomic<int> pending_{0};          // workers still running the current job
  std::atomic<int> sleepers_{0};         // workers waiting on wake_
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable wake_;
};

}  // namespace sextant::cpu
