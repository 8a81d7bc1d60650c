// Nearest-rank percentiles of measured values (benchmarks' latency figures).
// Thread-safety: a pure function of its arguments.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace sextant {

// The smallest of `values` with at least a fraction q (0..1) of them at or below it: q = 0.5 the
// median, q = 0.99 the p99, q = 0 the minimum, q = 1 the maximum. 0 when there are no values.
inline double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double rank = std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(values.size()));
  const size_t i = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return values[std::min(i, values.size() - 1)];
}

}  // namespace sextant
