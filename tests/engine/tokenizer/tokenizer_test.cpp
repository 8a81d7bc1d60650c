// Tokenizers on vocabularies built in code: SentencePiece-style merges by score, byte fallback,
// byte-level BPE by merge rank, special ids, decoding, and rejection of malformed vocabularies.
#include "engine/tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace sextant {
namespace {

using Ids = std::vector<int32_t>;

// <unk> <s> </s>, the 256 byte tokens (ids 3..258), then `pieces` with their scores.
VocabData LlamaVocab(const std::vector<std::pair<std::string, float>>& pieces) {
  VocabData v;
  v.kind = VocabKind::kLlama;
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    snprintf(name, sizeof name, "<0x%02X>", b);
    v.tokens.push_back(name);
    v.types.push_back(TokenType::kByte);
  }
  v.scores.assign(v.tokens.size(), 0.0f);
  for (const auto& [piece, score] : pieces) {
    v.tokens.push_back(piece);
    v.types.push_back(TokenType::kNormal);
    v.scores.push_back(score);
  }
  return v;
}

constexpr int32_t kByte0 = 3;  // id of <0x00> in LlamaVocab
int32_t ByteId(uint8_t b) { return kByte0 + b; }

std::unique_ptr<Tokenizer> Build(VocabData v) {
  auto t = Tokenizer::FromVocab(std::move(v));
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? std::move(t).value() : nullptr;
}

// Ids of pieces, by text.
Ids IdsOf(const Tokenizer& t, const std::vector<std::string>& pieces) {
  Ids ids;
  for (const auto& p : pieces) {
    ids.push_back(t.Find(p));
    EXPECT_GE(ids.back(), 0) << "no piece " << p;
  }
  return ids;
}

TEST(TokenizerLlama, MergesTheHighestScoringPairFirst) {
  auto build = [](float ab, float bc) {
    VocabData v = LlamaVocab({{"a", -5}, {"b", -5}, {"c", -5}, {"ab", ab}, {"bc", bc}, {"▁", -9}});
    v.add_space_prefix = false;
    return Build(std::move(v));
  };
  auto bc_wins = build(-2, -1);
  auto ab_wins = build(-1, -2);
  auto tie = build(-1, -1);
  ASSERT_TRUE(bc_wins && ab_wins && tie);
  EXPECT_EQ(bc_wins->Encode("abc", false), IdsOf(*bc_wins, {"a", "bc"}));
  EXPECT_EQ(ab_wins->Encode("abc", false), IdsOf(*ab_wins, {"ab", "c"}));
  EXPECT_EQ(tie->Encode("abc", false), IdsOf(*tie, {"ab", "c"}));  // the leftmost pair wins
  // Without a space prefix nothing is added or stripped.
  EXPECT_EQ(tie->Decode(tie->Encode(" abc", true)), " abc");
}

TEST(TokenizerLlama, SpacePrefixAndSpacesBecomeMarkers) {
  auto t = Build(LlamaVocab(
      {{"▁", -10}, {"h", -10}, {"i", -10}, {"▁h", -3}, {"hi", -4}, {"▁hi", -1}, {"▁▁", -2}}));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->Encode("hi hi", false), IdsOf(*t, {"▁hi", "▁hi"}));
  EXPECT_EQ(t->Encode("hi hi", true), (Ids{1, t->Find("▁hi"), t->Find("▁hi")}));
  EXPECT_EQ(t->Encode(" hi", false), IdsOf(*t, {"▁▁", "hi"}));
  EXPECT_EQ(t->Encode("", false), Ids{});
  EXPECT_EQ(t->Encode("", true), Ids{1});
  // Decoding drops the prefix space once, with or without BOS.
  for (const char* s : {"hi hi", " hi", "  hi  ", "hi"}) {
    EXPECT_EQ(t->Decode(t->Encode(s, false)), s);
    EXPECT_EQ(t->Decode(t->Encode(s, true)), s);
  }
}

TEST(TokenizerLlama, MergesAcrossWordsWhenTheVocabularyHasSuchPieces) {
  // Words are encoded one by one only while no piece spans a word start; "x▁y" does.
  auto spanning = Build(LlamaVocab({{"▁", -10}, {"x", -10}, {"y", -10}, {"x▁", -5}, {"x▁y", -1}}));
  auto plain = Build(LlamaVocab({{"▁", -10}, {"x", -10}, {"y", -10}, {"▁y", -1}}));
  ASSERT_TRUE(spanning && plain);
  EXPECT_EQ(spanning->Encode("x y", false), IdsOf(*spanning, {"▁", "x▁y"}));
  EXPECT_EQ(plain->Encode("x y  y", false), IdsOf(*plain, {"▁", "x", "▁y", "▁", "▁y"}));
  EXPECT_EQ(plain->Decode(plain->Encode("x y  y", true)), "x y  y");
}

TEST(TokenizerLlama, UnknownCharactersFallBackToBytes) {
  auto t = Build(LlamaVocab({{"▁", -10}, {"a", -10}}));
  ASSERT_TRUE(t);
  // U+00E9 is C3 A9; a lone 0xFF is not UTF-8 at all.
  EXPECT_EQ(t->Encode("a\xC3\xA9\xFF", false),
            (Ids{t->Find("▁"), t->Find("a"), ByteId(0xC3), ByteId(0xA9), ByteId(0xFF)}));
  EXPECT_EQ(t->Decode(t->Encode("a\xC3\xA9\xFF", true)), "a\xC3\xA9\xFF");
}

TEST(TokenizerLlama, ControlTextIsPlainText) {
  auto t = Build(LlamaVocab({{"<", -10}, {"s", -10}, {">", -10}, {"▁", -10}}));
  ASSERT_TRUE(t);
  const Ids ids = t->Encode("<s>", false);
  for (int32_t id : ids) EXPECT_NE(id, t->bos_id());
  EXPECT_EQ(t->Decode(ids), "<s>");
}

TEST(TokenizerLlama, DecodeSkipsControlAndOutOfRange) {
  auto t = Build(LlamaVocab({{"▁a", -1}}));
  ASSERT_TRUE(t);
  const int32_t a = t->Find("▁a");
  EXPECT_EQ(t->Decode(Ids{1, a, a, 2, -7, 1 << 30}), "a a");
  // A continuation keeps its leading space.
  EXPECT_EQ(t->Decode(Ids{a, a}, /*strip_leading_space=*/false), " a a");
  EXPECT_EQ(t->Piece(a), "▁a");
  EXPECT_EQ(t->TokenBytes(a), " a");
  EXPECT_EQ(t->TokenBytes(ByteId('\n')), "\n");
  EXPECT_EQ(t->TokenBytes(1), "");
  EXPECT_EQ(t->Piece(-1), "");
  EXPECT_EQ(t->Piece(t->vocab_size()), "");
}

TEST(TokenizerLlama, DefaultsAndSpecialIds) {
  auto t = Build(LlamaVocab({{"x", 0}}));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->kind(), VocabKind::kLlama);
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->eos_id(), 2);
  EXPECT_EQ(t->unk_id(), 0);
  EXPECT_EQ(t->pad_id(), -1);
  EXPECT_TRUE(t->add_bos());
  EXPECT_FALSE(t->add_eos());
  EXPECT_TRUE(t->add_space_prefix());
  EXPECT_TRUE(t->IsEog(2));
  EXPECT_FALSE(t->IsEog(1));
  EXPECT_FALSE(t->IsEog(t->Find("x")));
  EXPECT_EQ(t->token_type(0), TokenType::kUnknown);

  VocabData v = LlamaVocab({{"x", 0}, {"<|eot_id|>", 0}});
  v.types.back() = TokenType::kControl;
  v.eot_id = 3;
  v.pad_id = -1;
  v.add_bos = false;
  auto t2 = Build(std::move(v));
  ASSERT_TRUE(t2);
  EXPECT_FALSE(t2->add_bos());
  EXPECT_TRUE(t2->IsEog(3));
  EXPECT_TRUE(t2->IsEog(t2->Find("<|eot_id|>")));
}

TEST(TokenizerLlama, UserDefinedTokensAreMatchedWhole) {
  VocabData v = LlamaVocab({{"▁", -10}, {"a", -10}, {"b", -10}, {"<tag>", 0}});
  v.types.back() = TokenType::kUserDefined;
  auto t = Build(std::move(v));
  ASSERT_TRUE(t);
  const int32_t tag = t->Find("<tag>");
  EXPECT_EQ(t->Encode("a<tag>b", false), (Ids{t->Find("▁"), t->Find("a"), tag, t->Find("b")}));
  EXPECT_EQ(t->Decode(t->Encode("a<tag>b", true)), "a<tag>b");
  EXPECT_EQ(t->Decode(t->Encode("<tag>b", true)), "<tag>b");
}

// A byte-level BPE vocabulary: the 256 mapped bytes, then merged pieces.
VocabData Gpt2Vocab(const std::vector<std::string>& merges) {
  VocabData v;
  v.kind = VocabKind::kGpt2;
  auto append_cp = [](uint32_t cp, std::string& s) {
    if (cp < 0x80) {
      s.push_back(static_cast<char>(cp));
    } else {
      s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  };
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    std::string s;
    append_cp(printable ? static_cast<uint32_t>(b) : next++, s);
    v.tokens.push_back(s);
  }
  for (const auto& m : merges) {
    std::string joined = m;
    joined.erase(joined.find(' '), 1);
    v.tokens.push_back(joined);
    v.merges.push_back(m);
  }
  v.tokens.push_back("<|endoftext|>");
  v.types.assign(v.tokens.size(), TokenType::kNormal);
  v.types.back() = TokenType::kControl;
  v.bos_id = v.eos_id = static_cast<int32_t>(v.tokens.size() - 1);
  return v;
}

TEST(TokenizerGpt2, MergesByRankWithinWords) {
  auto t = Build(Gpt2Vocab({"l o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld", "h e", "he lo"}));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->kind(), VocabKind::kGpt2);
  EXPECT_FALSE(t->add_bos());
  EXPECT_FALSE(t->add_space_prefix());
  // "hello": l+o (rank 0) wins over l+l (absent) and h+e (rank 6); then "he"+"lo"? no: h e l lo
  // -> he l lo; "he lo" needs adjacent "he","lo" which are split by "l".
  EXPECT_EQ(t->Encode("hello world", false), IdsOf(*t, {"he", "l", "lo", "Ġworld"}));
  EXPECT_EQ(t->Decode(t->Encode("hello world", false)), "hello world");
  // Words never merge across the pre-tokenizer split: "o" "r" in "o r" stay apart.
  EXPECT_EQ(t->Encode("o r", false), IdsOf(*t, {"o", "Ġ", "r"}));
}

TEST(TokenizerGpt2, EveryByteRoundTrips) {
  auto t = Build(Gpt2Vocab({"Ġ t"}));
  ASSERT_TRUE(t);
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  const Ids ids = t->Encode(all, false);
  EXPECT_EQ(ids.size(), 256u);
  EXPECT_EQ(t->Decode(ids), all);
  EXPECT_EQ(t->Encode("x", true).front(), t->bos_id());
  EXPECT_EQ(t->Decode(t->Encode("<|endoftext|>", true)), "<|endoftext|>");
  EXPECT_TRUE(t->IsEog(t->eos_id()));
}

TEST(TokenizerGpt2, LongInputsStayLinearish) {
  // One 200k-character word and 100k spaces: BPE over a heap, no quadratic rescans.
  auto t = Build(Gpt2Vocab({"a a", "aa aa", "Ġ Ġ"}));
  ASSERT_TRUE(t);
  const std::string word(200000, 'a');
  EXPECT_EQ(t->Encode(word, false).size(), 50000u);
  const std::string spaces(100000, ' ');
  EXPECT_EQ(t->Decode(t->Encode(spaces, false)), spaces);
}

TEST(TokenizerGpt2, DuplicateTextsResolveToTheFirstIdAndEveryIdKeepsItsBytes) {
  // Real vocabularies repeat texts (an added token spelled like a normal one); the first id wins
  // in lookups and in BPE, and every id, repeated or not, decodes to its own bytes.
  VocabData v = Gpt2Vocab({"h e"});
  const int32_t first_he = Build(Gpt2Vocab({"h e"}))->Find("he");
  ASSERT_GE(first_he, 0);
  v.tokens.push_back("he");
  v.types.push_back(TokenType::kNormal);
  v.tokens.push_back("Ġbye");
  v.types.push_back(TokenType::kNormal);
  const auto second_he = static_cast<int32_t>(v.tokens.size() - 2);
  auto t = Build(v);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->Find("he"), first_he);
  EXPECT_EQ(t->Find("absent"), -1);
  EXPECT_EQ(t->Encode("he", false), Ids{first_he});
  EXPECT_EQ(t->TokenBytes(second_he), "he");
  EXPECT_EQ(t->TokenBytes(second_he + 1), " bye");
  EXPECT_EQ(t->TokenBytes(t->vocab_size()), "");
  EXPECT_EQ(t->TokenBytes(-1), "");
  for (int32_t id = 0; id < t->vocab_size(); ++id) {
    if (t->token_type(id) == TokenType::kControl) continue;
    EXPECT_EQ(t->Decode(Ids{id}), t->TokenBytes(id)) << "id " << id;
  }
}

// Malformed vocabularies: each names the key at fault.
void ExpectRejected(VocabData v, const std::string& needle) {
  auto t = Tokenizer::FromVocab(std::move(v));
  ASSERT_FALSE(t.ok()) << "accepted, expected an error naming " << needle;
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find(needle), std::string::npos) << t.status().ToString();
}

TEST(TokenizerMalformed, EmptyVocabulary) {
  VocabData v;
  ExpectRejected(v, "tokenizer.ggml.tokens: empty");
}

TEST(TokenizerMalformed, MismatchedArrayLengths) {
  VocabData v = LlamaVocab({{"a", 0}});
  v.scores.pop_back();
  ExpectRejected(v, "tokenizer.ggml.scores");
  v = LlamaVocab({{"a", 0}});
  v.types.push_back(TokenType::kNormal);
  ExpectRejected(v, "tokenizer.ggml.token_type");
}

TEST(TokenizerMalformed, IdsOutOfRange) {
  VocabData v = LlamaVocab({{"a", 0}});
  v.bos_id = 100000;
  ExpectRejected(v, "tokenizer.ggml.bos_token_id");
  v = LlamaVocab({{"a", 0}});
  v.eos_id = -5;
  ExpectRejected(v, "tokenizer.ggml.eos_token_id");
  v = LlamaVocab({{"a", 0}});
  v.pad_id = static_cast<int32_t>(v.tokens.size());
  ExpectRejected(v, "tokenizer.ggml.padding_token_id");
  v = LlamaVocab({{"a", 0}});
  v.unk_id = 1 << 30;
  ExpectRejected(v, "tokenizer.ggml.unknown_token_id");
}

TEST(TokenizerMalformed, BadTokenTypesAndScores) {
  VocabData v = LlamaVocab({{"a", 0}});
  v.types[258] = static_cast<TokenType>(9);
  ExpectRejected(v, "tokenizer.ggml.token_type[258]");
  v = LlamaVocab({{"a", 0}});
  v.types[259] = TokenType::kByte;  // "a" is not <0xNN>
  ExpectRejected(v, "tokenizer.ggml.tokens[259]");
  v = LlamaVocab({{"a", 0}});
  v.scores[259] = std::nanf("");
  ExpectRejected(v, "tokenizer.ggml.scores[259]");
}

TEST(TokenizerMalformed, BadMerges) {
  VocabData v = Gpt2Vocab({"a b"});
  v.merges.push_back("a zz");
  ExpectRejected(v, "tokenizer.ggml.merges[1]: names unknown token 'zz'");
  v = Gpt2Vocab({"a b"});
  v.merges.push_back("ab");
  ExpectRejected(v, "tokenizer.ggml.merges[1]");
  v = Gpt2Vocab({"a b"});
  v.merges.push_back("b a");  // "ba" is no token
  ExpectRejected(v, "tokenizer.ggml.merges[1]: result 'ba'");
  v = Gpt2Vocab({"a b"});
  v.merges.clear();
  ExpectRejected(v, "tokenizer.ggml.merges");
}

TEST(TokenizerMalformed, AddBosWithoutBos) {
  VocabData v = Gpt2Vocab({"a b"});
  v.bos_id = -1;
  v.add_bos = true;
  ExpectRejected(v, "tokenizer.ggml.add_bos_token");
}

}  // namespace
}  // namespace sextant
