// The agent's validation runner on the real engine: its digests equal `sextant validate`'s
// for the same spec (a synthesized model always; stories260K when ../shared has it), and it
// refuses a model that is missing from the store or differs from the spec by one byte.
#include "app/agent/state/engine_validation_runner.h"

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>

#include "app/common/validation_runner.h"
#include "tests/app/agent/state/tiny_deployment.h"

namespace sextant::agent {
namespace {

namespace fs = std::filesystem;
using testing_agent::TinyDeployment;

const fs::path kStories = fs::path(SEXTANT_SHARED_DIR) / "models" / "stories260K.gguf";

void ExpectSameAsLocalValidation(const TinyDeployment& d) {
  validate::ValidateOptions local;
  local.model_dir = d.store;
  auto expected = validate::RunValidation(d.spec, local);
  ASSERT_TRUE(expected.ok()) << expected.status().ToString();

  EngineValidationRunner runner(d.store);
  auto got = runner.Run(d.record, [] { return false; });
  ASSERT_TRUE(got.ok()) << got.status().ToString();

  EXPECT_EQ(got->output_digest, expected->report.output_digest);
  EXPECT_EQ(got->model_sha256, expected->report.model_sha256);
  EXPECT_EQ(got->engine_build_id, expected->report.engine_build_id);
  EXPECT_EQ(got->backend, "cpu");
  EXPECT_EQ(got->backend, expected->report.backend);
  EXPECT_EQ(got->device, expected->report.device);
  EXPECT_EQ(got->threads, 1);
  ASSERT_EQ(got->prompts.size(), expected->report.prompts.size());
  for (size_t i = 0; i < got->prompts.size(); ++i) {
    const auto& g = got->prompts[i];
    const auto& e = expected->report.prompts[i];
    EXPECT_EQ(g.index, e.index);
    EXPECT_EQ(g.output_tokens_digest, e.output_digest) << "prompt " << i;
    EXPECT_EQ(g.generated_tokens, e.generated_tokens);
    EXPECT_EQ(g.prompt_tokens, e.prompt_tokens);
    EXPECT_EQ(g.stopped_at_eos, e.stopped_at_eos);
    EXPECT_EQ(g.prompt_digest.size(), 64u);
    EXPECT_GT(g.generated_tokens, 0);
    EXPECT_GT(g.ttft_ms, 0);
  }
  EXPECT_NE(got->prompts[0].prompt_digest, got->prompts[1].prompt_digest);
  EXPECT_GT(got->peak_memory_bytes, 0);

  // A second run (cached model) gives the same digests.
  auto again = runner.Run(d.record, [] { return false; });
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->output_digest, got->output_digest);
}

TEST(EngineValidationRunner, DigestsEqualLocalValidationOnASynthesizedModel) {
  TinyDeployment d;
  ASSERT_EQ(
      testing_agent::MakeDeployment(testing_agent::ScratchDir("evr-synth"), "tiny.gguf", {}, &d),
      "");
  ExpectSameAsLocalValidation(d);
}

TEST(EngineValidationRunner, DigestsEqualLocalValidationOnStories260K) {
  if (!fs::exists(kStories)) {
    GTEST_SKIP() << "no " << kStories << " (a checkout without ../shared)";
  }
  TinyDeployment d;
  ASSERT_EQ(testing_agent::MakeDeployment(testing_agent::ScratchDir("evr-stories"),
                                          "stories260K.gguf", kStories, &d),
            "");
  ExpectSameAsLocalValidation(d);
}

TEST(EngineValidationRunner, RefusesMissingOrAlteredModelAndStopsWhenCancelled) {
  TinyDeployment d;
  ASSERT_EQ(
      testing_agent::MakeDeployment(testing_agent::ScratchDir("evr-refuse"), "tiny.gguf", {}, &d),
      "");
  EngineValidationRunner runner(d.store);

  auto cancelled = runner.Run(d.record, [] { return true; });
  EXPECT_EQ(cancelled.status().code(), StatusCode::kCancelled);

  DeploymentRecord missing = d.record;
  missing.model_uri = "other.gguf";
  auto m = runner.Run(missing, [] { return false; });
  EXPECT_EQ(m.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(m.status().message().find("not in this agent's store"), std::string::npos)
      << m.status().message();

  ASSERT_TRUE(runner.Run(d.record, [] { return false; }).ok());
  {  // One byte changed, same size: the cached digest must not be reused.
    std::fstream f(d.model, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-1, std::ios::end);
    char c = 0;
    f.get(c);
    f.seekp(-1, std::ios::end);
    f.put(static_cast<char>(c ^ 1));
  }
  auto altered = runner.Run(d.record, [] { return false; });
  EXPECT_EQ(altered.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(altered.status().message().find("model sha256 mismatch: store has "), std::string::npos)
      << altered.status().message();

  DeploymentRecord garbled = d.record;
  garbled.spec_json = "{\"name\": 3}";
  EXPECT_EQ(runner.Run(garbled, [] { return false; }).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(ModelStore, ResolvesLikeTheSpecAndNeverLeavesTheStore) {
  const fs::path dir = testing_agent::ScratchDir("modelstore");
  std::ofstream(dir / "m.gguf") << "model bytes";
  ModelStore store("file://" + dir.string());
  EXPECT_EQ(*store.Locate("m.gguf"), dir / "m.gguf");
  EXPECT_EQ(*store.Locate("file://m.gguf"), dir / "m.gguf");
  EXPECT_EQ(*store.Locate("s3://bucket/path/m.gguf"), dir / "m.gguf");
  EXPECT_EQ(store.Locate("../m.gguf").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Locate("n.gguf").status().code(), StatusCode::kFailedPrecondition);

  const std::string sha = Sha256Hex("model bytes");
  EXPECT_TRUE(store.Verify("m.gguf", "sha256:" + sha).ok());
  EXPECT_TRUE(store.Verify("m.gguf", sha).ok());
  EXPECT_EQ(store.Verify("m.gguf", "abc").status().code(), StatusCode::kInvalidArgument);
  auto wrong = store.Verify("m.gguf", std::string(64, 'a'));
  EXPECT_EQ(wrong.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(wrong.status().message(),
            "model sha256 mismatch: store has " + sha + ", spec wants " + std::string(64, 'a'));
  EXPECT_EQ(wrong.status().message().find(dir.string()), std::string::npos)
      << "messages never name the store's paths";
}

}  // namespace
}  // namespace sextant::agent
