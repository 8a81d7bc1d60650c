// The memory-read baseline of a generation benchmark: how fast this machine streams a set of
// byte regions (a model's weights in their file mapping) with a given number of threads. A
// decode step must read every weight once, so bytes / best time bounds generation speed from
// above; `sextant bench` reports tokens/s against that bound, measured in the same run.
//
// Thread-safety: TimeRead is safe to call from any thread; it runs on a ThreadPool of its own.
#pragma once

#include <cstdint>
#include <span>

namespace sextant::cpu {

struct ReadFigures {
  uint64_t bytes = 0;          // bytes read per pass (the regions' total)
  double best_seconds = 0;     // fastest of the passes
  double gigabytes_per_s = 0;  // bytes / best_seconds / 1e9
};

// Reads every byte of `regions` once per pass, split evenly over `threads` threads (< 1 means
// 1), `passes` times (< 1 means 1), and reports the fastest pass. Each thread reads its share as
// several interleaved streams with software prefetch, the access pattern that gets the most of
// the memory system (one sequential stream per thread gets about half of it on some hosts). The
// regions must stay mapped and readable for the duration of the call.
ReadFigures TimeRead(std::span<const std::span<const uint8_t>> regions, int threads, int passes);

}  // namespace sextant::cpu
