// StreamDecoder: only complete UTF-8 leaves the decoder, whatever the token boundaries.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"

namespace sextant {
namespace {

// <unk> <s> </s>, bytes <0x00>.. at ids 3.., then "▁a" and "b".
std::unique_ptr<Tokenizer> ByteVocab() {
  VocabData v;
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    snprintf(name, sizeof name, "<0x%02X>", b);
    v.tokens.push_back(name);
    v.types.push_back(TokenType::kByte);
  }
  v.tokens.push_back("▁a");
  v.types.push_back(TokenType::kNormal);
  v.tokens.push_back("b");
  v.types.push_back(TokenType::kNormal);
  auto t = Tokenizer::FromVocab(std::move(v));
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return std::move(t).value();
}

int32_t Byte(uint8_t b) { return 3 + b; }

TEST(StreamDecoder, HoldsSplitCharactersUntilComplete) {
  auto t = ByteVocab();
  StreamDecoder d(*t);
  EXPECT_EQ(d.Push(t->Find("▁a")), " a");
  EXPECT_EQ(d.Push(Byte(0xE2)), "");  // € = E2 82 AC
  EXPECT_EQ(d.Push(Byte(0x82)), "");
  EXPECT_EQ(d.Push(Byte(0xAC)), "€");
  EXPECT_EQ(d.Push(Byte(0xF0)), "");  // 🦙 = F0 9F A6 99
  EXPECT_EQ(d.Push(Byte(0x9F)), "");
  EXPECT_EQ(d.Push(1), "");  // a control token in between adds nothing
  EXPECT_EQ(d.Push(Byte(0xA6)), "");
  EXPECT_EQ(d.Push(Byte(0x99)), "\xF0\x9F\xA6\x99");
  EXPECT_EQ(d.Push(t->Find("b")), "b");
  EXPECT_EQ(d.Flush(), "");
}

TEST(StreamDecoder, InvalidBytesBecomeReplacementCharacters) {
  auto t = ByteVocab();
  StreamDecoder d(*t);
  EXPECT_EQ(d.Push(Byte(0xFF)), "\xEF\xBF\xBD");
  EXPECT_EQ(d.Push(Byte(0xE2)), "");
  // E2 then 'b' can never complete: one U+FFFD for E2, then the 'b'.
  EXPECT_EQ(d.Push(t->Find("b")),
            "\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(d.Push(Byte(0xE2)), "");
  EXPECT_EQ(d.Push(Byte(0x82)), "");
  EXPECT_EQ(d.Flush(), "\xEF\xBF\xBD");  // a truncated character at the end
  EXPECT_EQ(d.Flush(), "");
  EXPECT_EQ(d.Push(t->Find("b")), "b");  // usable after Flush
}

TEST(StreamDecoder, ConcatenationEqualsDecodeForValidText) {
  auto t = ByteVocab();
  const std::string text = "\xE2\x82\xAC\xF0\x9F\xA6\x99\xC3\xA9z";
  std::vector<int32_t> ids = {t->Find("▁a")};
  for (unsigned char c : text) ids.push_back(Byte(c));
  StreamDecoder d(*t);
  std::string streamed;
  for (int32_t id : ids) {
    std::string piece = d.Push(id);
    streamed += piece;
  }
  streamed += d.Flush();
  EXPECT_EQ(streamed, " a" + text);
}

}  // namespace
}  // namespace sextant
