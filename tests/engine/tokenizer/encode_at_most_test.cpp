// Tokenizer::EncodeAtMost: the same ids as Encode whenever they fit the limit, nullopt whenever
// they do not (with either vocabulary kind, user-defined tokens and BOS), and no work for a text
// that cannot fit.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"

namespace sextant {
namespace {

VocabData Llama() {
  VocabData v;
  v.kind = VocabKind::kLlama;
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    v.tokens.push_back(name);
    v.types.push_back(TokenType::kByte);
  }
  v.scores.assign(v.tokens.size(), 0.0f);
  const std::vector<std::pair<std::string, float>> pieces = {{"▁", -9},   {"a", -5},  {"b", -5},
                                                             {"c", -5},   {"ab", -2}, {"▁a", -3},
                                                             {"▁ab", -1}, {"bc", -4}, {"<tag>", 0}};
  for (const auto& [piece, score] : pieces) {
    v.tokens.push_back(piece);
    v.types.push_back(piece == "<tag>" ? TokenType::kUserDefined : TokenType::kNormal);
    v.scores.push_back(score);
  }
  v.bos_id = 1;
  v.eos_id = 2;
  v.unk_id = 0;
  return v;
}

VocabData Gpt2() {
  VocabData v;
  v.kind = VocabKind::kGpt2;
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    const uint32_t cp = printable ? static_cast<uint32_t>(b) : next++;
    std::string s;
    if (cp < 0x80) {
      s.push_back(static_cast<char>(cp));
    } else {
      s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    v.tokens.push_back(s);
  }
  for (const std::string m : {"a b", "ab c", "Ġ a"}) {
    std::string joined = m;
    joined.erase(joined.find(' '), 1);
    v.tokens.push_back(joined);
    v.merges.push_back(m);
  }
  v.types.assign(v.tokens.size(), TokenType::kNormal);
  return v;
}

std::vector<std::string> Texts() {
  std::vector<std::string> texts = {"",
                                    "a",
                                    "abc abc",
                                    "ab ab ab ab",
                                    "  a  b ",
                                    "x<tag>y<tag>",
                                    "héllo wörld",
                                    std::string("\xff\xfe a", 4)};
  std::mt19937 rng(7);
  const std::string alphabet = "abc <tag>\xc3\xa9";
  for (int i = 0; i < 40; ++i) {
    std::string t;
    const int n = static_cast<int>(rng() % 60);
    for (int k = 0; k < n; ++k) t += alphabet[rng() % alphabet.size()];
    texts.push_back(t);
  }
  return texts;
}

void ExpectSameAsEncode(const Tokenizer& tok) {
  for (const std::string& base : Texts()) {
    // Also with a control token's text inside, which parse_special (chat templates) turns into
    // that token.
    for (const std::string& text : {base, base + "</s>" + base}) {
      for (int flags = 0; flags < 8; ++flags) {
        const EncodeOptions options{(flags & 1) != 0, (flags & 2) != 0, (flags & 4) != 0};
        const std::vector<int32_t> full = tok.Encode(text, options);
        for (size_t limit = 0; limit <= full.size() + 2; ++limit) {
          const auto bounded = tok.EncodeAtMost(text, options, limit);
          const std::string what =
              "'" + text + "' flags " + std::to_string(flags) + " limit " + std::to_string(limit);
          if (full.size() <= limit) {
            ASSERT_TRUE(bounded.has_value()) << what;
            EXPECT_EQ(*bounded, full) << what;
          } else {
            EXPECT_FALSE(bounded.has_value()) << what;
          }
          if (!options.add_eos && !options.parse_special) {
            EXPECT_EQ(tok.EncodeAtMost(text, options.add_bos, limit), bounded) << what;
          }
        }
      }
    }
  }
}

TEST(EncodeAtMost, EqualsEncodeWithinTheLimitAndRefusesBeyondItLlama) {
  auto tok = Tokenizer::FromVocab(Llama());
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  ExpectSameAsEncode(**tok);
}

TEST(EncodeAtMost, EqualsEncodeWithinTheLimitAndRefusesBeyondItGpt2) {
  auto tok = Tokenizer::FromVocab(Gpt2());
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  ExpectSameAsEncode(**tok);
}

TEST(EncodeAtMost, AHugeTextIsRefusedAndAManyWordTextStopsEarly) {
  auto tok = Tokenizer::FromVocab(Llama());
  ASSERT_TRUE(tok.ok());
  // 64 MiB cannot fit in 512 ids of at most a few bytes each.
  const std::string huge(64 << 20, 'a');
  EXPECT_FALSE((*tok)->EncodeAtMost(huge, true, 512).has_value());
  // Within the byte bound but over the limit: refused all the same.
  std::string words;
  for (int i = 0; i < 2000; ++i) words += "c ";
  EXPECT_FALSE((*tok)->EncodeAtMost(words, true, 1000).has_value());
  EXPECT_TRUE((*tok)->EncodeAtMost(words, true, 5000).has_value());
}

}  // namespace
}  // namespace sextant
