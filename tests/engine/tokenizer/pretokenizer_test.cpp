// The pre-tokenizer regex engine: the families' splits on cases whose answer is known by hand,
// agreement with the hand-written GPT-2 split on random text, and errors for what the engine
// does not support (reference ids for whole tokenizers: hf_reference_test.cpp).
#include "engine/tokenizer/pretokenizer.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "engine/tokenizer/unicode.h"

namespace sextant::unicode {
namespace {

std::vector<std::string> Pieces(std::string_view name, std::string_view text) {
  auto p = PreTokenizer::ForName(name);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  std::vector<std::string> out;
  if (!p.ok()) return out;
  for (auto [off, len] : p->Split(text)) out.emplace_back(text.substr(off, len));
  return out;
}

using V = std::vector<std::string>;

TEST(PreTokenizer, Llama3GroupsDigitsByThreeAndMatchesContractionsInAnyCase) {
  EXPECT_EQ(Pieces("llama-bpe", "12345 I'M you'Re"), (V{"123", "45", " I", "'M", " you", "'Re"}));
  EXPECT_EQ(Pieces("llama-bpe", "a\n\n  b"), (V{"a", "\n\n", " ", " b"}));
  EXPECT_EQ(Pieces("llama-bpe", "x  "), (V{"x", "  "}));
  EXPECT_EQ(Pieces("llama-bpe", "!!\n\nok"), (V{"!!\n\n", "ok"}));
  EXPECT_TRUE(PreTokenizer::ForName("llama-bpe")->ignore_merges());
}

TEST(PreTokenizer, Qwen2SplitsEveryDigit) {
  EXPECT_EQ(Pieces("qwen2", "x=123"), (V{"x", "=", "1", "2", "3"}));
  EXPECT_FALSE(PreTokenizer::ForName("qwen2")->ignore_merges());
}

TEST(PreTokenizer, Gpt2ContractionsAreLowerCaseOnly) {
  EXPECT_EQ(Pieces("gpt-2", "I'M it's"), (V{"I", "'", "M", " it", "'s"}));
}

TEST(PreTokenizer, StarcoderIsolatesDigitsBeforeTheGpt2Split) {
  EXPECT_EQ(Pieces("starcoder", "v12 x"), (V{"v", "1", "2", " x"}));
}

TEST(PreTokenizer, FalconGroupsThreeDigitsOnTheMappedBytes) {
  EXPECT_EQ(Pieces("falcon", "a+b 12345"), (V{"a", "+", "b", " ", "123", "45"}));
}

TEST(PreTokenizer, DeepseekCoderSplitsLinesLettersPunctuationAndDigits) {
  EXPECT_EQ(Pieces("deepseek-coder", "if x:\n  y=42"),
            (V{"if", " x", ":", "\n", " ", " y", "=", "4", "2"}));
}

TEST(PreTokenizer, InvalidUtf8BytesAreCharactersOfNoClass) {
  EXPECT_EQ(Pieces("llama-bpe", std::string("ab\xFF\xFE"
                                            "cd")),
            (V{"ab", "\xFF\xFE", "cd"}));
}

TEST(PreTokenizer, TheEngineAgreesWithTheHandWrittenGpt2Split) {
  // Random strings over an alphabet of every class the pattern distinguishes.
  const std::vector<std::string> alphabet = {"a", "Z", "é", "中", "1",  "٣", " ", "  ", "\n",  "\t",
                                             "'", "s", "t", "re", "ll", "!", "-", "😀",  "\xFF"};
  auto gpt2 = PreTokenizer::ForName("gpt-2");
  ASSERT_TRUE(gpt2.ok());
  std::mt19937 rng(7);
  for (int iter = 0; iter < 2000; ++iter) {
    std::string text;
    const int n = static_cast<int>(rng() % 24);
    for (int i = 0; i < n; ++i) text += alphabet[rng() % alphabet.size()];
    ASSERT_EQ(gpt2->Split(text), SplitGpt2(text)) << ::testing::PrintToString(text);
  }
}

TEST(PreTokenizer, UnknownNamesAreRefusedByName) {
  auto p = PreTokenizer::ForName("tekken");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(p.status().message().find("'tekken'"), std::string::npos);
  EXPECT_NE(p.status().message().find("llama-bpe"), std::string::npos);  // lists the supported
}

TEST(SplitPattern, UnsupportedSyntaxIsAnErrorNamingTheOffset) {
  for (const char* bad : {"a+?", "a++", "(?<=a)b", "\\1", "[a-", "(ab", "ab)", "\\p{Xx}", "[z-a]",
                          "(?:)*", "a{3,2}"}) {
    auto p = SplitPattern::Compile(bad);
    EXPECT_FALSE(p.ok()) << "accepted: " << bad;
    if (!p.ok()) {
      EXPECT_NE(p.status().message().find("regex:"), std::string::npos) << bad;
    }
  }
}

TEST(SplitPattern, LeftmostFirstAlternationAndGreedyBacktracking) {
  const CodePoints c = CodePoints::Decode("   x");
  auto p = SplitPattern::Compile("\\s+(?!\\S)|\\s+");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->MatchAt(c, 0, c.cp.size(), 0), 2);  // leaves the last space to the word
  auto q = SplitPattern::Compile("a|ab");
  const CodePoints ab = CodePoints::Decode("ab");
  EXPECT_EQ(q->MatchAt(ab, 0, 2, 0), 1);  // the first alternative wins, not the longest
  auto r = SplitPattern::Compile("(?i:'ll)\\p{Lu}{1,3}$");
  const CodePoints s = CodePoints::Decode("'LlABCD");
  EXPECT_EQ(r->MatchAt(s, 0, s.cp.size(), 0), -1);  // {1,3} then $ fails on four capitals
  const CodePoints s2 = CodePoints::Decode("'LlABC");
  EXPECT_EQ(r->MatchAt(s2, 0, s2.cp.size(), 0), 6);
}

}  // namespace
}  // namespace sextant::unicode
