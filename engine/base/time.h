// Time as the code base writes and reads it: milliseconds since the Unix epoch (TimeMs), RFC 3339
// text in UTC ("2026-01-02T03:04:05Z", with ".678" milliseconds where records need them), dates,
// and the short forms screens show (ages, clock times). One module, so every formatter agrees.
//
// Thread-safety: pure functions (gmtime_r / timegm); safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "engine/base/status.h"

namespace sextant {

// Milliseconds since the Unix epoch, UTC.
using TimeMs = int64_t;

// The system clock now.
TimeMs NowMs();

// "2026-01-02T03:04:05Z" (the milliseconds are dropped).
std::string FormatRfc3339(TimeMs t);
// "2026-01-02T03:04:05.678Z".
std::string FormatRfc3339Millis(TimeMs t);
// "2026-01-02": the UTC day of t.
std::string FormatDate(TimeMs t);

// Parses RFC 3339 date-times: "2026-01-02T03:04:05Z", with an optional fraction of a second
// (kept to the millisecond) and "Z" or a numeric offset ("+02:00", applied). A lowercase "t" or
// "z" is accepted, as RFC 3339 allows. INVALID_ARGUMENT naming the text and what is wrong.
Result<TimeMs> ParseRfc3339(std::string_view text);

// How long before `now` t was, in one unit: "12s", "5m", "3h", "2d" (under 2 minutes in seconds,
// under 2 hours in minutes, under 2 days in hours). "-" when t is 0 (never); a t after now
// reads "0s".
std::string FormatAge(TimeMs t, TimeMs now);
// A clock time for screens: "03:04:05Z" when t is on now's UTC day, else "2026-01-02 03:04Z";
// "-" when t is 0.
std::string FormatClockTime(TimeMs t, TimeMs now);

}  // namespace sextant
