#include "app/common/spec_diff.h"

#include <gtest/gtest.h>

namespace sextant::spec {
namespace {

constexpr char kSpec[] = R"yaml(
apiVersion: sextant/v1
kind: Deployment
name: chat
model:
  uri: file://m.gguf
  sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
engine:
  sampling:
    temperature: 0.7
resources:
  replicas:
    min: 1
    max: 2
scaling:
  scaleDownWindow: 5m
validation:
  prompts: [Hello, The little dog]
)yaml";

DeploymentSpec Base() {
  auto r = ParseDeploymentSpec(kSpec);
  EXPECT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].ToString());
  return r.spec;
}

std::vector<std::string> Fields(const std::vector<FieldDifference>& d) {
  std::vector<std::string> out;
  for (const auto& x : d) out.push_back(x.field);
  return out;
}

TEST(SpecDiff, TheSameSpecHasNoDifference) {
  EXPECT_TRUE(DiffSpecs(Base(), Base()).empty());
  EXPECT_TRUE(CheckOnlyScalingDiffers(Base(), Base()).ok());
}

TEST(SpecDiff, NewReplicaBoundsChangeOnlyThoseFieldsAndTheDigest) {
  auto scaled = WithReplicaBounds(Base(), 2, 6);
  ASSERT_TRUE(scaled.ok()) << scaled.status().ToString();
  EXPECT_EQ(scaled->resources.replicas_min, 2);
  EXPECT_EQ(scaled->resources.replicas_max, 6);
  const auto d = DiffSpecs(Base(), *scaled);
  EXPECT_EQ(Fields(d),
            (std::vector<std::string>{"resources.replicas.max", "resources.replicas.min"}));
  EXPECT_EQ(d[0].before, "2");
  EXPECT_EQ(d[0].after, "6");
  EXPECT_NE(SpecDigest(*scaled), SpecDigest(Base()));
  EXPECT_TRUE(CheckOnlyScalingDiffers(Base(), *scaled).ok());
  // Everything else is the same value: back to the old bounds is the old digest.
  auto back = WithReplicaBounds(*scaled, 1, 2);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(SpecDigest(*back), SpecDigest(Base()));
  // Scale to zero is a bound like any other.
  auto zero = WithReplicaBounds(Base(), 0, 1);
  ASSERT_TRUE(zero.ok()) << zero.status().ToString();
  EXPECT_EQ(zero->resources.replicas_min, 0);
}

TEST(SpecDiff, ReplicaBoundsFollowTheParsersRules) {
  auto inverted = WithReplicaBounds(Base(), 3, 2);
  EXPECT_EQ(inverted.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(inverted.status().message().find("resources.replicas.max"), std::string::npos)
      << inverted.status().message();
  auto no_max = WithReplicaBounds(Base(), 0, 0);
  EXPECT_EQ(no_max.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(no_max.status().message().find("resources.replicas.max"), std::string::npos);
  auto negative = WithReplicaBounds(Base(), -1, 2);
  EXPECT_EQ(negative.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(negative.status().message().find("resources.replicas.min"), std::string::npos);
  auto huge = WithReplicaBounds(Base(), 1, 10001);
  EXPECT_EQ(huge.status().code(), StatusCode::kInvalidArgument);
}

TEST(SpecDiff, TheScalingSectionIsScaling) {
  DeploymentSpec b = Base();
  b.scaling.scale_down_window_seconds = 60;
  b.scaling.max_queue = 9;
  EXPECT_EQ(Fields(DiffSpecs(Base(), b)),
            (std::vector<std::string>{"scaling.maxQueue", "scaling.scaleDownWindow"}));
  EXPECT_TRUE(CheckOnlyScalingDiffers(Base(), b).ok());
  EXPECT_FALSE(IsScalingField("resources.gpu.count"));
  EXPECT_FALSE(IsScalingField("scalingx"));
}

TEST(SpecDiff, AnyOtherFieldIsRefusedByName) {
  auto refused = [](const DeploymentSpec& b, const std::string& field) {
    DeploymentSpec scaled = *WithReplicaBounds(b, 2, 4);
    Status s = CheckOnlyScalingDiffers(Base(), scaled);
    EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << field;
    EXPECT_NE(s.message().find("differ in " + field + " "), std::string::npos) << s.message();
  };
  DeploymentSpec prompt = Base();
  prompt.validation.prompts[1] = "The big dog";
  refused(prompt, "validation.prompts[1]");
  EXPECT_EQ(Fields(DiffSpecs(Base(), prompt)), (std::vector<std::string>{"validation.prompts[1]"}));

  DeploymentSpec more = Base();
  more.validation.prompts.push_back("A third");
  refused(more, "validation.prompts");

  DeploymentSpec model = Base();
  model.model.sha256 = std::string(64, 'f');
  refused(model, "model.sha256");

  DeploymentSpec uri = Base();
  uri.model.uri = "file://other.gguf";
  refused(uri, "model.uri");

  DeploymentSpec sampling = Base();
  sampling.engine.sampling.temperature = 0.2;
  refused(sampling, "engine.sampling.temperature");
  Status s = CheckOnlyScalingDiffers(Base(), sampling);
  EXPECT_NE(s.message().find("0.7 -> 0.2"), std::string::npos) << s.message();

  DeploymentSpec gpus = Base();
  gpus.resources.gpu_count = 2;
  refused(gpus, "resources.gpu.count");

  DeploymentSpec tokens = Base();
  tokens.validation.max_tokens = 64;
  refused(tokens, "validation.maxTokens");

  DeploymentSpec name = Base();
  name.name = "other";
  refused(name, "name");
}

}  // namespace
}  // namespace sextant::spec
