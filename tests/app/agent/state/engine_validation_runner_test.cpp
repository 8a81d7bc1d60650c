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
  EXPECT_EQ(m.status().message(), kModelNotAvailable);

  ASSERT_TRUE(runner.Run(d.record, [] { return false; }).ok());
  {  // One byte changed, same size: the cached digest must not be reused.
    std::fstream f(d.model, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-1, std::ios::end);
    char c = 0;
    f.get(c);
    f.seekp(-1, std::ios::end);
    f.put(static_cast<char>(c ^ 1));
  }
  // The caller learns the same as for a missing file; the cause is in the agent's own log.
  auto altered = runner.Run(d.record, [] { return false; });
  EXPECT_EQ(altered.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(altered.status().message(), kModelNotAvailable);

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
  // No oracle: a file with another digest, a missing file and a path out of the store read the
  // same to the caller; the detail (for the customer's log) says which, and never the paths.
  std::string detail;
  auto wrong = store.Verify("m.gguf", std::string(64, 'a'), &detail);
  EXPECT_EQ(wrong.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(wrong.status().message(), kModelNotAvailable);
  EXPECT_EQ(detail, "model sha256 mismatch: store has " + sha + " for m.gguf, spec wants " +
                        std::string(64, 'a'));
  EXPECT_EQ(detail.find(dir.string()), std::string::npos) << "never the store's paths";
  std::string missing_detail;
  auto missing = store.Verify("n.gguf", sha, &missing_detail);
  EXPECT_EQ(missing.status().message(), wrong.status().message());
  EXPECT_NE(missing_detail.find("not in this agent's store"), std::string::npos);
  auto outside = store.Verify("../m.gguf", sha);
  EXPECT_EQ(outside.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(outside.status().message(), wrong.status().message());
}

TEST(ModelStore, AFileRewrittenInPlaceIsHashedAgain) {
  const fs::path dir = testing_agent::ScratchDir("modelstore-rewrite");
  std::ofstream(dir / "m.gguf") << "model bytes";
  ModelStore store(dir);
  ASSERT_TRUE(store.Verify("m.gguf", Sha256Hex("model bytes")).ok());
  // Same size, same modification time set back: the inode's change time still moves, and the
  // cached digest is not reused.
  const auto mtime = fs::last_write_time(dir / "m.gguf");
  {
    std::fstream f(dir / "m.gguf", std::ios::in | std::ios::out | std::ios::binary);
    f.put('M');
  }
  fs::last_write_time(dir / "m.gguf", mtime);
  EXPECT_FALSE(store.Verify("m.gguf", Sha256Hex("model bytes")).ok());
  EXPECT_TRUE(store.Verify("m.gguf", Sha256Hex("Model bytes")).ok());
  // Replaced by another file of the same size and time (a new inode): hashed again too.
  std::ofstream(dir / "n.tmp") << "model bytes";
  fs::last_write_time(dir / "n.tmp", mtime);
  fs::rename(dir / "n.tmp", dir / "m.gguf");
  EXPECT_TRUE(store.Verify("m.gguf", Sha256Hex("model bytes")).ok());
}

}  // namespace
}  // namespace sextant::agent
