#include "engine/base/percentile.h"

#include <gtest/gtest.h>

#include <vector>

namespace sextant {
namespace {

TEST(PercentileTest, NearestRankOfUnsortedValues) {
  std::vector<double> v;
  for (int i = 100; i >= 1; --i) v.push_back(i);  // 100 .. 1
  EXPECT_EQ(Percentile(v, 0.5), 50);
  EXPECT_EQ(Percentile(v, 0.99), 99);
  EXPECT_EQ(Percentile(v, 1.0), 100);
  EXPECT_EQ(Percentile(v, 0.0), 1);
  EXPECT_EQ(Percentile({7, 3, 5}, 0.5), 5);
  EXPECT_EQ(Percentile({7, 3, 5}, 0.99), 7);
}

TEST(PercentileTest, NoValuesIsZero) { EXPECT_EQ(Percentile({}, 0.5), 0); }

}  // namespace
}  // namespace sextant
