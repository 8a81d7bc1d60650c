// Synthesized llama models: metadata, vocabulary, tensor names / shapes / types, determinism.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <set>

#include "engine/gguf/gguf.h"
#include "engine/gguf/quantize.h"
#include "engine/gguf/synth.h"

namespace sextant::gguf {
namespace {

std::filesystem::path TempPath(const std::string& name) {
  return std::filesystem::temp_directory_path() /
         ("sextant_synth_" + std::to_string(::getpid()) + "_" + name);
}

TEST(GgufSynthTest, ShapesAndTypesByName) {
  auto s = LlamaShapeByName("tinyllama-1.1b");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->dim, 2048);
  EXPECT_EQ(s->ff, 5632);
  EXPECT_EQ(s->layers, 22);
  EXPECT_EQ(s->heads, 32);
  EXPECT_EQ(s->kv_heads, 4);
  EXPECT_EQ(s->vocab, 32000);
  EXPECT_EQ(s->context, 2048);
  EXPECT_EQ(LlamaShapeByName("110m")->dim, 768);
  EXPECT_EQ(LlamaShapeByName("stories260k-like")->ff, 172);
  EXPECT_FALSE(LlamaShapeByName("7b").has_value());
  EXPECT_EQ(SynthTypeByName("q4_k_m"), SynthType::kQ4_K_M);
  EXPECT_FALSE(SynthTypeByName("q5_0").has_value());
}

TEST(GgufSynthTest, Q4KMRuleAndFallbacks) {
  // 22 layers: attn_v / ffn_down get Q6_K in layers 0,1 (first eighth), 19..21 (last eighth) and
  // every third layer in between (4, 7, ...).
  EXPECT_EQ(SynthTensorType(SynthType::kQ4_K_M, "output.weight", 0, 22, 2048), TensorType::kQ6_K);
  EXPECT_EQ(SynthTensorType(SynthType::kQ4_K_M, "token_embd.weight", 0, 22, 2048),
            TensorType::kQ4_K);
  EXPECT_EQ(SynthTensorType(SynthType::kQ4_K_M, "blk.0.attn_v.weight", 0, 22, 2048),
            TensorType::kQ6_K);
  EXPECT_EQ(SynthTensorType(SynthType::kQ4_K_M, "blk.3.attn_v.weight", 3, 22, 2048),
            TensorType::kQ4_K);
  EXPECT_EQ(SynthTensorType(SynthType::kQ4_K_M, "blk.4.ffn_down.weight", 4, 22, 5632),
            TensorType::kQ6_K);
  EXPECT_EQ(SynthTensorType(SynthType::kQ4_K_M, "blk.21.ffn_down.weight", 21, 22, 5632),
            TensorType::kQ6_K);
  EXPECT_EQ(SynthTensorType(SynthType::kQ4_K_M, "blk.5.attn_q.weight", 5, 22, 2048),
            TensorType::kQ4_K);
  EXPECT_EQ(SynthTensorType(SynthType::kQ4_K_M, "blk.5.attn_norm.weight", 5, 22, 2048),
            TensorType::kF32);
  // Rows that do not hold whole blocks fall back.
  EXPECT_EQ(SynthTensorType(SynthType::kQ4_K_M, "blk.0.attn_q.weight", 0, 5, 64),
            TensorType::kQ8_0);
  EXPECT_EQ(SynthTensorType(SynthType::kQ4_0, "blk.0.ffn_down.weight", 0, 5, 172),
            TensorType::kF16);
  EXPECT_EQ(SynthTensorType(SynthType::kBF16, "blk.0.ffn_down.weight", 0, 5, 172),
            TensorType::kBF16);
}

TEST(GgufSynthTest, VocabularyIsSentencePieceStyle) {
  const SynthVocab v = MakeSynthVocab(32000);
  ASSERT_EQ(v.tokens.size(), 32000u);
  ASSERT_EQ(v.scores.size(), 32000u);
  ASSERT_EQ(v.token_types.size(), 32000u);
  EXPECT_EQ(v.tokens[0], "<unk>");
  EXPECT_EQ(v.token_types[0], 2);
  EXPECT_EQ(v.tokens[1], "<s>");
  EXPECT_EQ(v.tokens[2], "</s>");
  EXPECT_EQ(v.token_types[2], 3);
  EXPECT_EQ(v.tokens[3], "<0x00>");
  EXPECT_EQ(v.tokens[3 + 0x0A], "<0x0A>");
  EXPECT_EQ(v.tokens[258], "<0xFF>");
  EXPECT_EQ(v.token_types[258], 6);
  EXPECT_EQ(v.tokens[259], "\xE2\x96\x81");
  EXPECT_EQ(v.token_types[259], 1);
  std::set<std::string> unique(v.tokens.begin(), v.tokens.end());
  EXPECT_EQ(unique.size(), v.tokens.size());
  EXPECT_TRUE(unique.count("\xE2\x96\x81the"));
  EXPECT_TRUE(unique.count("\xE2\x96\x81th"));
  EXPECT_TRUE(
      unique.count("\xE2\x96\x81"
                   "a"));
  for (size_t i = 260; i < v.scores.size(); ++i) {
    ASSERT_LT(v.scores[i], v.scores[i - 1]);
  }
  const SynthVocab small = MakeSynthVocab(512);
  EXPECT_EQ(small.tokens.size(), 512u);
  EXPECT_TRUE(std::equal(small.tokens.begin(), small.tokens.end(), v.tokens.begin()));
}

class GgufSynthTypeTest : public ::testing::TestWithParam<const char*> {};

TEST_P(GgufSynthTypeTest, StoriesLikeModelIsValidAndDeterministic) {
  const auto shape = *LlamaShapeByName("stories260k-like");
  const SynthType type = *SynthTypeByName(GetParam());
  const auto path = TempPath(std::string(GetParam()) + ".gguf");
  float last = 0;
  ASSERT_TRUE(SynthesizeLlama(
                  shape, type, 42, path,
                  [&](float f) {
                    EXPECT_GE(f, last);
                    last = f;
                    return true;
                  },
                  2)
                  .ok());
  EXPECT_FLOAT_EQ(last, 1.0f);
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  const GgufFile& g = **f;
  EXPECT_EQ(*g.GetString("general.architecture"), "llama");
  EXPECT_EQ(*g.GetUint("llama.embedding_length"), 64u);
  EXPECT_EQ(*g.GetUint("llama.feed_forward_length"), 172u);
  EXPECT_EQ(*g.GetUint("llama.block_count"), 5u);
  EXPECT_EQ(*g.GetUint("llama.attention.head_count"), 8u);
  EXPECT_EQ(*g.GetUint("llama.attention.head_count_kv"), 4u);
  EXPECT_EQ(*g.GetUint("llama.context_length"), 512u);
  EXPECT_EQ(*g.GetUint("llama.rope.dimension_count"), 8u);
  EXPECT_FLOAT_EQ(*g.GetFloat("llama.rope.freq_base"), 10000.0f);
  EXPECT_FLOAT_EQ(*g.GetFloat("llama.attention.layer_norm_rms_epsilon"), 1e-5f);
  EXPECT_EQ(*g.GetString("tokenizer.ggml.model"), "llama");
  EXPECT_EQ((*g.GetArray("tokenizer.ggml.tokens"))->size(), 512u);
  EXPECT_EQ((*g.GetArray("tokenizer.ggml.scores"))->size(), 512u);
  EXPECT_EQ((*g.GetArray("tokenizer.ggml.token_type"))->size(), 512u);
  EXPECT_EQ(*g.GetUint("tokenizer.ggml.bos_token_id"), 1u);
  EXPECT_EQ(*g.GetUint("tokenizer.ggml.eos_token_id"), 2u);
  EXPECT_EQ(*g.GetBool("tokenizer.ggml.add_bos_token"), true);

  ASSERT_EQ(g.tensors().size(), 3u + 9u * 5u);
  const Tensor* k = g.FindTensor("blk.3.attn_k.weight");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->dims, (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(g.FindTensor("blk.4.ffn_down.weight")->dims, (std::vector<int64_t>{172, 64}));
  EXPECT_EQ(g.FindTensor("output.weight")->dims, (std::vector<int64_t>{64, 512}));
  for (const Tensor& t : g.tensors()) {
    const bool norm = t.name.find("norm") != std::string::npos;
    int layer = 0;
    if (t.name.rfind("blk.", 0) == 0) layer = std::stoi(t.name.substr(4));
    EXPECT_EQ(t.type, SynthTensorType(type, t.name, layer, 5, t.dims[0])) << t.name;
    // Weights have mean ~0 and RMS 0.02 (normal values, or random quantized blocks); norms are 1.
    std::vector<float> row(static_cast<size_t>(t.dims[0]));
    double s1 = 0, s2 = 0;
    for (int64_t r = 0; r < t.rows(); ++r) {
      ASSERT_TRUE(DequantizeRow(t.type, t.data + r * t.row_bytes(), t.dims[0], row.data()).ok());
      for (float x : row) {
        ASSERT_TRUE(std::isfinite(x)) << t.name;
        if (norm) {
          ASSERT_EQ(x, 1.0f) << t.name;
        }
        s1 += x;
        s2 += x * double(x);
      }
    }
    if (!norm) {
      EXPECT_NEAR(std::sqrt(s2 / t.elements()), 0.02, 0.003) << t.name;
      EXPECT_NEAR(s1 / t.elements(), 0.0, 0.002) << t.name;
    }
  }

  // Same arguments, different thread count: the same bytes.
  const auto path2 = TempPath(std::string(GetParam()) + "_2.gguf");
  ASSERT_TRUE(SynthesizeLlama(shape, type, 42, path2, {}, 1).ok());
  auto f2 = GgufFile::Open(path2);
  ASSERT_TRUE(f2.ok());
  EXPECT_EQ(*(*f2)->Sha256(), *g.Sha256());
  // Another seed: other weights.
  ASSERT_TRUE(SynthesizeLlama(shape, type, 43, path2, {}, 1).ok());
  auto f3 = GgufFile::Open(path2);
  ASSERT_TRUE(f3.ok());
  EXPECT_NE(*(*f3)->Sha256(), *g.Sha256());
  std::filesystem::remove(path);
  std::filesystem::remove(path2);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, GgufSynthTypeTest,
                         ::testing::Values("f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m"));

// Q4_K blocks as the synthesizer writes them: every sub-block's min equals its scale (so values
// are d sc (q - 7.5), centred), scales within [32, 64), dmin 7.5 d; Q6_K scales within [16, 32).
TEST(GgufSynthTest, RandomKQuantBlocksAreValid) {
  auto shape = *LlamaShapeByName("llama3-tiny");
  const auto path = TempPath("kquant.gguf");
  ASSERT_TRUE(SynthesizeLlama(shape, SynthType::kQ4_K_M, 5, path, {}, 2).ok());
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  int q4k = 0, q6k = 0;
  for (const Tensor& t : (*f)->tensors()) {
    if (t.type == TensorType::kQ4_K) {
      ++q4k;
      const auto* b = reinterpret_cast<const BlockQ4_K*>(t.data);
      for (int64_t i = 0; i < static_cast<int64_t>(t.elements() / kQK_K); ++i) {
        EXPECT_NEAR(F16ToF32(b[i].dmin), 7.5f * F16ToF32(b[i].d), 1e-3f * F16ToF32(b[i].dmin));
        for (int j = 0; j < 8; ++j) {
          uint8_t sc, m;
          Q4KScaleMin(j, b[i].scales, &sc, &m);
          ASSERT_EQ(sc, m) << t.name;
          ASSERT_GE(sc, 32);
          ASSERT_LT(sc, 64);
        }
      }
    } else if (t.type == TensorType::kQ6_K) {
      ++q6k;
      const auto* b = reinterpret_cast<const BlockQ6_K*>(t.data);
      for (int64_t i = 0; i < static_cast<int64_t>(t.elements() / kQK_K); ++i) {
        for (int8_t sc : b[i].scales) {
          ASSERT_GE(sc, 16);
          ASSERT_LT(sc, 32);
        }
        ASSERT_GT(F16ToF32(b[i].d), 0.0f);
      }
    }
  }
  EXPECT_GT(q4k, 0);
  EXPECT_GT(q6k, 0);
  std::filesystem::remove(path);
}

TEST(GgufSynthTest, CancelLeavesNoFile) {
  const auto path = TempPath("cancel.gguf");
  const Status st = SynthesizeLlama(*LlamaShapeByName("stories260k-like"), SynthType::kF32, 1, path,
                                    [](float) { return false; });
  EXPECT_EQ(st.code(), StatusCode::kCancelled);
  EXPECT_FALSE(std::filesystem::exists(path));
}

}  // namespace
}  // namespace sextant::gguf
