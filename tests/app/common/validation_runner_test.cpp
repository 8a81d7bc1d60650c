#include "app/common/validation_runner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "app/common/signing.h"
#include "engine/base/sha256.h"
#include "engine/chat/chat_template.h"
#include "engine/gguf/synth.h"
#include "engine/model/model.h"
#include "engine/serve/session.h"
#include "engine/tokenizer/tokenizer.h"

namespace sextant::validate {
namespace {

namespace fs = std::filesystem;

const fs::path kModelDir = fs::path(SEXTANT_SHARED_DIR) / "models";
const fs::path kModel = kModelDir / "stories260K.gguf";
const fs::path kExample = fs::path(SEXTANT_SOURCE_DIR) / "resources/examples/stories260k.yaml";

fs::path TempDir(const std::string& name) {
  fs::path dir = fs::path(::testing::TempDir()) / ("sextant_validate_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void Touch(const fs::path& p) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << "x";
}

spec::DeploymentSpec ExampleSpec() {
  auto s = spec::LoadDeploymentSpec(kExample);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? *s : spec::DeploymentSpec{};
}

TEST(ResolveModelPath, FileUrisPathsAndOtherStores) {
  const fs::path dir = TempDir("resolve");
  Touch(dir / "a.gguf");
  Touch(dir / "sub/b.gguf");
  spec::ModelRef m;
  m.uri = "file://" + (dir / "a.gguf").string();  // file:///abs
  EXPECT_EQ(*ResolveModelPath(m, "/nonexistent"), dir / "a.gguf");
  m.uri = "file://sub/b.gguf";
  EXPECT_EQ(*ResolveModelPath(m, dir), dir / "sub/b.gguf");
  m.uri = "sub/b.gguf";
  EXPECT_EQ(*ResolveModelPath(m, dir), dir / "sub/b.gguf");
  m.uri = "s3://bucket/models/a.gguf";
  EXPECT_EQ(*ResolveModelPath(m, dir), dir / "a.gguf");
  m.uri = "file://missing.gguf";
  auto missing = ResolveModelPath(m, dir);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find((dir / "missing.gguf").string()), std::string::npos);
}

// Conversations are formatted by the chat template the spec names (else the model's own), the
// formatting every target applies too; a conversation the template refuses fails the run.
TEST(GreedyPromptRuns, ConversationsAreFormattedByTheChatTemplate) {
  const fs::path dir = TempDir("chat");
  const fs::path path = dir / "tiny.gguf";
  ASSERT_TRUE(gguf::SynthesizeLlama(*gguf::LlamaShapeByName("stories260k-like"),
                                    gguf::SynthType::kF32, 7, path, {}, 1)
                  .ok());
  model::LoadOptions load;
  load.backend = "cpu";
  load.threads = 1;
  auto loaded = model::Model::Load(path, load);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const std::shared_ptr<const model::Model> m = *loaded;
  const std::vector<chat::Message> conversation = {{"system", "Be brief."},
                                                   {"user", "Once upon a time"}};
  spec::DeploymentSpec s;
  s.engine.context_length = 256;
  s.validation.max_tokens = 4;
  s.validation.prompts = {"Once upon a time", spec::ValidationPrompt::Conversation(conversation)};

  for (const std::string tmpl : {"llama2", "chatml", ""}) {
    s.engine.chat_template = tmpl;
    auto runs = RunGreedyPrompts(m, s);
    ASSERT_TRUE(runs.ok()) << tmpl << ": " << runs.status().ToString();
    auto formatter = chat::ChatFormatter::ForModel(m->file(), m->tokenizer(), tmpl);
    ASSERT_TRUE(formatter.ok());
    auto ids = formatter->Tokenize(m->tokenizer(), conversation);
    ASSERT_TRUE(ids.ok());
    EXPECT_EQ(runs->prompt_digests[1], ToHex(TokenIdsDigest(*ids))) << tmpl;
    EXPECT_EQ(runs->prompts[1].prompt_tokens, static_cast<int>(ids->size())) << tmpl;
    EXPECT_EQ(runs->chat_template, formatter->origin());
    EXPECT_NE(runs->prompt_digests[1], runs->prompt_digests[0]) << tmpl;
    EXPECT_EQ(runs->prompt_digests[0],
              ToHex(TokenIdsDigest(m->tokenizer().Encode("Once upon a time", true))));
  }
  // The synthesized model has no template of its own: "" formats with the plain template.
  auto plain = chat::ChatFormatter::ForModel(m->file(), m->tokenizer());
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(*plain->Format(conversation), "<s>Be brief.\n\nUser: Once upon a time\nAssistant:");

  s.engine.chat_template = "llama2";
  s.validation.prompts[1] = spec::ValidationPrompt::Conversation({{"user", "a"}, {"user", "b"}});
  auto refused = RunGreedyPrompts(m, s);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("validation prompt 1"), std::string::npos)
      << refused.status().message();
  EXPECT_NE(refused.status().message().find("roles must alternate"), std::string::npos)
      << refused.status().message();
  fs::remove_all(dir);
}

TEST(ExampleSpec, LintsCleanAndNamesTheSharedModel) {
  spec::DeploymentSpec s = ExampleSpec();
  EXPECT_EQ(s.model.uri, "file://stories260K.gguf");
  EXPECT_EQ(s.model.sha256, "047bf46455a544931cff6fef14d7910154c56afbc23ab1c5e56a72e69912c04b");
  EXPECT_FALSE(s.validation.prompts.empty());
}

class ValidationOnStories : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kModel)) {
      GTEST_SKIP() << "no " << kModel << " (a checkout without ../shared): skipping validation "
                   << "on the real model";
    }
  }
};

TEST_F(ValidationOnStories, SameDigestsOnTwoRunsAndEqualToTheEngineDirectly) {
  spec::DeploymentSpec s = ExampleSpec();
  s.engine.backend = "cpu";
  s.engine.threads = 2;
  ValidateOptions opts;
  opts.model_dir = kModelDir;
  int progress_calls = 0;
  opts.on_progress = [&](std::string_view, double f) {
    EXPECT_GE(f, 0.0);
    EXPECT_LE(f, 1.0);
    ++progress_calls;
  };
  auto first = RunValidation(s, opts);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = RunValidation(s, opts);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_GT(progress_calls, 0);

  const report::ValidationReport& a = first->report;
  const report::ValidationReport& b = second->report;
  ASSERT_EQ(a.prompts.size(), s.validation.prompts.size());
  ASSERT_EQ(b.prompts.size(), a.prompts.size());
  for (size_t i = 0; i < a.prompts.size(); ++i) {
    EXPECT_EQ(a.prompts[i].output_digest, b.prompts[i].output_digest) << "prompt " << i;
    EXPECT_GT(a.prompts[i].generated_tokens, 0);
    EXPECT_LE(a.prompts[i].generated_tokens, s.validation.max_tokens);
    EXPECT_EQ(a.prompts[i].output_digest, ToHex(TokenIdsDigest(first->outputs[i])));
  }
  EXPECT_EQ(a.output_digest, b.output_digest);
  EXPECT_EQ(a.spec_digest, spec::SpecDigest(s));
  EXPECT_EQ(a.model_sha256, s.model.sha256);
  EXPECT_EQ(a.backend, "cpu");
  EXPECT_FALSE(a.engine_build_id.empty());
  EXPECT_GT(a.peak_memory_bytes, 0);
  EXPECT_GT(a.prompts[0].ttft_ms, 0);

  // The first prompt's digest is the digest of what the engine itself produces greedily.
  model::LoadOptions load;
  load.backend = "cpu";
  load.threads = 2;
  auto m = model::Model::Load(kModel, load);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  serve::Session session(*m, s.engine.context_length);
  serve::GenerateRequest req;
  req.prompt = (*m)->tokenizer().Encode(s.validation.prompts[0].text, true);
  req.max_tokens = s.validation.max_tokens;
  req.sampling.temperature = 0;
  std::vector<int32_t> direct;
  auto stats = session.Generate(req, [&](int32_t t) {
    direct.push_back(t);
    return true;
  });
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(ToHex(TokenIdsDigest(direct)), a.prompts[0].output_digest);
  // And it is the model's known greedy continuation (shared/models/README.md).
  EXPECT_NE(first->output_texts[0].find("there was a little girl named Lily"), std::string::npos)
      << first->output_texts[0];
}

TEST_F(ValidationOnStories, SignedReportOfARunVerifies) {
  spec::DeploymentSpec s = ExampleSpec();
  s.engine.backend = "cpu";
  s.validation.prompts.resize(1);
  s.validation.max_tokens = 8;
  ValidateOptions opts;
  opts.model_dir = kModelDir;
  auto run = RunValidation(s, opts);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  auto key = report::SigningKey::Generate();
  ASSERT_TRUE(key.ok());
  auto signed_report = report::SignReport(run->report, *key);
  ASSERT_TRUE(signed_report.ok());
  auto verified = report::VerifySignedReport(*signed_report, key->public_key());
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ(verified->output_digest, run->report.output_digest);
}

TEST_F(ValidationOnStories, ThresholdsThatCannotBeMetFail) {
  spec::DeploymentSpec s = ExampleSpec();
  s.engine.backend = "cpu";
  s.validation.prompts.resize(1);
  s.validation.max_tokens = 8;
  s.validation.thresholds.min_tokens_per_second = 1e9;
  ValidateOptions opts;
  opts.model_dir = kModelDir;
  auto run = RunValidation(s, opts);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_FALSE(run->report.passed);
  ASSERT_EQ(run->report.failures.size(), 1u);
  EXPECT_NE(run->report.failures[0].find("tokens/s"), std::string::npos);
}

TEST_F(ValidationOnStories, CancelAfterNTokensStopsTheEngineAndReturnsCancelled) {
  spec::DeploymentSpec s = ExampleSpec();
  s.engine.backend = "cpu";
  s.engine.threads = 2;
  ValidateOptions opts;
  opts.model_dir = kModelDir;
  // After the first prompt starts every poll is a token's: the engine asks before it hands over
  // each generated token. Cancel on the (kAllowed + 1)-th.
  constexpr int kAllowed = 5;
  std::vector<std::string> stages;
  bool in_first_prompt = false;
  int token_polls = 0;
  int polls_after_cancel = 0;
  opts.on_progress = [&](std::string_view stage, double) {
    if (stages.empty() || stages.back() != stage) stages.emplace_back(stage);
    in_first_prompt = stage == "prompt 1/3";
  };
  opts.cancelled = [&] {
    if (!in_first_prompt) return false;
    if (token_polls > kAllowed) ++polls_after_cancel;
    ++token_polls;
    return token_polls > kAllowed;
  };
  ASSERT_EQ(s.validation.prompts.size(), 3u);
  ASSERT_GT(s.validation.max_tokens, kAllowed + 1);
  auto run = RunValidation(s, opts);
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.status().code(), StatusCode::kCancelled) << run.status().ToString();
  // kAllowed tokens taken, the next one refused, and the engine asked nothing more: it stopped.
  EXPECT_EQ(token_polls, kAllowed + 1);
  EXPECT_LE(polls_after_cancel, 1);
  EXPECT_EQ(std::count(stages.begin(), stages.end(), "prompt 2/3"), 0);
  EXPECT_EQ(std::count(stages.begin(), stages.end(), "done"), 0);

  // The same spec uncancelled generates far more than that: the cancel cut the run short.
  int full_polls = 0;
  opts.on_progress = {};
  opts.cancelled = [&] {
    ++full_polls;
    return false;
  };
  auto full = RunValidation(s, opts);
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  int generated = 0;
  for (const auto& p : full->report.prompts) generated += p.generated_tokens;
  EXPECT_GT(generated, 3 * kAllowed);
  EXPECT_GE(full_polls, generated);  // polled at least once per token
}

TEST_F(ValidationOnStories, CancelBeforeStartOrDuringTheLoadReturnsCancelled) {
  spec::DeploymentSpec s = ExampleSpec();
  s.engine.backend = "cpu";
  ValidateOptions opts;
  opts.model_dir = kModelDir;
  std::vector<std::string> stages;
  opts.on_progress = [&](std::string_view stage, double) { stages.emplace_back(stage); };
  opts.cancelled = [] { return true; };
  auto before = RunValidation(s, opts);
  EXPECT_EQ(before.status().code(), StatusCode::kCancelled) << before.status().ToString();
  EXPECT_TRUE(stages.empty());  // not even the sha256 was read

  // Cancelled once the model starts loading: the load stops and no prompt runs.
  stages.clear();
  opts.cancelled = [&] { return !stages.empty() && stages.back() == "loading model"; };
  auto during = RunValidation(s, opts);
  EXPECT_EQ(during.status().code(), StatusCode::kCancelled) << during.status().ToString();
  ASSERT_FALSE(stages.empty());
  EXPECT_EQ(stages.back(), "loading model");
  for (const auto& st : stages) EXPECT_EQ(st.rfind("prompt", 0), std::string::npos) << st;
}

TEST_F(ValidationOnStories, Sha256MismatchIsRefused) {
  spec::DeploymentSpec s = ExampleSpec();
  s.model.sha256[0] = s.model.sha256[0] == '0' ? '1' : '0';
  ValidateOptions opts;
  opts.model_dir = kModelDir;
  auto run = RunValidation(s, opts);
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(run.status().message().find("sha256 mismatch"), std::string::npos);

  // A model file altered by one byte is refused under the spec's true digest.
  const fs::path dir = TempDir("altered");
  fs::copy_file(kModel, dir / "stories260K.gguf");
  {
    std::fstream f(dir / "stories260K.gguf", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(kModel) / 2));
    char c = 0;
    f.read(&c, 1);
    f.seekp(static_cast<std::streamoff>(fs::file_size(kModel) / 2));
    c = static_cast<char>(c ^ 0x40);
    f.write(&c, 1);
  }
  opts.model_dir = dir;
  run = RunValidation(ExampleSpec(), opts);
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.status().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace sextant::validate
