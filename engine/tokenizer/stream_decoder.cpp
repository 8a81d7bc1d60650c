#include <string>

#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/unicode.h"

namespace sextant {

namespace {
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
}  // namespace

std::string StreamDecoder::Push(int32_t id) {
  pending_.append(tokenizer_.TokenBytes(id));
  std::string out;
  std::string_view rest = pending_;
  while (!rest.empty()) {
    const unicode::Utf8Char c = unicode::DecodeUtf8(rest);
    if (c.kind == unicode::Utf8Char::kIncomplete) break;  // wait for the next token
    if (c.kind == unicode::Utf8Char::kValid) {
      out.append(rest.substr(0, c.length));
    } else {
      out.append(kReplacement);
    }
    rest.remove_prefix(c.length);
  }
  pending_.erase(0, pending_.size() - rest.size());
  return out;
}

std::string StreamDecoder::Flush() {
  std::string out;
  std::string_view rest = pending_;
  while (!rest.empty()) {
    const unicode::Utf8Char c = unicode::DecodeUtf8(rest);
    if (c.kind == unicode::Utf8Char::kValid) {
      out.append(rest.substr(0, c.length));
    } else {
      out.append(kReplacement);  // an invalid or truncated sequence: one U+FFFD each
    }
    rest.remove_prefix(c.length);
  }
  pending_.clear();
  return out;
}

}  // namespace sextant
