// RFC 3339 / ISO 8601 times as cloud APIs write them ("2026-01-02T03:04:05Z",
// "2026-01-02T03:04:05.123Z", "2026-01-02T03:04:05+00:00"), and back.
// Thread-safety: pure functions.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "engine/base/status.h"

namespace sextant::cloud {

using TimePoint = std::chrono::system_clock::time_point;

// Parses a UTC time with an optional fraction and a "Z" or numeric offset. An error names the
// text and the offset where it stops making sense.
Result<TimePoint> ParseRfc3339(std::string_view s);
// "2026-01-02T03:04:05Z" (whole seconds, UTC).
std::string FormatRfc3339(TimePoint t);
// "2026-01-02" (UTC).
std::string FormatDate(TimePoint t);
int64_t ToUnixMs(TimePoint t);

}  // namespace sextant::cloud
