// UTF-8 decoding, character classes and the GPT-2 pre-tokenizer split.
#include "engine/tokenizer/unicode.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sextant::unicode {
namespace {

std::vector<std::string> Split(std::string_view text) {
  std::vector<std::string> out;
  for (auto [off, len] : SplitGpt2(text)) out.emplace_back(text.substr(off, len));
  return out;
}

using Words = std::vector<std::string>;

TEST(Unicode, DecodeUtf8) {
  EXPECT_EQ(DecodeUtf8("A").kind, Utf8Char::kValid);
  Utf8Char euro = DecodeUtf8("\xE2\x82\xAC!");
  EXPECT_EQ(euro.kind, Utf8Char::kValid);
  EXPECT_EQ(euro.length, 3);
  EXPECT_EQ(euro.code_point, 0x20ACu);
  EXPECT_EQ(DecodeUtf8("\xF0\x9F\xA6\x99").code_point, 0x1F999u);
  EXPECT_EQ(DecodeUtf8("\xE2\x82").kind, Utf8Char::kIncomplete);
  EXPECT_EQ(DecodeUtf8("\xE2\x82"
                       "A")
                .kind,
            Utf8Char::kInvalid);
  EXPECT_EQ(DecodeUtf8("\xE2\x82"
                       "A")
                .length,
            2);                                                        // the maximal subpart
  EXPECT_EQ(DecodeUtf8("\xC0\x80").kind, Utf8Char::kInvalid);          // overlong
  EXPECT_EQ(DecodeUtf8("\xED\xA0\x80").kind, Utf8Char::kInvalid);      // surrogate
  EXPECT_EQ(DecodeUtf8("\xF4\x90\x80\x80").kind, Utf8Char::kInvalid);  // above U+10FFFF
  EXPECT_EQ(DecodeUtf8("\x80").kind, Utf8Char::kInvalid);
  std::string s;
  AppendUtf8(0x1F999, s);
  EXPECT_EQ(s, "\xF0\x9F\xA6\x99");
}

TEST(Unicode, Classes) {
  EXPECT_TRUE(IsLetter('a'));
  EXPECT_TRUE(IsLetter(0x0431));  // б
  EXPECT_TRUE(IsLetter(0x4E2D));  // 中
  EXPECT_FALSE(IsLetter('1'));
  EXPECT_TRUE(IsNumber(0x0663));  // Arabic-Indic three
  EXPECT_TRUE(IsNumber(0x00BD));  // ½ (No)
  EXPECT_FALSE(IsNumber('x'));
  EXPECT_TRUE(IsWhitespace(0x3000));
  EXPECT_TRUE(IsWhitespace('\n'));
  EXPECT_FALSE(IsWhitespace(0x200B));  // zero width space is not White_Space
}

TEST(Unicode, ByteMappingIsABijection) {
  for (int b = 0; b < 256; ++b) {
    EXPECT_EQ(CodePointToByte(ByteToCodePoint(static_cast<uint8_t>(b))), b);
  }
  EXPECT_EQ(ByteToCodePoint(' '), 0x120u);  // "Ġ"
  EXPECT_EQ(ByteToCodePoint('A'), static_cast<uint32_t>('A'));
}

TEST(Unicode, Gpt2Split) {
  EXPECT_EQ(Split("Hello world"), (Words{"Hello", " world"}));
  EXPECT_EQ(Split("I've been 'told he's"), (Words{"I", "'ve", " been", " '", "told", " he", "'s"}));
  EXPECT_EQ(Split("a  b"), (Words{"a", " ", " b"}));
  EXPECT_EQ(Split("a \n\n b"), (Words{"a", " \n\n", " b"}));
  EXPECT_EQ(Split("x   "), (Words{"x", "   "}));
  EXPECT_EQ(Split("abc123 !?.."), (Words{"abc", "123", " !?.."}));
  EXPECT_EQ(Split("\nword"), (Words{"\n", "word"}));
  EXPECT_EQ(Split(" 'RE"), (Words{" '", "RE"}));
  EXPECT_EQ(Split("нещо на"), (Words{"нещо", " на"}));
  EXPECT_EQ(Split("a\xFF\xFE b"), (Words{"a", "\xFF\xFE", " b"}));
  EXPECT_EQ(Split(""), Words{});
}

}  // namespace
}  // namespace sextant::unicode
