// ThreadPool: a generation counter publishes each job; workers spin on it for a short while, then
// sleep on a condition variable. The caller wakes sleepers only when there are any, so a pool
// whose workers are still spinning dispatches a job with two atomic writes.
#include "engine/backends/cpu/thread_pool.h"

#include <algorithm>
#include <chrono>

namespace sextant::cpu {
namespace {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// How long an idle worker keeps spinning before it sleeps.
constexpr auto kSpinTime = std::chrono::microseconds(300);

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  workers_.reserve(n_threads_ - 1);
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  { std::lock_guard<std::mutex> lock(mu_); }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::Chunk(int64_t n, int index, int count, int64_t* begin, int64_t* end) {
  *begin = n * index / count;
  *end = n * (index + 1) / count;
}

void ThreadPool::RunChunk(int index) {
  int64_t begin, end;
  Chunk(job_n_, index, job_threads_, &begin, &end);
  if (begin < end) (*job_fn_)(begin, end);
}

void ThreadPool::WorkerLoop(int index) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t g = generation_.load();
    if (g == seen) {
      auto spin_until = std::chrono::steady_clock::now() + kSpinTime;
      int spins = 0;
      while ((g = generation_.load()) == seen) {
        CpuRelax();
        if (++spins < 64) continue;
        spins = 0;
        // Let a thread that has work run first when the cores are oversubscribed.
        std::this_thread::yield();
        if (std::chrono::steady_clock::now() < spin_until) continue;
        std::unique_lock<std::mutex> lock(mu_);
        sleepers_.fetch_add(1);
        wake_.wait(lock, [&] { return generation_.load() != seen; });
        sleepers_.fetch_sub(1);
        spin_until = std::chrono::steady_clock::now() + kSpinTime;
      }
    }
    seen = g;
    if (stop_.load()) return;
    // Every worker acknowledges every job (even one it has no chunk of), so the caller cannot
    // publish the next job while a worker still reads this one's fields.
    if (index < job_threads_) RunChunk(index);
    pending_.fetch_sub(1, std::memory_order_release);
  }
}

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  const int threads = static_cast<int>(std::min<int64_t>(n_threads_, n));
  if (threads == 1) {
    fn(0, n);
    return;
  }
  job_fn_ = &fn;
  job_n_ = n;
  job_threads_ = threads;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1);  // seq_cst: pairs with the sleepers_ check below
  if (sleepers_.load() > 0) {
    { std::lock_guard<std::mutex> lock(mu_); }
    wake_.notify_all();
  }
  RunChunk(0);
  int spins = 0;
  while (pending_.load(std::memory_order_acquire) != 0) {
    CpuRelax();
    if (++spins > 256) std::this_thread::yield();
  }
}

}  // namespace sextant::cpu
