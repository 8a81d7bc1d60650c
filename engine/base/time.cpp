#include "engine/base/time.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace sextant {
namespace {

std::tm UtcOf(TimeMs t) {
  // Floor division: a time before the epoch still names the second it falls in.
  const TimeMs secs = t >= 0 ? t / 1000 : -((-t + 999) / 1000);
  const std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return tm;
}

int MillisOf(TimeMs t) { return static_cast<int>(((t % 1000) + 1000) % 1000); }

Status Bad(std::string_view text, const std::string& why) {
  return Status::InvalidArgument("time '" + std::string(text) + "' is not RFC 3339: " + why);
}

// Reads exactly n digits at text[*pos].
bool Digits(std::string_view text, size_t* pos, int n, int* out) {
  if (*pos + static_cast<size_t>(n) > text.size()) return false;
  int v = 0;
  for (int i = 0; i < n; ++i) {
    const char c = text[*pos + static_cast<size_t>(i)];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *pos += static_cast<size_t>(n);
  *out = v;
  return true;
}

bool Expect(std::string_view text, size_t* pos, char c) {
  if (*pos >= text.size() || text[*pos] != c) return false;
  ++*pos;
  return true;
}

}  // namespace

TimeMs NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string FormatRfc3339(TimeMs t) {
  const std::tm tm = UtcOf(t);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::string FormatRfc3339Millis(TimeMs t) {
  const std::tm tm = UtcOf(t);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, MillisOf(t));
  return buf;
}

std::string FormatDate(TimeMs t) {
  const std::tm tm = UtcOf(t);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
  return buf;
}

Result<TimeMs> ParseRfc3339(std::string_view text) {
  size_t pos = 0;
  int year, month, day, hour, minute, second;
  if (!Digits(text, &pos, 4, &year) || !Expect(text, &pos, '-') || !Digits(text, &pos, 2, &month) ||
      !Expect(text, &pos, '-') || !Digits(text, &pos, 2, &day)) {
    return Bad(text, "expected YYYY-MM-DD at offset 0");
  }
  if (pos >= text.size() || (text[pos] != 'T' && text[pos] != 't')) {
    return Bad(text, "expected 'T' at offset " + std::to_string(pos));
  }
  ++pos;
  if (!Digits(text, &pos, 2, &hour) || !Expect(text, &pos, ':') ||
      !Digits(text, &pos, 2, &minute) || !Expect(text, &pos, ':') ||
      !Digits(text, &pos, 2, &second)) {
    return Bad(text, "expected hh:mm:ss at offset 11");
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return Bad(text, "a field is out of range");
  }
  int millis = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    const size_t start = pos;
    int scale = 100;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      millis += (text[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return Bad(text, "no digits after '.' at offset " + std::to_string(start));
  }
  int offset_minutes = 0;
  if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z')) {
    ++pos;
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    const int sign = text[pos] == '-' ? -1 : 1;
    ++pos;
    int oh, om;
    if (!Digits(text, &pos, 2, &oh) || !Expect(text, &pos, ':') || !Digits(text, &pos, 2, &om) ||
        oh > 23 || om > 59) {
      return Bad(text, "bad offset at offset " + std::to_string(pos));
    }
    offset_minutes = sign * (oh * 60 + om);
  } else {
    return Bad(text, "expected 'Z' or an offset at offset " + std::to_string(pos));
  }
  if (pos != text.size()) {
    return Bad(text, "unexpected text at offset " + std::to_string(pos));
  }
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = std::min(second, 59);  // a leap second reads as the second before it
  const TimeMs secs = static_cast<TimeMs>(timegm(&tm)) - TimeMs{offset_minutes} * 60;
  return secs * 1000 + millis;
}

std::string FormatAge(TimeMs t, TimeMs now) {
  if (t <= 0) return "-";
  const int64_t s = std::max<int64_t>(0, (now - t) / 1000);
  if (s < 120) return std::to_string(s) + "s";
  if (s < 7200) return std::to_string(s / 60) + "m";
  if (s < 172800) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

std::string FormatClockTime(TimeMs t, TimeMs now) {
  if (t <= 0) return "-";
  const std::tm tm = UtcOf(t);
  const std::tm now_tm = UtcOf(now);
  char buf[96];
  if (tm.tm_year == now_tm.tm_year && tm.tm_yday == now_tm.tm_yday) {
    std::snprintf(buf, sizeof buf, "%02d:%02d:%02dZ", tm.tm_hour, tm.tm_min, tm.tm_sec);
  } else {
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min);
  }
  return buf;
}

}  // namespace sextant
