// The one time module: RFC 3339 written and read back, offsets, malformed text named, and the
// short forms screens show.
#include "engine/base/time.h"

#include <gtest/gtest.h>

namespace sextant {
namespace {

constexpr TimeMs k2026 = 1767225600000;  // 2026-01-01T00:00:00Z

TEST(TimeTest, FormatsUtcWithAndWithoutMilliseconds) {
  EXPECT_EQ(FormatRfc3339(k2026), "2026-01-01T00:00:00Z");
  EXPECT_EQ(FormatRfc3339(k2026 + 3'723'456), "2026-01-01T01:02:03Z");
  EXPECT_EQ(FormatRfc3339Millis(k2026 + 3'723'456), "2026-01-01T01:02:03.456Z");
  EXPECT_EQ(FormatRfc3339Millis(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatRfc3339Millis(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatDate(k2026 - 1), "2025-12-31");
  EXPECT_EQ(FormatDate(k2026), "2026-01-01");
}

TEST(TimeTest, ParsesWhatItWritesAndAppliesOffsets) {
  for (TimeMs t : {TimeMs{0}, k2026, k2026 + 3'723'456, TimeMs{4102444799999}}) {
    EXPECT_EQ(*ParseRfc3339(FormatRfc3339Millis(t)), t);
    EXPECT_EQ(*ParseRfc3339(FormatRfc3339(t)), t - t % 1000);
  }
  EXPECT_EQ(*ParseRfc3339("2026-01-01T02:00:00+02:00"), k2026);
  EXPECT_EQ(*ParseRfc3339("2025-12-31T19:30:00-04:30"), k2026);
  EXPECT_EQ(*ParseRfc3339("2026-01-01t00:00:00.25z"), k2026 + 250);
  EXPECT_EQ(*ParseRfc3339("2026-01-01T00:00:00.123456789Z"), k2026 + 123);
}

TEST(TimeTest, MalformedTextIsAnErrorNamingWhere) {
  for (const char* bad :
       {"", "yesterday", "2026-01-01", "2026-01-01 00:00:00Z", "2026-01-01T00:00:00",
        "2026-13-01T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:00:00.Z",
        "2026-01-01T00:00:00+2:00", "2026-01-01T00:00:00Zjunk", "2026-1-01T00:00:00Z"}) {
    auto r = ParseRfc3339(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find("RFC 3339"), std::string::npos) << r.status().message();
  }
  EXPECT_NE(ParseRfc3339("2026-01-01T00:00:00Zjunk").status().message().find("offset 20"),
            std::string::npos);
}

TEST(TimeTest, AgesAndClockTimesForScreens) {
  const TimeMs now = k2026 + 12 * 3'600'000;
  EXPECT_EQ(FormatAge(0, now), "-");
  EXPECT_EQ(FormatAge(now + 5000, now), "0s");
  EXPECT_EQ(FormatAge(now - 119'000, now), "119s");
  EXPECT_EQ(FormatAge(now - 120'000, now), "2m");
  EXPECT_EQ(FormatAge(now - 7'200'000, now), "2h");
  EXPECT_EQ(FormatAge(now - 3 * 86'400'000LL, now), "3d");
  EXPECT_EQ(FormatClockTime(0, now), "-");
  EXPECT_EQ(FormatClockTime(k2026 + 3'723'000, now), "01:02:03Z");
  EXPECT_EQ(FormatClockTime(k2026 - 60'000, now), "2025-12-31 23:59Z");
  EXPECT_GT(NowMs(), k2026 - 365LL * 86'400'000);
}

}  // namespace
}  // namespace sextant
