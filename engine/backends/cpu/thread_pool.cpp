// ThreadPool: a job is published through one atomic state word (generation, a closed flag and the
// number of workers inside the job). Workers spin on it for a short while, then sleep on a
// condition variable; a worker joins a job only while it is open, then claims chunks from a shared
// counter. The caller runs chunk 0 and claims the rest like a worker; once no chunk is left it
// closes the job and waits only for the workers that joined, so a worker the OS has not
// scheduled (a busy host) costs nothing: the caller has already done its share.
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

// state_ layout: generation in the high 32 bits, kClosed, and the joined workers in the low bits.
constexpr uint64_t kClosed = uint64_t{1} << 16;
constexpr uint64_t kActiveMask = kClosed - 1;
inline uint32_t Generation(uint64_t s) { return static_cast<uint32_t>(s >> 32); }

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, std::min(n_threads, 4096))) {
  workers_.reserve(n_threads_ - 1);
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  state_.store((uint64_t{++generation_} << 32) | kClosed);
  { std::lock_guard<std::mutex> lock(mu_); }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::Chunk(int64_t n, int index, int count, int64_t* begin, int64_t* end) {
  *begin = n * index / count;
  *end = n * (index + 1) / count;
}

void ThreadPool::RunChunk(int64_t c) {
  int64_t begin, end;
  if (job_grain_ > 0) {
    begin = c * job_grain_;
    end = std::min(job_n_, begin + job_grain_);
  } else {
    Chunk(job_n_, static_cast<int>(c), static_cast<int>(job_chunks_), &begin, &end);
  }
  if (begin < end) (*job_fn_)(begin, end);
}

void ThreadPool::RunClaimedChunks() {
  for (;;) {
    const int64_t c = next_chunk_.fetch_add(1, std::memory_order_relaxed);
    if (c >= job_chunks_) return;
    RunChunk(c);
  }
}

void ThreadPool::WorkerLoop() {
  uint32_t seen = 0;
  for (;;) {
    uint64_t s = state_.load(std::memory_order_acquire);
    if (Generation(s) == seen) {
      auto spin_until = std::chrono::steady_clock::now() + kSpinTime;
      int spins = 0;
      while (Generation(s = state_.load(std::memory_order_acquire)) == seen) {
        CpuRelax();
        if (++spins < 64) continue;
        spins = 0;
        // Let a thread that has work run first when the cores are oversubscribed.
        std::this_thread::yield();
        if (std::chrono::steady_clock::now() < spin_until) continue;
        std::unique_lock<std::mutex> lock(mu_);
        sleepers_.fetch_add(1);
        wake_.wait(lock, [&] { return Generation(state_.load()) != seen; });
        sleepers_.fetch_sub(1);
        spin_until = std::chrono::steady_clock::now() + kSpinTime;
      }
    }
    if (stop_.load()) return;
    // Join the job while it is open; a closed one is finished (or being finished) without us.
    bool joined = false;
    while ((s & kClosed) == 0) {
      if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire,
                                       std::memory_order_acquire)) {
        joined = true;
        break;
      }
    }
    seen = Generation(s);
    if (!joined) continue;
    RunClaimedChunks();
    state_.fetch_sub(1, std::memory_order_release);
  }
}

void ThreadPool::Run() {
  next_chunk_.store(1, std::memory_order_relaxed);  // chunk 0 is the caller's
  // seq_cst: pairs with the sleepers_ check below and the workers' predicate under mu_.
  state_.store(uint64_t{++generation_} << 32);
  if (sleepers_.load() > 0) {
    { std::lock_guard<std::mutex> lock(mu_); }
    wake_.notify_all();
  }
  RunChunk(0);
  RunClaimedChunks();
  // Every chunk is claimed: close the job and wait for the workers inside it.
  uint64_t s = state_.fetch_or(kClosed, std::memory_order_acq_rel) | kClosed;
  int spins = 0;
  while ((s & kActiveMask) != 0) {
    CpuRelax();
    if (++spins > 256) std::this_thread::yield();
    s = state_.load(std::memory_order_acquire);
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
  job_grain_ = 0;
  job_chunks_ = threads;
  Run();
}

void ThreadPool::ParallelForDynamic(int64_t n, int64_t grain,
                                    const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t chunks = (n + grain - 1) / grain;
  if (n_threads_ == 1 || chunks == 1) {
    for (int64_t b = 0; b < n; b += grain) fn(b, std::min(n, b + grain));
    return;
  }
  job_fn_ = &fn;
  job_n_ = n;
  job_grain_ = grain;
  job_chunks_ = chunks;
  Run();
}

}  // namespace sextant::cpu
