// End-to-end checks on the real stories260K model (a trained llama): the loader, tokenizer,
// forward pass and greedy sampler reproduce the reference continuation of ../shared/models.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/model/model.h"
#include "engine/serve/session.h"
#include "engine/tokenizer/tokenizer.h"
#include "tests/support/command.h"

namespace sextant::model {
namespace {

const char* kModelPath = SEXTANT_SHARED_DIR "/models/stories260K.gguf";

// The continuation in ../shared/models/README.md (greedy, 100 tokens).
const char* kExpected =
    ", there was a little girl named Lily. She loved to play outside in the park. One day, she "
    "saw a big, red ball. She wanted to play with it, but it was too high.\nLily's mom said, "
    "\"Lily, let's go to the park.\" Lily was sad and didn't know what to do";

class Stories260KTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kModelPath)) {
      GTEST_SKIP() << "skipped: " << kModelPath << " is absent (a fresh clone has no ../shared)";
    }
    LoadOptions lo;
    lo.backend = "cpu";
    lo.threads = 1;
    auto m = Model::Load(kModelPath, lo);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    model_ = *m;
  }
  std::shared_ptr<const Model> model_;
};

TEST_F(Stories260KTest, InfoComesFromTheMetadata) {
  const ModelInfo& info = model_->info();
  EXPECT_EQ(info.architecture, "llama");
  EXPECT_EQ(info.embedding_length, 64);
  EXPECT_EQ(info.feed_forward_length, 172);
  EXPECT_EQ(info.block_count, 5);
  EXPECT_EQ(info.head_count, 8);
  EXPECT_EQ(info.head_count_kv, 4);
  EXPECT_EQ(info.head_dim, 8);
  EXPECT_EQ(info.vocab_size, 512);
  EXPECT_EQ(info.vocab_kind, "llama");
  EXPECT_EQ(info.main_type, gguf::TensorType::kF32);
  EXPECT_EQ(model_->backend_name(), "cpu");
}

TEST_F(Stories260KTest, GreedyReproducesTheReferenceContinuation) {
  const Tokenizer& tok = model_->tokenizer();
  serve::GenerateRequest req;
  req.prompt = tok.Encode("Once upon a time", true);
  EXPECT_EQ(req.prompt, (std::vector<int32_t>{1, 403, 407, 261, 378}));
  req.max_tokens = 100;
  req.sampling.temperature = 0;
  serve::Session session(model_);
  ASSERT_TRUE(session.status().ok()) << session.status().ToString();
  StreamDecoder dec(tok);
  std::string text;
  auto stats = session.Generate(req, [&](int32_t id) {
    text += dec.Push(id);
    return true;
  });
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  text += dec.Flush();
  EXPECT_EQ(stats->prompt_tokens, 5);
  EXPECT_EQ(stats->generated_tokens, 100);
  EXPECT_EQ(text, kExpected);
}

TEST_F(Stories260KTest, SameSeedSameTextOtherSeedOtherText) {
  const Tokenizer& tok = model_->tokenizer();
  serve::Session session(model_);
  auto run = [&](uint64_t seed) {
    serve::GenerateRequest req;
    req.prompt = tok.Encode("Once upon a time", true);
    req.max_tokens = 60;
    req.sampling.temperature = 1.0f;
    req.sampling.seed = seed;
    std::vector<int32_t> out;
    auto st = session.Generate(req, [&](int32_t id) {
      out.push_back(id);
      return true;
    });
    EXPECT_TRUE(st.ok()) << st.status().ToString();
    return out;
  };
  const std::vector<int32_t> a = run(1234);
  EXPECT_EQ(run(1234), a);
  EXPECT_NE(run(99), a);
}

TEST_F(Stories260KTest, ContextOverflowIsAClearError) {
  serve::Session session(model_);
  serve::GenerateRequest req;
  req.prompt = model_->tokenizer().Encode("Once upon a time", true);
  req.max_tokens = session.context_length();  // prompt + max_tokens > context
  auto st = session.Generate(req, nullptr);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), StatusCode::kOutOfRange);
  EXPECT_NE(st.status().message().find("context"), std::string::npos) << st.status().ToString();

  // The forward pass itself refuses a position past the context.
  auto ctx = model_->NewContext(ContextOptions{});
  ASSERT_TRUE(ctx.ok());
  std::vector<float> logits(512);
  const std::vector<int32_t> blocks = (*ctx)->SequentialBlocks(0);
  const SequenceBlocks seq{blocks};
  const BatchToken past{1, (*ctx)->context_length(), 0, true};
  Status fs = (*ctx)->Forward(std::span(&past, 1), std::span(&seq, 1), logits);
  EXPECT_EQ(fs.code(), StatusCode::kOutOfRange) << fs.ToString();
}

TEST_F(Stories260KTest, CallbackCanStopGeneration) {
  serve::Session session(model_);
  serve::GenerateRequest req;
  req.prompt = model_->tokenizer().Encode("Once upon a time", true);
  req.max_tokens = 50;
  req.sampling.temperature = 0;
  int seen = 0;
  auto st = session.Generate(req, [&](int32_t) { return ++seen < 7; });
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(seen, 7);
  EXPECT_EQ(st->generated_tokens, 7);
}

TEST_F(Stories260KTest, PrefillInOneBatchEqualsTokenByToken) {
  // Logits of the last prompt token: one batched pass vs one token per pass. The products of a
  // batch may sum in another order than those of one token, so equal to rounding (and the same
  // greedy token).
  const std::vector<int32_t> prompt = model_->tokenizer().Encode("Once upon a time there", true);
  auto a = model_->NewContext(ContextOptions{});
  auto b = model_->NewContext(ContextOptions{});
  ASSERT_TRUE(a.ok() && b.ok());
  std::vector<BatchToken> batch;
  for (size_t i = 0; i < prompt.size(); ++i) {
    batch.push_back({prompt[i], static_cast<int32_t>(i), 0, i + 1 == prompt.size()});
  }
  std::vector<float> la(512), lb(512);
  const std::vector<int32_t> blocks = (*a)->SequentialBlocks(0);
  const SequenceBlocks seq{blocks};
  ASSERT_TRUE((*a)->Forward(batch, std::span(&seq, 1), la).ok());
  for (const BatchToken& t : batch) {
    ASSERT_TRUE((*b)->Forward(std::span(&t, 1), std::span(&seq, 1), lb).ok());
  }
  for (size_t i = 0; i < la.size(); ++i) {
    EXPECT_NEAR(la[i], lb[i], 1e-4f * (1.0f + std::fabs(lb[i]))) << "logit " << i;
  }
  EXPECT_EQ(std::max_element(la.begin(), la.end()) - la.begin(),
            std::max_element(lb.begin(), lb.end()) - lb.begin());
}

TEST_F(Stories260KTest, LoadReportsProgressAndCanBeCancelled) {
  LoadOptions lo;
  lo.backend = "cpu";
  float last = 0;
  int calls = 0;
  lo.on_progress = [&](float f) {
    EXPECT_GE(f, last);
    last = f;
    ++calls;
    return true;
  };
  ASSERT_TRUE(Model::Load(kModelPath, lo).ok());
  EXPECT_GT(calls, 0);
  EXPECT_FLOAT_EQ(last, 1.0f);
  lo.on_progress = [](float) { return false; };
  auto cancelled = Model::Load(kModelPath, lo);
  ASSERT_FALSE(cancelled.ok());
  EXPECT_EQ(cancelled.status().code(), StatusCode::kCancelled);
}

TEST_F(Stories260KTest, CudaChoiceRunsThereOrSaysWhyNotAndAutoFallsBackToTheCpu) {
  LoadOptions lo;
  lo.backend = "cuda";
  auto m = Model::Load(kModelPath, lo);
  if (m.ok()) {
    EXPECT_EQ((*m)->backend_name(), "cuda");
  } else {
    // This build has no CUDA, or the machine no usable NVIDIA device: the error names cuda.
    std::string msg = m.status().message();
    std::transform(msg.begin(), msg.end(), msg.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    EXPECT_NE(msg.find("cuda"), std::string::npos) << m.status().ToString();
  }
  lo.backend = "auto";  // a usable GPU, otherwise the CPU
  auto a = Model::Load(kModelPath, lo);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  if (m.ok()) {
    EXPECT_NE((*a)->backend_name(), "cpu");
  } else if ((*a)->backend_name() != "cpu") {
    EXPECT_EQ((*a)->backend_name(), "hip");  // no CUDA device, an AMD one
  }
}

TEST_F(Stories260KTest, RunVerbPrintsTheReferenceContinuation) {
  const std::string bin = SEXTANT_BINARY_DIR "/app/sextant/sextant";
  if (!std::filesystem::exists(bin)) GTEST_SKIP() << "skipped: " << bin << " is not built";
  const auto r = testing::RunCommand(bin + " run " + kModelPath +
                                     " -p 'Once upon a time' -n 100 --temp 0 --echo 2>/dev/null");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, std::string("Once upon a time") + kExpected + "\n");
  const auto bad = testing::RunCommand(bin + " run " + kModelPath + " -p 'Once' -n 100000");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.output.find("context"), std::string::npos) << bad.output;
}

TEST_F(Stories260KTest, BenchVerbPrintsJson) {
  const std::string bin = SEXTANT_BINARY_DIR "/app/sextant/sextant";
  if (!std::filesystem::exists(bin)) GTEST_SKIP() << "skipped: " << bin << " is not built";
  const auto r = testing::RunCommand(bin + " bench " + kModelPath +
                                     " -p 32 -n 16 -r 2 -t 1 --streams 4 -o json 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* key : {"\"pp_tps\"", "\"tg_tps\"", "\"pp_tps_stddev\"", "\"tg_tps_stddev\"",
                          "\"peak_rss_mib\"", "\"threads\":1", "\"model_sha256\":\"047bf464",
                          "\"backend\":\"cpu\"", "\"kernel_level\""}) {
    EXPECT_NE(r.output.find(key), std::string::npos) << key << " in " << r.output;
  }
  // The number after "key": in the one-line JSON object (NaN when absent).
  auto number = [&](const std::string& key) {
    const size_t at = r.output.find("\"" + key + "\":");
    return at == std::string::npos ? std::nan("")
                                   : std::strtod(r.output.c_str() + at + key.size() + 3, nullptr);
  };
  // The same-run bandwidth bound of generation: every weight byte but the embedding's, read at
  // a positive rate, and tg as a positive fraction of the bound it implies.
  EXPECT_GT(number("decode_read_bytes"), 0.5 * number("model_size_bytes")) << r.output;
  EXPECT_GT(number("read_gbs"), 0) << r.output;
  EXPECT_NEAR(number("tg_bound_tps"), number("read_gbs") * 1e9 / number("decode_read_bytes"),
              1e-6 * number("tg_bound_tps"))
      << r.output;
  // tg over the read timed right after each repetition, and over the fastest read of the run
  // (which no repetition's own read is faster than).
  EXPECT_GT(number("tg_fraction_of_bound"), 0) << r.output;
  EXPECT_GE(number("tg_fraction_of_bound_stddev"), 0) << r.output;
  EXPECT_GT(number("tg_fraction_of_fastest_read"), 0) << r.output;
  EXPECT_NEAR(number("tg_fraction_of_fastest_read"), number("tg_tps") / number("tg_bound_tps"),
              1e-6 * number("tg_fraction_of_fastest_read"))
      << r.output;
  // Time to first token over the 4 streams' requests: positive, p99 not below p50.
  EXPECT_GT(number("streams_ttft_p50_ms"), 0) << r.output;
  EXPECT_GE(number("streams_ttft_p99_ms"), number("streams_ttft_p50_ms")) << r.output;
}

}  // namespace
}  // namespace sextant::model
