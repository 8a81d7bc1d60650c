// TimeRead: every thread XOR-folds its share of the regions' bytes, eight 64-bit lanes at a time
// (independent chains, so loads are never waiting on arithmetic), and the folds are combined so
// the compiler cannot drop the reads (the combined fold goes to an atomic).
#include "engine/backends/cpu/read_bandwidth.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

namespace sextant::cpu {
namespace {

uint64_t Fold(const uint8_t* p, uint64_t n) {
  uint64_t acc[8] = {};
  uint64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    uint64_t v[8];
    std::memcpy(v, p + i, 64);
    for (int k = 0; k < 8; ++k) acc[k] ^= v[k];
  }
  for (; i < n; ++i) acc[0] ^= p[i];
  uint64_t r = 0;
  for (uint64_t a : acc) r ^= a;
  return r;
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
  std::atomic<uint64_t> sink{0};
  double best = 0;
  for (int pass = 0; pass < passes; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> workers;
    auto share = [&](int i) {
      const uint64_t b = f.bytes * static_cast<uint64_t>(i) / static_cast<uint64_t>(threads);
      const uint64_t e = f.bytes * static_cast<uint64_t>(i + 1) / static_cast<uint64_t>(threads);
      sink.fetch_xor(FoldRange(regions, b, e), std::memory_order_relaxed);
    };
    for (int i = 1; i < threads; ++i) workers.emplace_back(share, i);
    share(0);
    for (std::thread& w : workers) w.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (pass == 0 || s < best) best = s;
  }
  f.best_seconds = best;
  f.gigabytes_per_s = best > 0 ? static_cast<double>(f.bytes) / best / 1e9 : 0;
  return f;
}

}  // namespace sextant::cpu
