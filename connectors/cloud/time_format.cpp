#include "connectors/cloud/time_format.h"

#include <cctype>
#include <ctime>

namespace sextant::cloud {

namespace {

bool Digits(std::string_view s, size_t at, size_t n, int* out) {
  if (at + n > s.size()) return false;
  int v = 0;
  for (size_t i = at; i < at + n; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

}  // namespace

Result<TimePoint> ParseRfc3339(std::string_view s) {
  auto bad = [&](size_t at) {
    return Status::InvalidArgument("not an RFC 3339 time: \"" + std::string(s) + "\" (offset " +
                                   std::to_string(at) + ")");
  };
  int year, mon, day, hour, min, sec;
  if (!Digits(s, 0, 4, &year) || s.size() < 5 || s[4] != '-') return bad(0);
  if (!Digits(s, 5, 2, &mon) || s.size() < 8 || s[7] != '-') return bad(5);
  if (!Digits(s, 8, 2, &day)) return bad(8);
  if (s.size() < 11 || (s[10] != 'T' && s[10] != 't' && s[10] != ' ')) return bad(10);
  if (!Digits(s, 11, 2, &hour) || s.size() < 14 || s[13] != ':') return bad(11);
  if (!Digits(s, 14, 2, &min) || s.size() < 17 || s[16] != ':') return bad(14);
  if (!Digits(s, 17, 2, &sec)) return bad(17);
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) {
    return bad(0);
  }
  size_t i = 19;
  int64_t micros = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    int digits = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      if (digits < 6) micros = micros * 10 + (s[i] - '0');
      ++digits;
      ++i;
    }
    if (digits == 0) return bad(i);
    for (int d = digits; d < 6; ++d) micros *= 10;
  }
  int offset_min = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int oh, om;
    if (!Digits(s, i + 1, 2, &oh) || i + 3 >= s.size() || s[i + 3] != ':' ||
        !Digits(s, i + 4, 2, &om)) {
      return bad(i);
    }
    offset_min = (s[i] == '+' ? 1 : -1) * (oh * 60 + om);
    i += 6;
  } else {
    return bad(i);
  }
  if (i != s.size()) return bad(i);
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  const time_t t = timegm(&tm);
  return std::chrono::system_clock::from_time_t(t) - std::chrono::minutes(offset_min) +
         std::chrono::microseconds(micros);
}

std::string FormatRfc3339(TimePoint t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string FormatDate(TimePoint t) { return FormatRfc3339(t).substr(0, 10); }

int64_t ToUnixMs(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace sextant::cloud
