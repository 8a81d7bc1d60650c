// TimeRead: every thread XOR-folds its share of the regions' bytes, and the folds are combined
// into an atomic so the compiler cannot drop the reads. A share is read as 8 interleaved
// sub-streams with a software prefetch 512 bytes ahead in each: a single sequential stream per
// thread leaves DRAM bandwidth unused (about 13 GB/s against 25 on a 2-core Zen 3 guest), and
// a bound that the engine's own kernels can beat would be no bound.
#include "engine/backends/cpu/read_bandwidth.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>

#include "engine/backends/cpu/thread_pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <emmintrin.h>
#include <xmmintrin.h>
#endif

namespace sextant::cpu {
namespace {

constexpr int kStreams = 8;
constexpr uint64_t kPrefetchBytes = 512;

uint64_t FoldSequential(const uint8_t* p, uint64_t n) {
  uint64_t acc = 0;
  for (uint64_t i = 0; i < n; i += 8) {
    uint64_t v = 0;
    std::memcpy(&v, p + i, std::min<uint64_t>(8, n - i));
    acc ^= v;
  }
  return acc;
}

uint64_t Fold(const uint8_t* p, uint64_t n) {
  const uint64_t part = n / kStreams / 64 * 64;  // bytes of each sub-stream
#if defined(__x86_64__) || defined(__i386__)
  __m128i acc[kStreams];
  for (__m128i& a : acc) a = _mm_setzero_si128();
  for (uint64_t i = 0; i < part; i += 64) {
    for (int s = 0; s < kStreams; ++s) {
      const uint8_t* b = p + static_cast<uint64_t>(s) * part + i;
      // Past the end of the sub-stream the prefetch touches the next one (or at most 512 bytes
      // past the share, inside the same regions' mapping or ignored: prefetches never fault).
      _mm_prefetch(reinterpret_cast<const char*>(b + kPrefetchBytes), _MM_HINT_T0);
      const __m128i v0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b));
      const __m128i v1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 16));
      const __m128i v2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 32));
      const __m128i v3 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 48));
      acc[s] = _mm_xor_si128(acc[s], _mm_xor_si128(_mm_xor_si128(v0, v1), _mm_xor_si128(v2, v3)));
    }
  }
  __m128i r = acc[0];
  for (int s = 1; s < kStreams; ++s) r = _mm_xor_si128(r, acc[s]);
  uint64_t lanes[2];
  std::memcpy(lanes, &r, 16);
  uint64_t folded = lanes[0] ^ lanes[1];
#else
  uint64_t folded = 0;
  for (uint64_t i = 0; i < part; i += 8)
    for (int s = 0; s < kStreams; ++s)
      folded ^= FoldSequential(p + static_cast<uint64_t>(s) * part + i, 8);
#endif
  const uint64_t done = part * kStreams;
  return folded ^ FoldSequential(p + done, n - done);
}

// Folds bytes [begin, end) of the concatenation of `regions`.
uint64_t FoldRange(std::span<const std::span<const uint8_t>> regions, uint64_t begin,
                   uint64_t end) {
  uint64_t r = 0, at = 0;
  for (const std::span<const uint8_t>& reg : regions) {
    const uint64_t lo = std::max(begin, at), hi = std::min<uint64_t>(end, at + reg.size());
    if (lo < hi) r ^= Fold(reg.data() + (lo - at), hi - lo);
    at += reg.size();
    if (at >= end) break;
  }
  return r;
}

}  // namespace

ReadFigures TimeRead(std::span<const std::span<const uint8_t>> regions, int threads, int passes) {
  ReadFigures f;
  for (const std::span<const uint8_t>& r : regions) f.bytes += r.size();
  threads = std::max(threads, 1);
  passes = std::max(passes, 1);
  if (f.bytes == 0) return f;
  // The engine's own pool: the same kind of threads the kernels run on, started once (thread
  // start-up stays out of the timed passes).
  ThreadPool pool(threads);
  std::atomic<uint64_t> sink{0};
  double best = 0;
  for (int pass = 0; pass < passes; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.ParallelFor(threads, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const uint64_t b = f.bytes * static_cast<uint64_t>(i) / static_cast<uint64_t>(threads);
        const uint64_t e = f.bytes * static_cast<uint64_t>(i + 1) / static_cast<uint64_t>(threads);
        sink.fetch_xor(FoldRange(regions, b, e), std::memory_order_relaxed);
      }
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (pass == 0 || s < best) best = s;
  }
  f.best_seconds = best;
  f.gigabytes_per_s = best > 0 ? static_cast<double>(f.bytes) / best / 1e9 : 0;
  return f;
}

}  // namespace sextant::cpu
