// ReadModelInfo: the llama.* metadata and every tensor of the graph are checked, and a bad file
// is an error naming the key or tensor.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/gguf/gguf.h"
#include "engine/gguf/writer.h"
#include "engine/model/model.h"

namespace sextant::model {
namespace {

using gguf::TensorType;

// A tiny llama: dim 32, 2 layers, 4 heads, 2 kv heads, ff 64, vocab 16.
struct TinyLlama {
  std::map<std::string, uint32_t> dims = {
      {"llama.context_length", 64},      {"llama.embedding_length", 32},
      {"llama.block_count", 2},          {"llama.feed_forward_length", 64},
      {"llama.attention.head_count", 4}, {"llama.attention.head_count_kv", 2}};
  std::string arch = "llama";
  std::set<std::string> skip;                         // tensors left out
  std::map<std::string, std::vector<int64_t>> shape;  // tensor shape overrides
  std::map<std::string, TensorType> type;             // tensor type overrides
  bool with_output = true;

  Result<ModelInfo> Read() {
    gguf::GgufWriter w;
    EXPECT_TRUE(w.AddString("general.architecture", arch).ok());
    for (const auto& [k, v] : dims) EXPECT_TRUE(w.AddUint32(k, v).ok());
    EXPECT_TRUE(w.AddFloat32("llama.attention.layer_norm_rms_epsilon", 1e-5f).ok());
    auto add = [&](const std::string& name, std::vector<int64_t> d) {
      if (skip.count(name)) return;
      if (shape.count(name)) d = shape[name];
      const TensorType t = type.count(name) ? type[name] : TensorType::kF32;
      Status st = w.AddTensor(name, t, d, [](int64_t, float*) {});
      EXPECT_TRUE(st.ok()) << st.ToString();
    };
    add("token_embd.weight", {32, 16});
    add("output_norm.weight", {32});
    if (with_output) add("output.weight", {32, 16});
    for (int i = 0; i < 2; ++i) {
      const std::string p = "blk." + std::to_string(i) + ".";
      add(p + "attn_norm.weight", {32});
      add(p + "attn_q.weight", {32, 32});
      add(p + "attn_k.weight", {32, 16});
      add(p + "attn_v.weight", {32, 16});
      add(p + "attn_output.weight", {32, 32});
      add(p + "ffn_norm.weight", {32});
      add(p + "ffn_gate.weight", {32, 64});
      add(p + "ffn_down.weight", {64, 32});
      add(p + "ffn_up.weight", {32, 64});
    }
    auto bytes = w.WriteToMemory();
    if (!bytes.ok()) return bytes.status();
    bytes_ = std::move(bytes).value();
    auto f = gguf::GgufFile::FromBytes(bytes_.data(), bytes_.size());
    if (!f.ok()) return f.status();
    file_ = std::move(f).value();
    return ReadModelInfo(*file_);
  }

 private:
  std::vector<uint8_t> bytes_;
  std::unique_ptr<gguf::GgufFile> file_;
};

void ExpectError(Result<ModelInfo> r, StatusCode code, const std::string& needle) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), code) << r.status().ToString();
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().ToString();
}

TEST(ModelInfoTest, ReadsTheShapeFromTheMetadata) {
  TinyLlama t;
  auto info = t.Read();
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->embedding_length, 32);
  EXPECT_EQ(info->block_count, 2);
  EXPECT_EQ(info->head_count, 4);
  EXPECT_EQ(info->head_count_kv, 2);
  EXPECT_EQ(info->head_dim, 8);
  EXPECT_EQ(info->rope_dimension_count, 8);
  EXPECT_EQ(info->vocab_size, 16);
  EXPECT_FALSE(info->tied_output);
  EXPECT_EQ(info->kv_dim(), 16);
  EXPECT_EQ(info->kv_bytes_per_sequence(64), 64 * 2 * 16 * 2 * 4);
}

TEST(ModelInfoTest, MissingOutputMeansTiedEmbeddings) {
  TinyLlama t;
  t.with_output = false;
  auto info = t.Read();
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_TRUE(info->tied_output);
}

TEST(ModelInfoTest, MissingTensorIsNamed) {
  TinyLlama t;
  t.skip.insert("blk.1.ffn_up.weight");
  ExpectError(t.Read(), StatusCode::kInvalidArgument, "'blk.1.ffn_up.weight' is missing");
}

TEST(ModelInfoTest, WrongShapeIsNamed) {
  TinyLlama t;
  t.shape["blk.0.attn_k.weight"] = {32, 32};  // as if there were no GQA
  ExpectError(t.Read(), StatusCode::kInvalidArgument, "'blk.0.attn_k.weight' has shape [32, 32]");
}

TEST(ModelInfoTest, QuantizedNormIsRefused) {
  TinyLlama t;
  t.type["blk.0.attn_norm.weight"] = TensorType::kF16;
  ExpectError(t.Read(), StatusCode::kInvalidArgument, "'blk.0.attn_norm.weight' is F16");
}

TEST(ModelInfoTest, OtherArchitectureIsUnimplemented) {
  TinyLlama t;
  t.arch = "gpt2";
  ExpectError(t.Read(), StatusCode::kUnimplemented, "'gpt2'");
}

TEST(ModelInfoTest, MissingKeyIsNamed) {
  TinyLlama t;
  t.dims.erase("llama.block_count");
  ExpectError(t.Read(), StatusCode::kInvalidArgument, "llama.block_count");
}

TEST(ModelInfoTest, InconsistentHeadsAreRefused) {
  TinyLlama t;
  t.dims["llama.attention.head_count_kv"] = 3;
  ExpectError(t.Read(), StatusCode::kInvalidArgument, "head_count_kv");
  TinyLlama u;
  u.dims["llama.attention.head_count"] = 5;
  ExpectError(u.Read(), StatusCode::kInvalidArgument, "llama.attention.head_count");
}

TEST(ModelInfoTest, AbsurdDimensionIsRefused) {
  TinyLlama t;
  t.dims["llama.embedding_length"] = 0;
  ExpectError(t.Read(), StatusCode::kInvalidArgument, "llama.embedding_length");
}

}  // namespace
}  // namespace sextant::model
