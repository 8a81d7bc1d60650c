// Tokenizer::FromGguf on GGUF images written in memory: the keys it reads, the defaults it takes,
// and a clear error naming the key for every malformed shape of the metadata.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/gguf/gguf.h"
#include "engine/gguf/synth.h"
#include "engine/gguf/writer.h"
#include "engine/tokenizer/tokenizer.h"

namespace sextant {
namespace {

using gguf::ArrayValue;
using gguf::GgufWriter;
using gguf::ValueType;

// A small llama vocabulary: <unk> <s> </s>, 256 byte tokens, "▁", "a", "b", "▁a", "ab".
struct LlamaKeys {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  LlamaKeys() {
    tokens = {"<unk>", "<s>", "</s>"};
    types = {2, 3, 3};
    for (int b = 0; b < 256; ++b) {
      char name[8];
      snprintf(name, sizeof name, "<0x%02X>", b);
      tokens.push_back(name);
      types.push_back(6);
    }
    for (const char* p : {"▁", "a", "b", "▁a", "ab"}) {
      tokens.push_back(p);
      types.push_back(1);
    }
    scores.assign(tokens.size(), 0.0f);
    scores[tokens.size() - 2] = -1.0f;  // "▁a"
    scores[tokens.size() - 1] = -2.0f;  // "ab"
  }
};

// Writes `fill`'s metadata and reads it back as a tokenizer. The image must outlive the file,
// hence the out-parameter.
Result<std::unique_ptr<Tokenizer>> FromWriter(const GgufWriter& w, std::vector<uint8_t>& image) {
  auto bytes = w.WriteToMemory();
  if (!bytes.ok()) return bytes.status();
  image = std::move(bytes).value();
  SEXTANT_ASSIGN_OR_RETURN(auto file, gguf::GgufFile::FromBytes(image.data(), image.size()));
  return Tokenizer::FromGguf(*file);
}

void AddLlama(GgufWriter& w, const LlamaKeys& k, bool with_tokens = true) {
  ASSERT_TRUE(w.AddString("tokenizer.ggml.model", "llama").ok());
  if (with_tokens) {
    ASSERT_TRUE(w.AddStringArray("tokenizer.ggml.tokens", k.tokens).ok());
  }
  ASSERT_TRUE(w.AddArray("tokenizer.ggml.scores", {ValueType::kFloat32, k.scores}).ok());
  ASSERT_TRUE(w.AddArray("tokenizer.ggml.token_type", {ValueType::kInt32, k.types}).ok());
}

void ExpectError(const GgufWriter& w, StatusCode code, const std::string& needle) {
  std::vector<uint8_t> image;
  auto t = FromWriter(w, image);
  ASSERT_FALSE(t.ok()) << "accepted; expected an error naming " << needle;
  EXPECT_EQ(t.status().code(), code) << t.status().ToString();
  EXPECT_NE(t.status().message().find(needle), std::string::npos) << t.status().ToString();
}

TEST(TokenizerGguf, ReadsALlamaVocabulary) {
  LlamaKeys k;
  GgufWriter w;
  AddLlama(w, k);
  ASSERT_TRUE(w.AddUint32("tokenizer.ggml.bos_token_id", 1).ok());
  ASSERT_TRUE(w.AddUint32("tokenizer.ggml.eos_token_id", 2).ok());
  ASSERT_TRUE(w.AddUint32("tokenizer.ggml.padding_token_id", 0xFFFFFFFFu).ok());  // "none"
  ASSERT_TRUE(w.AddBool("tokenizer.ggml.add_bos_token", false).ok());
  std::vector<uint8_t> image;
  auto t = FromWriter(w, image);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const Tokenizer& tok = **t;
  EXPECT_EQ(tok.vocab_size(), static_cast<int32_t>(k.tokens.size()));
  EXPECT_EQ(tok.pad_id(), -1);
  EXPECT_FALSE(tok.add_bos());
  // "▁a" (-1) outscores "ab" (-2): "ab" -> ▁a b.
  EXPECT_EQ(tok.Encode("ab", true), (std::vector<int32_t>{1, tok.Find("▁a"), tok.Find("b")}));
  EXPECT_EQ(tok.Decode(tok.Encode("ab b", true)), "ab b");
}

TEST(TokenizerGguf, ReadsTheSynthesizedVocabulary) {
  const auto vocab = gguf::MakeSynthVocab(512);
  GgufWriter w;
  ASSERT_TRUE(w.AddString("tokenizer.ggml.model", "llama").ok());
  ASSERT_TRUE(w.AddStringArray("tokenizer.ggml.tokens", vocab.tokens).ok());
  ASSERT_TRUE(w.AddArray("tokenizer.ggml.scores", {ValueType::kFloat32, vocab.scores}).ok());
  ASSERT_TRUE(w.AddArray("tokenizer.ggml.token_type", {ValueType::kInt32, vocab.token_types}).ok());
  std::vector<uint8_t> image;
  auto t = FromWriter(w, image);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const std::string text = "Once upon a time, a little \xF0\x9F\xA6\x99 said: \"hi!\"\n";
  EXPECT_EQ((*t)->Decode((*t)->Encode(text, true)), text);
}

TEST(TokenizerGguf, MissingOrUnsupportedModel) {
  LlamaKeys k;
  GgufWriter none;
  ASSERT_TRUE(none.AddStringArray("tokenizer.ggml.tokens", k.tokens).ok());
  ExpectError(none, StatusCode::kInvalidArgument, "tokenizer.ggml.model: missing");

  GgufWriter bert;
  ASSERT_TRUE(bert.AddString("tokenizer.ggml.model", "bert").ok());
  ASSERT_TRUE(bert.AddStringArray("tokenizer.ggml.tokens", k.tokens).ok());
  ExpectError(bert, StatusCode::kUnimplemented, "tokenizer.ggml.model: tokenizer 'bert'");

  GgufWriter typed;
  ASSERT_TRUE(typed.AddUint32("tokenizer.ggml.model", 7).ok());
  ExpectError(typed, StatusCode::kInvalidArgument, "tokenizer.ggml.model: expected string");
}

TEST(TokenizerGguf, MissingOrMistypedTokens) {
  LlamaKeys k;
  GgufWriter missing;
  AddLlama(missing, k, /*with_tokens=*/false);
  ExpectError(missing, StatusCode::kInvalidArgument, "tokenizer.ggml.tokens: missing");

  GgufWriter ints;
  ASSERT_TRUE(ints.AddString("tokenizer.ggml.model", "llama").ok());
  ASSERT_TRUE(
      ints.AddArray("tokenizer.ggml.tokens", {ValueType::kInt32, std::vector<int32_t>{1, 2}}).ok());
  ExpectError(ints, StatusCode::kInvalidArgument, "tokenizer.ggml.tokens: expected an array");

  GgufWriter empty;
  ASSERT_TRUE(empty.AddString("tokenizer.ggml.model", "llama").ok());
  ASSERT_TRUE(empty.AddStringArray("tokenizer.ggml.tokens", {}).ok());
  ExpectError(empty, StatusCode::kInvalidArgument, "tokenizer.ggml.tokens: empty vocabulary");
}

TEST(TokenizerGguf, MismatchedScoresAndTypes) {
  LlamaKeys k;
  GgufWriter scores;
  ASSERT_TRUE(scores.AddString("tokenizer.ggml.model", "llama").ok());
  ASSERT_TRUE(scores.AddStringArray("tokenizer.ggml.tokens", k.tokens).ok());
  ASSERT_TRUE(
      scores.AddArray("tokenizer.ggml.scores", {ValueType::kFloat32, std::vector<float>{1, 2}})
          .ok());
  ExpectError(scores, StatusCode::kInvalidArgument, "tokenizer.ggml.scores: 2 scores for 264");

  GgufWriter types;
  ASSERT_TRUE(types.AddString("tokenizer.ggml.model", "llama").ok());
  ASSERT_TRUE(types.AddStringArray("tokenizer.ggml.tokens", k.tokens).ok());
  ASSERT_TRUE(types.AddStringArray("tokenizer.ggml.token_type", k.tokens).ok());
  ExpectError(types, StatusCode::kInvalidArgument, "tokenizer.ggml.token_type: expected");

  GgufWriter bad_type;
  auto t = k.types;
  t[5] = 42;
  ASSERT_TRUE(bad_type.AddString("tokenizer.ggml.model", "llama").ok());
  ASSERT_TRUE(bad_type.AddStringArray("tokenizer.ggml.tokens", k.tokens).ok());
  ASSERT_TRUE(bad_type.AddArray("tokenizer.ggml.token_type", {ValueType::kInt32, t}).ok());
  ExpectError(bad_type, StatusCode::kInvalidArgument,
              "tokenizer.ggml.token_type[5]: unknown token type 42");
}

TEST(TokenizerGguf, SpecialIdsOutOfRangeOrMistyped) {
  LlamaKeys k;
  GgufWriter range;
  AddLlama(range, k);
  ASSERT_TRUE(range.AddUint32("tokenizer.ggml.eos_token_id", 70000).ok());
  ExpectError(range, StatusCode::kInvalidArgument, "tokenizer.ggml.eos_token_id: token id 70000");

  GgufWriter huge;
  AddLlama(huge, k);
  ASSERT_TRUE(huge.AddUint64("tokenizer.ggml.bos_token_id", uint64_t{1} << 40).ok());
  ExpectError(huge, StatusCode::kInvalidArgument, "tokenizer.ggml.bos_token_id");

  GgufWriter typed;
  AddLlama(typed, k);
  ASSERT_TRUE(typed.AddString("tokenizer.ggml.unknown_token_id", "0").ok());
  ExpectError(typed, StatusCode::kInvalidArgument,
              "tokenizer.ggml.unknown_token_id: expected an integer, found string");

  GgufWriter flag;
  AddLlama(flag, k);
  ASSERT_TRUE(flag.AddUint32("tokenizer.ggml.add_bos_token", 1).ok());
  ExpectError(flag, StatusCode::kInvalidArgument,
              "tokenizer.ggml.add_bos_token: expected bool, found uint32");
}

TEST(TokenizerGguf, Gpt2NeedsValidMerges) {
  std::vector<std::string> tokens;
  for (int c = 0x21; c <= 0x7E; ++c) tokens.emplace_back(1, static_cast<char>(c));
  tokens.push_back("ab");
  GgufWriter none;
  ASSERT_TRUE(none.AddString("tokenizer.ggml.model", "gpt2").ok());
  ASSERT_TRUE(none.AddStringArray("tokenizer.ggml.tokens", tokens).ok());
  ExpectError(none, StatusCode::kInvalidArgument, "tokenizer.ggml.merges: missing");

  GgufWriter unknown;
  ASSERT_TRUE(unknown.AddString("tokenizer.ggml.model", "gpt2").ok());
  ASSERT_TRUE(unknown.AddStringArray("tokenizer.ggml.tokens", tokens).ok());
  ASSERT_TRUE(unknown.AddStringArray("tokenizer.ggml.merges", {"a b", "ab Ġx"}).ok());
  ExpectError(unknown, StatusCode::kInvalidArgument,
              "tokenizer.ggml.merges[1]: names unknown token 'Ġx'");

  // A pre-tokenizer of no known family is refused by name, not tokenized with another split.
  GgufWriter unknown_pre;
  ASSERT_TRUE(unknown_pre.AddString("tokenizer.ggml.model", "gpt2").ok());
  ASSERT_TRUE(unknown_pre.AddString("tokenizer.ggml.pre", "tekken").ok());
  ASSERT_TRUE(unknown_pre.AddStringArray("tokenizer.ggml.tokens", tokens).ok());
  ASSERT_TRUE(unknown_pre.AddStringArray("tokenizer.ggml.merges", {"a b"}).ok());
  ExpectError(unknown_pre, StatusCode::kUnimplemented,
              "tokenizer.ggml.pre: pre-tokenizer 'tekken' is not supported");

  GgufWriter ok;
  ASSERT_TRUE(ok.AddString("tokenizer.ggml.model", "gpt2").ok());
  ASSERT_TRUE(ok.AddString("tokenizer.ggml.pre", "gpt-2").ok());
  ASSERT_TRUE(ok.AddStringArray("tokenizer.ggml.tokens", tokens).ok());
  ASSERT_TRUE(ok.AddStringArray("tokenizer.ggml.merges", {"a b"}).ok());
  std::vector<uint8_t> image;
  auto t = FromWriter(ok, image);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ((*t)->Encode("ab", false), std::vector<int32_t>{(*t)->Find("ab")});
  EXPECT_EQ((*t)->bos_id(), -1);
  EXPECT_EQ((*t)->Encode("ab", true).size(), 1u);  // no BOS to add
}

}  // namespace
}  // namespace sextant
