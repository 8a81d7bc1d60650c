#include "app/common/deployment_spec.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <string>

#include "engine/base/sha256.h"

namespace sextant::spec {
namespace {

constexpr char kSha[] = "047bf46455a544931cff6fef14d7910154c56afbc23ab1c5e56a72e69912c04b";

std::string Minimal() {
  return std::string(R"(apiVersion: sextant/v1
kind: Deployment
name: stories
model:
  uri: file://stories260K.gguf
  sha256: )") +
         kSha + R"(
validation:
  prompts:
    - Once upon a time
)";
}

std::string Full() {
  return std::string(R"(apiVersion: sextant/v1
kind: Deployment
name: stories
model:
  uri: file://stories260K.gguf
  sha256: )") +
         kSha + R"(
engine:
  backend: cpu
  contextLength: 256
  maxBatch: 4
  threads: 2
  sampling: {temperature: 0.7, topK: 20, topP: 0.9, minP: 0.0, repeatPenalty: 1.1, repeatLastN: 32, seed: 7}
resources:
  gpu: {model: "NVIDIA L4", count: 1}
  replicas: {min: 1, max: 3}
scaling:
  targetQueueDepth: 8
  scaleToZeroAfter: 15m
validation:
  prompts: ["Once upon a time", "The cat"]
  maxTokens: 48
  thresholds: {maxTimeToFirstTokenMs: 500, minTokensPerSecond: 10}
policy:
  allowedRegions: [gcp/us-central1, aws/eu-west-1, on-prem]
  labels: {team: ml, tier: gold}
)";
}

// The single error of a spec text, or a failure when there is not exactly one.
SpecError OnlyError(const std::string& text) {
  SpecParseResult r = ParseDeploymentSpec(text);
  EXPECT_EQ(r.errors.size(), 1u) << [&] {
    std::string all;
    for (const auto& e : r.errors) all += e.ToString() + "\n";
    return all;
  }();
  return r.errors.empty() ? SpecError{} : r.errors[0];
}

TEST(DeploymentSpec, ParsesMinimalWithDefaults) {
  SpecParseResult r = ParseDeploymentSpec(Minimal());
  ASSERT_TRUE(r.ok()) << r.errors[0].ToString();
  EXPECT_EQ(r.spec.name, "stories");
  EXPECT_EQ(r.spec.model.uri, "file://stories260K.gguf");
  EXPECT_EQ(r.spec.model.sha256, kSha);
  EXPECT_EQ(r.spec.engine.backend, "auto");
  EXPECT_EQ(r.spec.engine.max_batch, 8);
  EXPECT_EQ(r.spec.resources.replicas_min, 1);
  EXPECT_EQ(r.spec.resources.replicas_max, 1);
  EXPECT_EQ(r.spec.validation.max_tokens, 32);
  ASSERT_EQ(r.spec.validation.prompts.size(), 1u);
  EXPECT_EQ(r.spec.validation.prompts[0], "Once upon a time");
}

TEST(DeploymentSpec, ParsesEveryField) {
  SpecParseResult r = ParseDeploymentSpec(Full());
  ASSERT_TRUE(r.ok()) << r.errors[0].ToString();
  const DeploymentSpec& s = r.spec;
  EXPECT_EQ(s.engine.backend, "cpu");
  EXPECT_EQ(s.engine.context_length, 256);
  EXPECT_EQ(s.engine.threads, 2);
  EXPECT_DOUBLE_EQ(s.engine.sampling.temperature, 0.7);
  EXPECT_EQ(s.engine.sampling.top_k, 20);
  EXPECT_EQ(s.engine.sampling.seed, 7u);
  EXPECT_EQ(s.resources.gpu_model, "NVIDIA L4");
  EXPECT_EQ(s.resources.gpu_count, 1);
  EXPECT_EQ(s.resources.replicas_max, 3);
  EXPECT_EQ(s.scaling.target_queue_depth, 8);
  EXPECT_EQ(s.scaling.scale_to_zero_after_seconds, 900);
  EXPECT_EQ(s.validation.prompts.size(), 2u);
  EXPECT_DOUBLE_EQ(s.validation.thresholds.max_ttft_ms, 500);
  EXPECT_DOUBLE_EQ(s.validation.thresholds.min_tokens_per_second, 10);
  EXPECT_EQ(s.policy.allowed_regions,
            (std::vector<std::string>{"aws/eu-west-1", "gcp/us-central1", "on-prem"}));
  EXPECT_EQ(s.policy.labels.at("tier"), "gold");
}

TEST(DeploymentSpecLint, UnknownFieldHasLineAndColumn) {
  std::string text = Minimal() + "engine:\n  backend: cpu\n  maxBatchSize: 4\n";
  SpecError e = OnlyError(text);
  EXPECT_EQ(e.field, "engine.maxBatchSize");
  EXPECT_EQ(e.line, 12);
  EXPECT_EQ(e.column, 3);
  EXPECT_NE(e.message.find("unknown field"), std::string::npos);
}

TEST(DeploymentSpecLint, UnknownTopLevelField) {
  SpecError e = OnlyError("replica: 3\n" + Minimal());
  EXPECT_EQ(e.field, "replica");
  EXPECT_EQ(e.line, 1);
  EXPECT_EQ(e.column, 1);
}

TEST(DeploymentSpecLint, WrongTypeHasLineAndColumn) {
  SpecError e = OnlyError(Minimal() + "engine:\n  maxBatch: lots\n");
  EXPECT_EQ(e.field, "engine.maxBatch");
  EXPECT_EQ(e.line, 11);
  EXPECT_EQ(e.column, 13);
  EXPECT_NE(e.message.find("expected an integer"), std::string::npos);
}

TEST(DeploymentSpecLint, QuotedNumberIsAString) {
  SpecError e = OnlyError(Minimal() + "engine:\n  threads: \"4\"\n");
  EXPECT_EQ(e.field, "engine.threads");
  EXPECT_EQ(e.line, 11);
  EXPECT_NE(e.message.find("quoted string"), std::string::npos);
}

TEST(DeploymentSpecLint, ListWhereMappingExpected) {
  SpecError e = OnlyError(Minimal() + "policy:\n  - aws/eu-west-1\n");
  EXPECT_EQ(e.field, "policy");
  EXPECT_EQ(e.line, 11);
  EXPECT_EQ(e.column, 3);
}

TEST(DeploymentSpecLint, MissingRequiredFieldPointsAtParent) {
  std::string text =
      "apiVersion: sextant/v1\nkind: Deployment\nname: x\nmodel:\n  uri: file://m.gguf\n"
      "validation:\n  prompts: [hi]\n";
  SpecError e = OnlyError(text);
  EXPECT_EQ(e.field, "model.sha256");
  EXPECT_EQ(e.line, 4);
  EXPECT_EQ(e.column, 1);
  EXPECT_NE(e.message.find("required"), std::string::npos);
}

TEST(DeploymentSpecLint, MissingTopLevelRequiredField) {
  std::string text = Minimal();
  text.erase(text.find("name: stories\n"), 14);
  SpecError e = OnlyError(text);
  EXPECT_EQ(e.field, "name");
  EXPECT_EQ(e.line, 1);
}

TEST(DeploymentSpecLint, OutOfRangeValues) {
  SpecError e = OnlyError(Minimal() + "engine:\n  sampling:\n    topP: 1.5\n");
  EXPECT_EQ(e.field, "engine.sampling.topP");
  EXPECT_EQ(e.line, 12);
  EXPECT_EQ(e.column, 11);
  EXPECT_NE(e.message.find("at most 1"), std::string::npos);

  e = OnlyError(Minimal() + "engine:\n  maxBatch: 0\n");
  EXPECT_EQ(e.field, "engine.maxBatch");
  EXPECT_NE(e.message.find("between 1 and 4096"), std::string::npos);

  e = OnlyError(Minimal() + "resources:\n  replicas: {min: 3, max: 2}\n");
  EXPECT_EQ(e.field, "resources.replicas.max");
  EXPECT_EQ(e.line, 11);

  e = OnlyError(Minimal() + "engine:\n  backend: tpu\n");
  EXPECT_EQ(e.field, "engine.backend");
  EXPECT_NE(e.message.find("auto, cpu, cuda, hip"), std::string::npos);

  e = OnlyError(Minimal() + "engine:\n  contextLength: 99999999999999999999999\n");
  EXPECT_EQ(e.field, "engine.contextLength");
}

TEST(DeploymentSpecLint, BadDigestNameRegionAndDuration) {
  std::string text = Minimal();
  text.replace(text.find(kSha), 64, "abc");
  EXPECT_EQ(OnlyError(text).field, "model.sha256");

  text = Minimal();
  text.replace(text.find("name: stories"), 13, "name: Stories_1");
  EXPECT_EQ(OnlyError(text).field, "name");

  EXPECT_EQ(
      OnlyError(Minimal() + "policy:\n  allowedRegions: [aws/eu-west-1, aws/eu-west-1]\n").field,
      "policy.allowedRegions[1]");
  EXPECT_EQ(OnlyError(Minimal() + "scaling:\n  scaleToZeroAfter: soon\n").field,
            "scaling.scaleToZeroAfter");
}

TEST(DeploymentSpecLint, DuplicateKeyIsAnError) {
  SpecError e = OnlyError(Minimal() + "engine:\n  threads: 2\n  threads: 4\n");
  EXPECT_EQ(e.field, "engine.threads");
  EXPECT_EQ(e.line, 12);
  EXPECT_NE(e.message.find("duplicate"), std::string::npos);
}

TEST(DeploymentSpecLint, ReportsEveryErrorInFileOrder) {
  std::string text = Minimal() + "engine:\n  backend: tpu\n  maxBatch: x\nbogus: 1\n";
  SpecParseResult r = ParseDeploymentSpec(text);
  ASSERT_EQ(r.errors.size(), 3u);
  EXPECT_EQ(r.errors[0].line, 11);
  EXPECT_EQ(r.errors[1].line, 12);
  EXPECT_EQ(r.errors[2].line, 13);
  EXPECT_EQ(r.errors[2].ToString("s.yaml"),
            "s.yaml:13:1: bogus: unknown field (known here: "
            "apiVersion, kind, name, model, engine, resources, "
            "scaling, validation, policy)");
}

TEST(DeploymentSpecLint, SyntaxErrorsAndOddDocuments) {
  SpecError e = OnlyError("apiVersion: sextant/v1\nkind: [Deployment\n");
  EXPECT_GT(e.line, 0);
  EXPECT_NE(e.message.find("YAML syntax"), std::string::npos);

  EXPECT_NE(OnlyError("").message.find("empty"), std::string::npos);
  EXPECT_NE(OnlyError("- a\n- b\n").message.find("expected a mapping"), std::string::npos);
  EXPECT_NE(OnlyError(Minimal() + "---\n" + Minimal()).message.find("one spec per file"),
            std::string::npos);
  EXPECT_NE(OnlyError(Minimal() + "validation:\n  prompts: [x]\n").message.find("duplicate"),
            std::string::npos);
  std::string no_prompts = Minimal();
  no_prompts.replace(no_prompts.find("  prompts:\n    - Once upon a time\n"), 34,
                     "  prompts: []\n");
  SpecError e2 = OnlyError(no_prompts);
  EXPECT_EQ(e2.field, "validation.prompts");
  EXPECT_NE(e2.message.find("at least one prompt"), std::string::npos);
}

// yaml-cpp 0.7's LoadAll loops forever (and grows without bound) on these; found by fuzzing.
TEST(DeploymentSpecLint, TextsThatStallTheYamlParserAreSyntaxErrors) {
  for (const std::string& text : {std::string(",#"), std::string(","), Minimal() + ",#\n"}) {
    const SpecParseResult r = ParseDeploymentSpec(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.errors.front().message.find("YAML syntax"), std::string::npos)
        << r.errors.front().message;
  }
  for (const char* text : {",#", ","}) {
    const SpecError e = OnlyError(text);
    EXPECT_EQ(e.message, "YAML syntax: unexpected ','");
    EXPECT_EQ(e.line, 1);
    EXPECT_EQ(e.column, 1);
  }
  // Two real documents still count as two.
  EXPECT_NE(OnlyError(Minimal() + "---\n" + Minimal()).message.find("found 2 YAML documents"),
            std::string::npos);
}

TEST(DeploymentSpecLint, WrongApiVersionAndKind) {
  std::string text = Minimal();
  text.replace(0, 22, "apiVersion: sextant/v2");
  SpecError e = OnlyError(text);
  EXPECT_EQ(e.field, "apiVersion");
  EXPECT_EQ(e.line, 1);
  EXPECT_EQ(e.column, 13);
  text = Minimal();
  text.replace(text.find("kind: Deployment"), 16, "kind: Service");
  EXPECT_EQ(OnlyError(text).field, "kind");
}

TEST(DeploymentSpecDigest, OmittedAndExplicitDefaultsAgree) {
  std::string explicit_defaults = Minimal() + R"(engine:
  backend: auto
  contextLength: 0
  maxBatch: 8
  threads: 0
  sampling: {temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, repeatPenalty: 1, repeatLastN: 64, seed: 0}
resources:
  gpu: {model: "", count: 0}
  replicas: {min: 1, max: 1}
scaling: {targetQueueDepth: 4, scaleToZeroAfter: 0}
policy: {allowedRegions: [], labels: {}}
)";
  explicit_defaults.replace(explicit_defaults.find("    - Once upon a time\n"), 23,
                            "    - Once upon a time\n  maxTokens: 32\n");
  auto a = ParseDeploymentSpec(Minimal());
  auto b = ParseDeploymentSpec(explicit_defaults);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok()) << b.errors[0].ToString();
  EXPECT_EQ(CanonicalJson(a.spec), CanonicalJson(b.spec));
  EXPECT_EQ(SpecDigest(a.spec), SpecDigest(b.spec));
}

TEST(DeploymentSpecDigest, FormattingAndKeyOrderDoNotMatter) {
  // The same spec as Full(), keys reordered, flow style swapped for block style, comments,
  // quoting, number spellings and region order changed.
  std::string reordered = std::string(R"(# a comment
policy:
  labels:
    tier: "gold"
    team: ml
  allowedRegions:
    - on-prem
    - aws/eu-west-1
    - gcp/us-central1
validation:
  thresholds:
    minTokensPerSecond: 10.0
    maxTimeToFirstTokenMs: 5e2
  maxTokens: +48
  prompts:
    - "Once upon a time"
    - 'The cat'
scaling: {scaleToZeroAfter: 900, targetQueueDepth: 8}
resources:
  replicas: {max: 3, min: 1}
  gpu:
    count: 1
    model: NVIDIA L4
engine:
  sampling:
    seed: 7
    repeatLastN: 32
    repeatPenalty: 1.10
    minP: 0
    topP: 0.90
    topK: 20
    temperature: 0.70
  threads: 2
  maxBatch: 4
  contextLength: 256
  backend: "cpu"
model:   {sha256: )") + std::string(kSha).substr(0, 10) +
                          [] {
                            std::string up = std::string(kSha).substr(10);
                            for (auto& c : up) c = static_cast<char>(std::toupper(c));
                            return up;
                          }() +
                          R"(, uri: "file://stories260K.gguf"}
name: stories
kind: Deployment
apiVersion: sextant/v1
)";
  auto a = ParseDeploymentSpec(Full());
  auto b = ParseDeploymentSpec(reordered);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok()) << b.errors[0].ToString();
  EXPECT_EQ(CanonicalJson(a.spec), CanonicalJson(b.spec));
  EXPECT_EQ(SpecDigest(a.spec), SpecDigest(b.spec));
}

TEST(DeploymentSpecDigest, AnyValueChangeChangesTheDigest) {
  const std::string base_digest = SpecDigest(ParseDeploymentSpec(Full()).spec);
  const std::vector<std::pair<std::string, std::string>> edits = {
      {"name: stories", "name: stories2"},
      {"file://stories260K.gguf", "file://stories260K-b.gguf"},
      {"backend: cpu", "backend: cuda"},
      {"contextLength: 256", "contextLength: 257"},
      {"maxBatch: 4", "maxBatch: 5"},
      {"threads: 2", "threads: 3"},
      {"temperature: 0.7", "temperature: 0.70001"},
      {"topK: 20", "topK: 21"},
      {"topP: 0.9", "topP: 0.91"},
      {"minP: 0.0", "minP: 0.01"},
      {"repeatPenalty: 1.1", "repeatPenalty: 1.2"},
      {"repeatLastN: 32", "repeatLastN: 33"},
      {"seed: 7", "seed: 8"},
      {"NVIDIA L4", "NVIDIA L40S"},
      {"count: 1", "count: 2"},
      {"min: 1", "min: 2"},
      {"max: 3", "max: 4"},
      {"targetQueueDepth: 8", "targetQueueDepth: 9"},
      {"scaleToZeroAfter: 15m", "scaleToZeroAfter: 16m"},
      {"\"Once upon a time\", \"The cat\"", "\"The cat\", \"Once upon a time\""},
      {"\"The cat\"]", "\"The cat.\"]"},
      {"maxTokens: 48", "maxTokens: 49"},
      {"maxTimeToFirstTokenMs: 500", "maxTimeToFirstTokenMs: 501"},
      {"minTokensPerSecond: 10", "minTokensPerSecond: 11"},
      {"on-prem]", "on-prem, azure/westeurope]"},
      {"tier: gold", "tier: silver"},
      {"team: ml", "owner: ml"},
  };
  std::set<std::string> digests = {base_digest};
  for (const auto& [from, to] : edits) {
    std::string text = Full();
    const auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
    auto r = ParseDeploymentSpec(text);
    ASSERT_TRUE(r.ok()) << to << ": " << r.errors[0].ToString();
    EXPECT_TRUE(digests.insert(SpecDigest(r.spec)).second) << "digest unchanged by " << to;
  }
  // The sha256 is compared as a value: one digit different is another model.
  std::string text = Full();
  text.replace(text.find(kSha), 1, "1");
  EXPECT_NE(SpecDigest(ParseDeploymentSpec(text).spec), base_digest);
}

TEST(DeploymentSpecDigest, CanonicalJsonIsCompactSortedAndReparses) {
  auto a = ParseDeploymentSpec(Full());
  ASSERT_TRUE(a.ok());
  const std::string json = CanonicalJson(a.spec);
  EXPECT_EQ(json, nlohmann::json::parse(json).dump()) << "not compact";
  EXPECT_EQ(json.find("\": "), std::string::npos) << json;
  EXPECT_EQ(json.find('\n'), std::string::npos);
  EXPECT_LT(json.find("\"apiVersion\""), json.find("\"engine\""));
  EXPECT_LT(json.find("\"engine\""), json.find("\"kind\""));
  EXPECT_NE(json.find("\"scaleToZeroAfter\":900"), std::string::npos);
  EXPECT_NE(json.find("\"temperature\":0.7"), std::string::npos);
  // JSON is YAML: the canonical form is itself a valid spec with the same digest.
  auto b = ParseDeploymentSpec(json);
  ASSERT_TRUE(b.ok()) << b.errors[0].ToString();
  EXPECT_EQ(CanonicalJson(b.spec), json);
  EXPECT_EQ(SpecDigest(a.spec), Sha256Hex(json));
}

TEST(DeploymentSpecFile, LoadReportsFileLineColumn) {
  const auto path = std::filesystem::path(::testing::TempDir()) / "bad_spec.yaml";
  {
    std::ofstream out(path);
    out << Minimal() << "engine:\n  maxBatch: -1\n";
  }
  auto r = LoadDeploymentSpec(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(path.string() + ":11:13: engine.maxBatch"), std::string::npos)
      << r.status().message();
  EXPECT_EQ(LoadDeploymentSpec(path.string() + ".missing").status().code(), StatusCode::kNotFound);
}

TEST(Sha256, KnownVectorsAndTokenDigest) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // Token ids hash as little-endian int32: {1, 256} is the bytes 01 00 00 00 00 01 00 00.
  const int32_t ids[] = {1, 256};
  const std::string bytes("\x01\x00\x00\x00\x00\x01\x00\x00", 8);
  EXPECT_EQ(ToHex(TokenIdsDigest(ids)), Sha256Hex(bytes));
  auto back = FromHex("00ff7A");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, (std::vector<uint8_t>{0x00, 0xff, 0x7a}));
  EXPECT_FALSE(FromHex("0g").ok());
  EXPECT_FALSE(FromHex("abc").ok());
}

}  // namespace
}  // namespace sextant::spec
