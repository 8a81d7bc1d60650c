// UTF-8 and Unicode helpers for the tokenizers: strict UTF-8 decoding, the letter / number /
// whitespace classes of the GPT-2 pre-tokenizer, GPT-2's byte <-> code point mapping, and the
// pre-tokenizer split itself.
//
// Thread-safety: pure functions over immutable tables; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sextant::unicode {

// What lies at the start of some bytes, read as UTF-8.
struct Utf8Char {
  enum Kind : uint8_t {
    kValid,       // `length` bytes form the code point `code_point`
    kInvalid,     // `length` bytes (the maximal subpart, >= 1) can never start a valid character
    kIncomplete,  // the bytes are a valid but truncated prefix (only at the end of the input)
  };
  Kind kind;
  uint8_t length;
  uint32_t code_point;  // valid only for kValid
};
// REQUIRES: !bytes.empty().
Utf8Char DecodeUtf8(std::string_view bytes);

void AppendUtf8(uint32_t code_point, std::string& out);

// Unicode general categories (the order of gen_unicode_tables.py; kCn for unassigned code points).
enum GeneralCategory : uint8_t {
  kCn,
  kLu,
  kLl,
  kLt,
  kLm,
  kLo,
  kMn,
  kMc,
  kMe,
  kNd,
  kNl,
  kNo,
  kPc,
  kPd,
  kPs,
  kPe,
  kPi,
  kPf,
  kPo,
  kSm,
  kSc,
  kSk,
  kSo,
  kZs,
  kZl,
  kZp,
  kCc,
  kCf,
  kCs,
  kCo,
  kCategoryCount
};
GeneralCategory Category(uint32_t cp);  // kCn above U+10FFFF
// Bit (1u << category) of each category of a major class, for class masks.
constexpr uint32_t kMaskL = (1u << kLu) | (1u << kLl) | (1u << kLt) | (1u << kLm) | (1u << kLo);
constexpr uint32_t kMaskM = (1u << kMn) | (1u << kMc) | (1u << kMe);
constexpr uint32_t kMaskN = (1u << kNd) | (1u << kNl) | (1u << kNo);
constexpr uint32_t kMaskP =
    (1u << kPc) | (1u << kPd) | (1u << kPs) | (1u << kPe) | (1u << kPi) | (1u << kPf) | (1u << kPo);
constexpr uint32_t kMaskS = (1u << kSm) | (1u << kSc) | (1u << kSk) | (1u << kSo);
constexpr uint32_t kMaskZ = (1u << kZs) | (1u << kZl) | (1u << kZp);
constexpr uint32_t kMaskC = (1u << kCn) | (1u << kCc) | (1u << kCf) | (1u << kCs) | (1u << kCo);

// Unicode general categories L* and N*, and the White_Space property.
bool IsLetter(uint32_t cp);
bool IsNumber(uint32_t cp);
bool IsWhitespace(uint32_t cp);

// GPT-2's reversible mapping of the 256 byte values to printable code points (bytes that are
// printable Latin-1 map to themselves, the others to U+0100 and up).
uint32_t ByteToCodePoint(uint8_t byte);
// The byte for a code point of that mapping, or -1.
int CodePointToByte(uint32_t cp);

// Splits `text` as the GPT-2 pre-tokenizer regex does:
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// Bytes that are not valid UTF-8 count as single characters outside every class. Returns
// (offset, length) pairs that cover the text in order.
std::vector<std::pair<size_t, size_t>> SplitGpt2(std::string_view text);

}  // namespace sextant::unicode
