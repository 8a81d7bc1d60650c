// The paged KV cache of ModelContext: a sequence's results do not depend on which pool blocks hold
// its keys and values, a prefix computed once and shared through block tables gives the same bits
// as computing it again, and block tables that break the rules are refused with clear errors.
// Runs on synthesized models: llama with head size 64 and 128 (the main attention kernels), 32
// and 256 (the generic one; 256 is Gemma's), qwen3 (normalized Q and K, heads x head size wider
// than the embedding), and gemma2 (layers with a sliding window of 8 positions, which starts
// inside a block, and soft-capped scores; and the same without soft-capping, the main kernel
// again). Every case has grouped-query attention (fewer KV heads than query heads) but head256.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine/model/model.h"
#include "tests/support/synth_model.h"

namespace sextant::model {
namespace {

struct ShapeCase {
  const char* name;
  int dim = 128;
  int heads = 2;
  const char* synth_shape = nullptr;  // a shape of gguf::LlamaShapeByName instead of dim, heads
  bool attn_softcap = true;           // false: that shape's attention soft-capping removed
};

void PrintTo(const ShapeCase& c, std::ostream* os) { *os << c.name; }

class PagedKvTest : public ::testing::TestWithParam<ShapeCase> {
 protected:
  void SetUp() override {
    const ShapeCase& c = GetParam();
    gguf::LlamaShape shape = testing::SmallLlamaShape(c.dim, c.heads);
    if (c.synth_shape != nullptr) {
      const std::optional<gguf::LlamaShape> named = gguf::LlamaShapeByName(c.synth_shape);
      ASSERT_TRUE(named.has_value()) << c.synth_shape;
      shape = *named;
      if (!c.attn_softcap) shape.attn_softcap = 0.0f;
    }
    auto m = testing::SynthModel::Make(shape);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    synth_ = std::move(m).value();
    model_ = synth_->model();
  }

  std::unique_ptr<ModelContext> Context(int block_tokens, int sequences, int max_batch = 64) {
    ContextOptions co;
    co.context_length = 256;
    co.kv_block_tokens = block_tokens;
    co.max_sequences = sequences;
    co.max_batch_tokens = max_batch;
    auto c = model_->NewContext(co);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : nullptr;
  }

  // Deterministic prompt tokens.
  static std::vector<int32_t> Tokens(int n, int salt) {
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) t[static_cast<size_t>(i)] = 3 + (i * 37 + salt * 101) % 500;
    return t;
  }

  // Feeds tokens[from..) of one sequence in chunks of `chunk`, then `steps` greedy decode steps;
  // returns every logits row read (the last prompt token's, then each step's).
  std::vector<float> Run(ModelContext& ctx, const std::vector<int32_t>& table,
                         const std::vector<int32_t>& tokens, int from, int chunk, int steps) {
    const size_t vocab = static_cast<size_t>(ctx.vocab_size());
    const SequenceBlocks seq{table};
    std::vector<float> all, logits(vocab);
    std::vector<BatchToken> batch;
    for (int start = from; start < static_cast<int>(tokens.size()); start += chunk) {
      batch.clear();
      const int end = std::min(static_cast<int>(tokens.size()), start + chunk);
      for (int p = start; p < end; ++p) {
        batch.push_back(
            {tokens[static_cast<size_t>(p)], p, 0, p + 1 == static_cast<int>(tokens.size())});
      }
      Status st = ctx.Forward(batch, std::span(&seq, 1), logits);
      EXPECT_TRUE(st.ok()) << st.ToString();
    }
    all.insert(all.end(), logits.begin(), logits.end());
    int32_t pos = static_cast<int32_t>(tokens.size());
    for (int s = 0; s < steps; ++s) {
      const int32_t next =
          static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      const BatchToken t{next, pos++, 0, true};
      Status st = ctx.Forward(std::span(&t, 1), std::span(&seq, 1), logits);
      EXPECT_TRUE(st.ok()) << st.ToString();
      all.insert(all.end(), logits.begin(), logits.end());
    }
    return all;
  }

  static bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  }

  std::unique_ptr<testing::SynthModel> synth_;
  std::shared_ptr<const Model> model_;
};

TEST_P(PagedKvTest, ShuffledBlocksGiveTheBitsOfContiguousOnes) {
  const std::vector<int32_t> prompt = Tokens(150, 1);
  auto contiguous = Context(256, 1);  // one block per sequence: a contiguous slot
  ASSERT_NE(contiguous, nullptr);
  const std::vector<float> want =
      Run(*contiguous, contiguous->SequentialBlocks(0), prompt, 0, 64, 20);
  for (int block_tokens : {16, 32}) {
    auto paged = Context(block_tokens, 3);
    ASSERT_NE(paged, nullptr);
    std::vector<int32_t> pool(static_cast<size_t>(paged->kv_blocks()));
    std::iota(pool.begin(), pool.end(), 0);
    std::shuffle(pool.begin(), pool.end(), std::mt19937(block_tokens));
    pool.resize(static_cast<size_t>(paged->blocks_per_sequence()));
    EXPECT_TRUE(SameBits(Run(*paged, pool, prompt, 0, 64, 20), want))
        << "blocks of " << block_tokens << " positions";
    // Another chunking of the prompt through the same blocks: the same bits again.
    EXPECT_TRUE(SameBits(Run(*paged, pool, prompt, 0, 7, 20), want));
  }
}

TEST_P(PagedKvTest, ASharedPrefixGivesTheBitsOfComputingIt) {
  // Sequence A computes a 96-token prefix (6 blocks) and its own suffix; sequence B's table
  // starts with A's 6 prefix blocks, and B computes only its suffix, in the same batches as A's
  // decode steps. B's logits equal those of a fresh context computing prefix + B's suffix.
  const std::vector<int32_t> prefix = Tokens(96, 2);
  std::vector<int32_t> a_tokens = prefix, b_tokens = prefix;
  for (int32_t t : Tokens(20, 3)) a_tokens.push_back(t);
  for (int32_t t : Tokens(33, 4)) b_tokens.push_back(t);

  auto fresh = Context(16, 1);
  ASSERT_NE(fresh, nullptr);
  const std::vector<float> want = Run(*fresh, fresh->SequentialBlocks(0), b_tokens, 0, 64, 0);

  auto ctx = Context(16, 2);
  ASSERT_NE(ctx, nullptr);
  const std::vector<int32_t> a_table = ctx->SequentialBlocks(0);
  std::vector<int32_t> b_table = ctx->SequentialBlocks(1);
  std::copy_n(a_table.begin(), 6, b_table.begin());  // B reads A's prefix blocks
  (void)Run(*ctx, a_table, a_tokens, 0, 64, 0);
  const size_t vocab = static_cast<size_t>(ctx->vocab_size());
  const SequenceBlocks seqs[2] = {{a_table}, {b_table}};
  std::vector<BatchToken> batch;
  batch.push_back({5, static_cast<int32_t>(a_tokens.size()), 0, true});  // A's decode step
  for (size_t p = prefix.size(); p < b_tokens.size(); ++p) {
    batch.push_back({b_tokens[p], static_cast<int32_t>(p), 1, p + 1 == b_tokens.size()});
  }
  std::vector<float> logits(2 * vocab);
  ASSERT_TRUE(ctx->Forward(batch, seqs, logits).ok());
  const std::vector<float> got(logits.begin() + static_cast<std::ptrdiff_t>(vocab), logits.end());
  EXPECT_TRUE(SameBits(got, want));
}

TEST_P(PagedKvTest, BadBlockTablesAreRefused) {
  auto ctx = Context(16, 2);
  ASSERT_NE(ctx, nullptr);
  std::vector<float> logits(static_cast<size_t>(ctx->vocab_size()) * 2);
  const std::vector<int32_t> t0 = ctx->SequentialBlocks(0);
  const std::vector<int32_t> t1 = ctx->SequentialBlocks(1);
  const auto forward = [&](std::vector<BatchToken> batch, std::vector<SequenceBlocks> seqs) {
    return ctx->Forward(batch, seqs, logits);
  };
  const auto expect_invalid = [](const Status& st, const std::string& words) {
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
    EXPECT_NE(st.message().find(words), std::string::npos) << st.ToString();
  };
  // A block id outside the pool, a table too short for the position, a sequence index past the
  // tables.
  const std::vector<int32_t> outside = {0, ctx->kv_blocks()};
  expect_invalid(forward({{7, 20, 0, true}}, {{outside}}), "outside the pool");
  const std::vector<int32_t> short_table = {0};
  expect_invalid(forward({{7, 16, 0, true}}, {{short_table}}), "block table of 1 blocks");
  expect_invalid(forward({{7, 0, 1, true}}, {{t0}}), "sequence 1");
  // Two sequences writing one block; a block one sequence writes while another reads it.
  expect_invalid(forward({{7, 0, 0, false}, {8, 1, 1, true}}, {{t0}, {t0}}),
                 "written by sequences");
  ASSERT_TRUE(forward({{7, 0, 0, false}, {8, 1, 0, true}}, {{t0}}).ok());
  std::vector<int32_t> reads_t0 = t1;
  reads_t0[0] = t0[0];
  expect_invalid(forward({{9, 2, 0, false}, {8, 16, 1, true}}, {{t0}, {reads_t0}}),
                 "read by sequence 1");
  // Reading a shared block that nobody writes in the batch is fine.
  ASSERT_TRUE(forward({{9, 2, 0, false}, {8, 16, 1, true}}, {{t0}, {t1}}).ok());
  std::vector<int32_t> shares = t1;
  shares[0] = t0[0];
  EXPECT_TRUE(forward({{9, 16, 0, false}, {8, 16, 1, true}}, {{t0}, {shares}}).ok());

  // Context options.
  ContextOptions co;
  co.kv_block_tokens = 12;
  EXPECT_EQ(model_->NewContext(co).status().code(), StatusCode::kInvalidArgument);
  co.kv_block_tokens = 16;
  co.kv_blocks = -1;
  EXPECT_EQ(model_->NewContext(co).status().code(), StatusCode::kInvalidArgument);
}

TEST_P(PagedKvTest, ThePoolIsSizedInBlocks) {
  ContextOptions co;
  co.context_length = 100;
  co.kv_block_tokens = 16;
  co.max_sequences = 3;
  auto c = model_->NewContext(co);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->blocks_per_sequence(), 7);  // ceil(100 / 16)
  EXPECT_EQ((*c)->kv_blocks(), 21);           // three full contexts by default
  const ModelInfo& mi = model_->info();
  EXPECT_EQ((*c)->kv_block_bytes(), 16 * mi.block_count * mi.kv_dim() * 2 * 4);
  EXPECT_EQ((*c)->kv_bytes(), 21 * (*c)->kv_block_bytes());
  co.kv_blocks = 5;
  auto d = model_->NewContext(co);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ((*d)->kv_blocks(), 5);
  EXPECT_EQ((*d)->kv_bytes(), 5 * (*d)->kv_block_bytes());
}

INSTANTIATE_TEST_SUITE_P(HeadSizes, PagedKvTest,
                         ::testing::Values(ShapeCase{"head64", 128, 2}, ShapeCase{"head32", 128, 4},
                                           ShapeCase{"head128", 256, 2},
                                           ShapeCase{"head256", 256, 1},
                                           ShapeCase{"qwen3", 0, 0, "qwen3-tiny"},
                                           ShapeCase{"gemma2", 0, 0, "gemma2-tiny"},
                                           ShapeCase{"gemma2_nocap", 0, 0, "gemma2-tiny", false}),
                         [](const ::testing::TestParamInfo<ShapeCase>& p) { return p.param.name; });

}  // namespace
}  // namespace sextant::model
