#include "engine/tokenizer/unicode.h"

#include <algorithm>
#include <array>
#include <iterator>

namespace sextant::unicode {
namespace {

struct CategoryRun {
  uint32_t first;
  uint8_t category;
};

#include "engine/tokenizer/unicode_tables.inc"

// Categories of U+0000..U+00FF, looked up directly.
struct Latin1Categories {
  std::array<uint8_t, 256> cat{};
  Latin1Categories() {
    size_t r = 0;
    for (uint32_t cp = 0; cp < 256; ++cp) {
      while (r + 1 < std::size(kCategoryRuns) && kCategoryRuns[r + 1].first <= cp) ++r;
      cat[cp] = kCategoryRuns[r].category;
    }
  }
};

bool IsContinuation(uint8_t b) { return (b & 0xC0) == 0x80; }

struct ByteMapping {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 512> to_byte{};  // every mapped code point is below U+0200
};

ByteMapping BuildByteMapping() {
  ByteMapping m;
  m.to_byte.fill(-1);
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    m.to_cp[b] = printable ? static_cast<uint32_t>(b) : next++;
    m.to_byte[m.to_cp[b]] = static_cast<int16_t>(b);
  }
  return m;
}

const ByteMapping& Mapping() {
  static const ByteMapping mapping = BuildByteMapping();
  return mapping;
}

}  // namespace

Utf8Char DecodeUtf8(std::string_view bytes) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t n = bytes.size();
  const uint8_t b0 = p[0];
  if (b0 < 0x80) return {Utf8Char::kValid, 1, b0};
  int need;
  uint32_t cp;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;  // no overlong forms
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;  // no overlong forms
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return {Utf8Char::kInvalid, 1, 0};
  }
  for (int i = 1; i <= need; ++i) {
    if (static_cast<size_t>(i) >= n) return {Utf8Char::kIncomplete, static_cast<uint8_t>(i), 0};
    const uint8_t b = p[i];
    const bool ok = i == 1 ? (b >= lo && b <= hi) : IsContinuation(b);
    if (!ok) return {Utf8Char::kInvalid, static_cast<uint8_t>(i), 0};
    cp = (cp << 6) | (b & 0x3F);
  }
  return {Utf8Char::kValid, static_cast<uint8_t>(need + 1), cp};
}

void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

GeneralCategory Category(uint32_t cp) {
  static const Latin1Categories latin1;
  if (cp < 256) return static_cast<GeneralCategory>(latin1.cat[cp]);
  if (cp > 0x10FFFF) return kCn;
  auto it = std::upper_bound(std::begin(kCategoryRuns), std::end(kCategoryRuns), cp,
                             [](uint32_t c, const CategoryRun& r) { return c < r.first; });
  return static_cast<GeneralCategory>((it - 1)->category);
}

bool IsLetter(uint32_t cp) {
  if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  return ((1u << Category(cp)) & kMaskL) != 0;
}

bool IsNumber(uint32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return ((1u << Category(cp)) & kMaskN) != 0;
}

bool IsWhitespace(uint32_t cp) {
  // The White_Space property (stable since Unicode 6.3).
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

uint32_t ByteToCodePoint(uint8_t byte) { return Mapping().to_cp[byte]; }

int CodePointToByte(uint32_t cp) { return cp < 512 ? Mapping().to_byte[cp] : -1; }

std::vector<std::pair<size_t, size_t>> SplitGpt2(std::string_view text) {
  // Decode once; an invalid byte is a character of its own in no class.
  constexpr uint32_t kOther = 0xFFFFFFFF;
  constexpr uint8_t kLetter = 1, kNumber = 2, kSpace = 4;
  struct Cp {
    uint32_t cp;
    uint32_t offset;
    uint8_t cls;
  };
  std::vector<Cp> cps;
  cps.reserve(text.size() + 1);
  for (size_t off = 0; off < text.size();) {
    Utf8Char c = DecodeUtf8(text.substr(off));
    uint32_t cp = c.kind == Utf8Char::kValid ? c.code_point : kOther;
    size_t len = c.kind == Utf8Char::kValid ? c.length : 1;
    uint8_t cls = 0;
    if (cp != kOther) {
      if (IsLetter(cp)) {
        cls = kLetter;
      } else if (IsNumber(cp)) {
        cls = kNumber;
      } else if (IsWhitespace(cp)) {
        cls = kSpace;
      }
    }
    cps.push_back({cp, static_cast<uint32_t>(off), cls});
    off += len;
  }
  const size_t n = cps.size();
  cps.push_back({kOther, static_cast<uint32_t>(text.size()), 0});  // sentinel

  std::vector<std::pair<size_t, size_t>> out;
  size_t start = 0;
  auto emit = [&](size_t end) {
    out.emplace_back(cps[start].offset, cps[end].offset - cps[start].offset);
    start = end;
  };
  auto cp_at = [&](size_t i) { return i < n ? cps[i].cp : kOther; };
  while (start < n) {
    const uint32_t c = cps[start].cp;
    // 's|'t|'re|'ve|'m|'ll|'d
    if (c == '\'' && start + 1 < n) {
      const uint32_t c1 = cp_at(start + 1);
      if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
        emit(start + 2);
        continue;
      }
      const uint32_t c2 = cp_at(start + 2);
      if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
        emit(start + 3);
        continue;
      }
    }
    // An optional leading space, then a run of one class.
    size_t body = (c == ' ' && start + 1 < n) ? start + 1 : start;
    const uint8_t cls = cps[body].cls;
    if (cls == kLetter || cls == kNumber) {  //  ?\p{L}+ |  ?\p{N}+
      size_t end = body;
      while (end < n && cps[end].cls == cls) ++end;
      emit(end);
      continue;
    }
    if (cls == 0) {  //  ?[^\s\p{L}\p{N}]+
      size_t end = body;
      while (end < n && cps[end].cls == 0) ++end;
      emit(end);
      continue;
    }
    // \s+(?!\S)|\s+ : a run of whitespace, leaving its last character to a following word.
    size_t end = start;
    while (end < n && cps[end].cls == kSpace) ++end;
    if (end - start > 1 && end < n) --end;
    emit(end);
  }
  return out;
}

}  // namespace sextant::unicode
