// Model::DecodeWeightRegions: the weight bytes a decode step reads, which `sextant bench` times as
// the bandwidth bound of generation.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "engine/gguf/gguf.h"
#include "engine/gguf/synth.h"
#include "engine/model/model.h"

namespace sextant::model {
namespace {

TEST(DecodeRegionsTest, EveryTensorButTheTokenEmbeddingInTheMapping) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("sextant_regions_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::filesystem::path path = dir / "m.gguf";
  gguf::LlamaShape shape = *gguf::LlamaShapeByName("stories260k-like");
  ASSERT_TRUE(gguf::SynthesizeLlama(shape, gguf::SynthType::kQ8_0, 3, path).ok());
  LoadOptions lo;
  lo.backend = "cpu";
  lo.threads = 1;
  auto m = Model::Load(path, lo);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const gguf::GgufFile& f = (*m)->file();
  ASSERT_FALSE((*m)->info().tied_output);

  uint64_t expected = 0;
  for (const gguf::Tensor& t : f.tensors())
    if (t.name != "token_embd.weight") expected += t.size_bytes;
  const gguf::Tensor* embd = f.FindTensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);

  uint64_t total = 0;
  for (const std::span<const uint8_t>& r : (*m)->DecodeWeightRegions()) {
    total += r.size();
    EXPECT_NE(r.data(), embd->data) << "the embedding is read a row per token, not whole";
    EXPECT_GE(r.data(), f.tensors().front().data - f.tensors().front().offset);
  }
  EXPECT_EQ(total, expected);
  EXPECT_GT(total, f.file_size() / 2) << "the layers hold most of the file";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sextant::model
