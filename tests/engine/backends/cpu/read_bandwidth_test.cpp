// TimeRead: the bandwidth baseline `sextant bench` compares generation with.
#include "engine/backends/cpu/read_bandwidth.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <span>
#include <vector>

namespace sextant::cpu {
namespace {

TEST(ReadBandwidthTest, CountsEveryByteOfOddSizedRegionsAndReportsAConsistentRate) {
  std::vector<uint8_t> a(1 << 20, 1), b(4097, 2), c(3, 3);
  const std::vector<std::span<const uint8_t>> regions = {a, b, c};
  for (int threads : {1, 2, 7}) {
    const ReadFigures f = TimeRead(regions, threads, 2);
    EXPECT_EQ(f.bytes, a.size() + b.size() + c.size()) << threads << " threads";
    ASSERT_GT(f.best_seconds, 0.0);
    EXPECT_DOUBLE_EQ(f.gigabytes_per_s, static_cast<double>(f.bytes) / f.best_seconds / 1e9);
  }
}

TEST(ReadBandwidthTest, NothingToReadIsZeroNotADivisionByZero) {
  const ReadFigures f = TimeRead({}, 2, 3);
  EXPECT_EQ(f.bytes, 0u);
  EXPECT_EQ(f.gigabytes_per_s, 0.0);
}

TEST(ReadBandwidthTest, MoreThreadsThanBytesStillReadsEachByteOnce) {
  std::vector<uint8_t> a(5, 9);
  const std::vector<std::span<const uint8_t>> regions = {a};
  const ReadFigures f = TimeRead(regions, 16, 1);
  EXPECT_EQ(f.bytes, 5u);
}

}  // namespace
}  // namespace sextant::cpu
