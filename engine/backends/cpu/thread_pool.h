// A persistent pool of worker threads for the CPU kernels. ParallelFor splits [0, n) into one
// contiguous chunk per thread (static chunking); ParallelForDynamic splits it into many small
// chunks. Either way the calling thread runs chunk 0 and then, like the workers, claims chunks
// until none is left, and it waits only for workers that took part: a worker the OS has not
// scheduled (a busy host) delays nothing, the caller does its share. Workers spin briefly after
// a job so back-to-back jobs (a decode step is a few hundred matmuls of tens of microseconds
// each) start without a wake-up, then sleep.
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

  // Calls fn(begin, end) once for each chunk Chunk(n, i, min(n_threads(), n)) of [0, n), in
  // parallel (chunk 0 on the calling thread; a thread may run several chunks when another is
  // not scheduled); returns when all calls have returned. fn must not throw.
  void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

  // Calls fn(begin, end) on the chunks [0, grain), [grain, 2 grain), ... of [0, n) (the last one
  // shorter), each exactly once, claimed by whichever thread is free; a thread may run several.
  // Returns when all calls have returned. grain < 1 means 1. fn must not throw.
  void ParallelForDynamic(int64_t n, int64_t grain,
                          const std::function<void(int64_t, int64_t)>& fn);

  // The chunk of [0, n) that thread `index` of `count` gets (exposed for tests).
  static void Chunk(int64_t n, int index, int count, int64_t* begin, int64_t* end);

 private:
  void WorkerLoop();
  void Run();  // publishes the job set up in job_*, takes part, waits for it to finish
  void RunChunk(int64_t c);
  void RunClaimedChunks();

  const int n_threads_;
  std::vector<std::thread> workers_;

  // The current job; written by the caller before state_ publishes it (release), read by workers
  // after they join it (acquire). Nobody reads them once the job is closed and no worker is in.
  const std::function<void(int64_t, int64_t)>* job_fn_ = nullptr;
  int64_t job_n_ = 0;
  int64_t job_grain_ = 0;    // 0: static chunks Chunk(n, c, job_chunks_); else chunks of this size
  int64_t job_chunks_ = 0;   // chunks of the current job
  uint32_t generation_ = 0;  // caller side: the last published generation

  // Each on its own cache line: workers spin on state_, every thread bumps next_chunk_.
  // state_: generation << 32 | closed flag | workers inside the job.
  alignas(64) std::atomic<uint64_t> state_{0};
  alignas(64) std::atomic<int64_t> next_chunk_{0};  // next unclaimed chunk of the current job
  alignas(64) std::atomic<int> sleepers_{0};        // workers waiting on wake_
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable wake_;
};

}  // namespace sextant::cpu
