// The GGUF reader on real files from ../shared (skipped when absent).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "engine/gguf/gguf.h"

namespace sextant::gguf {
namespace {

const std::filesystem::path kShared = SEXTANT_SHARED_DIR;

TEST(GgufReaderTest, ReadsStories260K) {
  const auto path = kShared / "models/stories260K.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is absent";
  auto file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  const GgufFile& f = **file;
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.file_size(), std::filesystem::file_size(path));
  EXPECT_EQ(*f.GetString("general.architecture"), "llama");
  EXPECT_EQ(*f.GetUint("llama.embedding_length"), 64u);
  EXPECT_EQ(*f.GetUint("llama.feed_forward_length"), 172u);
  EXPECT_EQ(*f.GetUint("llama.block_count"), 5u);
  EXPECT_EQ(*f.GetUint("llama.attention.head_count"), 8u);
  EXPECT_EQ(*f.GetUint("llama.attention.head_count_kv"), 4u);
  // The GGUF conversion records 128, although the llama2.c checkpoint says seq_len 512.
  EXPECT_EQ(*f.GetUint("llama.context_length"), 128u);
  EXPECT_GT(*f.GetFloat("llama.attention.layer_norm_rms_epsilon"), 0.0f);
  EXPECT_EQ(*f.GetString("tokenizer.ggml.model"), "llama");
  auto tokens = f.GetArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok()) << tokens.status().ToString();
  EXPECT_EQ((*tokens)->element_type, ValueType::kString);
  EXPECT_EQ((*tokens)->size(), 512u);
  const auto& pieces = std::get<std::vector<std::string>>((*tokens)->elements);
  EXPECT_EQ(pieces[0], "<unk>");
  EXPECT_EQ(pieces[1], "<s>");
  EXPECT_EQ(pieces[2], "</s>");
  EXPECT_EQ(pieces[3], "<0x00>");

  // 2 norms + token_embd (+ output when untied) + 9 per layer.
  int blocks = 0;
  for (const Tensor& t : f.tensors()) {
    EXPECT_EQ(t.type, TensorType::kF32) << t.name;
    EXPECT_EQ(t.size_bytes, static_cast<uint64_t>(t.elements()) * 4) << t.name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % f.alignment(), 0u) << t.name;
    if (t.name.rfind("blk.", 0) == 0) ++blocks;
  }
  EXPECT_EQ(blocks, 5 * 9);
  const Tensor* emb = f.FindTensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  ASSERT_EQ(emb->dims.size(), 2u);
  EXPECT_EQ(emb->dims[0], 64);
  EXPECT_EQ(emb->dims[1], 512);
  const Tensor* q = f.FindTensor("blk.4.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->dims[0], 64);
  EXPECT_EQ(q->dims[1], 64);
  const Tensor* k = f.FindTensor("blk.0.attn_k.weight");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->dims[1], 32);  // 4 kv heads x head size 8
  EXPECT_EQ(f.FindTensor("blk.5.attn_q.weight"), nullptr);

  auto sha = f.Sha256();
  ASSERT_TRUE(sha.ok()) << sha.status().ToString();
  EXPECT_EQ(*sha, "047bf46455a544931cff6fef14d7910154c56afbc23ab1c5e56a72e69912c04b");
  EXPECT_EQ(*f.Sha256(), *sha);  // cached
}

TEST(GgufReaderTest, ReadsVocabularyOnlyFiles) {
  for (const char* name : {"ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf"}) {
    const auto path = kShared / "models/vocab" / name;
    if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is absent";
    auto file = GgufFile::Open(path);
    ASSERT_TRUE(file.ok()) << file.status().ToString();
    auto tokens = (*file)->GetArray("tokenizer.ggml.tokens");
    ASSERT_TRUE(tokens.ok()) << tokens.status().ToString();
    EXPECT_GT((*tokens)->size(), 1000u) << name;
    EXPECT_TRUE((*file)->GetString("tokenizer.ggml.model").ok()) << name;
  }
}

TEST(GgufReaderTest, MissingFileIsNotFound) {
  auto file = GgufFile::Open("/nonexistent/dir/model.gguf");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kNotFound);
  EXPECT_NE(file.status().message().find("/nonexistent/dir/model.gguf"), std::string::npos);
}

TEST(GgufReaderTest, DirectoryIsRejected) {
  auto file = GgufFile::Open(std::filesystem::temp_directory_path());
  ASSERT_FALSE(file.ok());
}

}  // namespace
}  // namespace sextant::gguf
