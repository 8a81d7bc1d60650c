// RunValidation over real mutual TLS with the real engine: given the digests of `sextant
// validate` for the same spec, the agent answers that its outputs match them, prompt by prompt,
// and says which do not when one is altered; the response carries match answers and figures
// only, never a digest of its own output. WatchMetrics carries the autoscaler's fields and
// scaling events.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "app/agent/state/engine_validation_runner.h"
#include "app/common/validation_runner.h"
#include "tests/app/agent/state/tiny_deployment.h"
#include "tests/connectors/agent/agent_test_env.h"

namespace sextant::rpc {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::sextant::v1;
using std::chrono::milliseconds;
using testing_agent::TinyDeployment;

v1::ApplyDeploymentRequest ApplyOf(const TinyDeployment& d) {
  v1::ApplyDeploymentRequest req;
  auto* s = req.mutable_spec();
  s->set_name(d.record.name);
  s->set_spec_json(d.record.spec_json);
  s->set_spec_digest(d.record.spec_digest);
  s->set_model_uri(d.record.model_uri);
  s->set_model_sha256(d.record.model_sha256);
  return req;
}

void ExpectAgentMatchesLocal(const std::string& env_name, const std::string& file,
                             const fs::path& source, bool chat = false) {
  testing_env::AgentEnv env;
  ASSERT_EQ(env.Init(env_name), "");
  TinyDeployment d;
  ASSERT_EQ(testing_agent::MakeDeployment(env.dir / "models", file, source, &d, chat), "");
  agent::EngineValidationRunner runner(d.store);
  env.deps.validation = &runner;
  env.options.model_store = d.store;
  ASSERT_TRUE(env.Start().ok());
  ASSERT_TRUE(env.Approve(d.record.spec_digest).ok());

  validate::ValidateOptions local;
  local.model_dir = d.store;
  auto expected = validate::RunValidation(d.spec, local);
  ASSERT_TRUE(expected.ok()) << expected.status().ToString();

  auto op = env.Client("vendor/operator");
  auto applied = op->ApplyDeployment(ApplyOf(d));
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  v1::RunValidationRequest req;
  req.set_name(d.spec.name);
  req.set_generation(applied->generation());
  auto* e = req.add_expected();
  e->set_backend(expected->report.backend);
  for (const auto& p : expected->report.prompts) e->add_prompt_output_digests(p.output_digest);
  auto got = op->RunValidation(req, milliseconds(60000));
  ASSERT_TRUE(got.ok()) << got.status().ToString();

  EXPECT_TRUE(got->output_matches());
  EXPECT_EQ(got->compared_with_backend(), expected->report.backend);
  EXPECT_EQ(got->spec_digest(), d.record.spec_digest);
  EXPECT_EQ(got->model_sha256(), expected->report.model_sha256);
  EXPECT_EQ(got->engine_build_id(), expected->report.engine_build_id);
  EXPECT_EQ(got->backend(), expected->report.backend);
  EXPECT_EQ(got->device(), expected->report.device);
  EXPECT_EQ(got->threads(), expected->report.threads);
  EXPECT_GT(got->peak_memory_bytes(), 0);
  ASSERT_EQ(got->prompts_size(), static_cast<int>(expected->report.prompts.size()));
  EXPECT_EQ(got->prompts_matching(), got->prompts_size());
  for (int i = 0; i < got->prompts_size(); ++i) {
    EXPECT_TRUE(got->prompts(i).output_matches()) << "prompt " << i;
    EXPECT_GT(got->prompts(i).ttft_ms(), 0);
    // Nothing that tells the output: no digest of it, not even its length.
    EXPECT_TRUE(got->prompts(i).output_tokens_digest().empty());
    EXPECT_EQ(got->prompts(i).generated_tokens(), 0);
    EXPECT_FALSE(got->prompts(i).stopped_at_eos());
  }
  EXPECT_TRUE(got->output_digest().empty());
  // Answers and figures only: no prompt, no output text, no output digest in the response.
  const std::string wire = got->SerializeAsString();
  for (const auto& prompt : d.spec.validation.prompts) {
    if (!prompt.is_conversation()) {
      EXPECT_EQ(wire.find(prompt.text), std::string::npos) << prompt.text;
    }
    for (const auto& m : prompt.messages) {
      EXPECT_EQ(wire.find(m.content), std::string::npos) << m.content;
    }
  }
  for (const auto& text : expected->output_texts) {
    if (text.size() >= 8) {
      EXPECT_EQ(wire.find(text), std::string::npos) << text;
    }
  }
  EXPECT_EQ(wire.find(expected->report.output_digest), std::string::npos);
  for (const auto& p : expected->report.prompts) {
    EXPECT_EQ(wire.find(p.output_digest), std::string::npos);
  }

  // One expected digest altered: that prompt, and only that one, does not match.
  e->set_prompt_output_digests(1, std::string(64, '0'));
  auto altered = op->RunValidation(req, milliseconds(60000));
  ASSERT_TRUE(altered.ok()) << altered.status().ToString();
  EXPECT_FALSE(altered->output_matches());
  EXPECT_TRUE(altered->prompts(0).output_matches());
  EXPECT_FALSE(altered->prompts(1).output_matches());
  EXPECT_EQ(altered->prompts_matching(), altered->prompts_size() - 1);

  // A stale generation is refused.
  req.set_generation(applied->generation() + 1);
  EXPECT_EQ(op->RunValidation(req).status().code(), StatusCode::kFailedPrecondition);
  // Nothing to compare with: refused, naming what is missing.
  req.set_generation(applied->generation());
  req.clear_expected();
  auto none = op->RunValidation(req);
  EXPECT_EQ(none.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(none.status().message().find("expected"), std::string::npos);
}

TEST(AgentRunValidation, OutputsMatchLocalValidationOnASynthesizedModel) {
  ExpectAgentMatchesLocal("validation-synth", "tiny.gguf", {});
}

// Conversations are formatted by the same chat template on the agent as on the workstation, so
// the outputs of a chat validation match too; and formatting did happen (a conversation whose
// last user message equals a text prompt gives other tokens than that text prompt).
TEST(AgentRunValidation, OutputsOfConversationsMatchLocalValidation) {
  ExpectAgentMatchesLocal("validation-chat", "tiny.gguf", {}, /*chat=*/true);
}

TEST(AgentRunValidation, OutputsMatchLocalValidationOnStories260K) {
  const fs::path stories = fs::path(SEXTANT_SHARED_DIR) / "models" / "stories260K.gguf";
  if (!fs::exists(stories)) GTEST_SKIP() << "no " << stories << " (a checkout without ../shared)";
  ExpectAgentMatchesLocal("validation-stories", "stories260K.gguf", stories);
}

// An observer with fixed figures and a list of scaling events that grows while streams run.
class FakeObserver : public agent::DeploymentObserver {
 public:
  std::optional<agent::DeploymentStatusInfo> StatusOf(const std::string&) override { return {}; }
  std::vector<agent::DeploymentMetricsInfo> Metrics() override {
    agent::DeploymentMetricsInfo m;
    m.name = "chat";
    m.replicas_ready = 1;
    m.replicas_desired = 3;
    m.replicas_pending = 2;
    m.pending_reason = "no free device for 2 replicas";
    m.in_flight = 5;
    return {m};
  }
  std::vector<agent::ScalingEventInfo> ScalingEventsSince(int64_t after) override {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<agent::ScalingEventInfo> out;
    for (const auto& e : events) {
      if (e.at_unix_ms > after) out.push_back(e);
    }
    return out;
  }
  void Add(int64_t at, int from, int to) {
    std::lock_guard<std::mutex> lock(mu);
    events.push_back({"chat", from, to, "scale-up: queue 12 > 4 x 1 replicas", at, 12, 5});
  }
  std::mutex mu;
  std::vector<agent::ScalingEventInfo> events;
};

TEST(AgentWatchMetrics, CarriesAutoscalerFieldsAndEachScalingEventOncePerStream) {
  testing_env::AgentEnv env;
  ASSERT_EQ(env.Init("metrics-scaling"), "");
  FakeObserver observer;
  observer.Add(1000, 1, 2);
  env.deps.observer = &observer;
  ASSERT_TRUE(env.Start().ok());
  auto op = env.Client("vendor/operator");

  std::mutex mu;
  std::vector<v1::MetricsSnapshot> snaps;
  auto watch = op->WatchMetrics(250, milliseconds(60000), [&](const v1::MetricsSnapshot& s) {
    std::lock_guard<std::mutex> lock(mu);
    snaps.push_back(s);
  });
  auto count = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return snaps.size();
  };
  const auto end = std::chrono::steady_clock::now() + milliseconds(10000);
  while (count() < 2 && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  observer.Add(2000, 2, 3);
  const size_t before = count();
  while (count() < before + 3 && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  watch->Cancel();
  (void)watch->Wait();

  std::lock_guard<std::mutex> lock(mu);
  ASSERT_GE(snaps.size(), 4u);
  const auto& d = snaps[0].deployments(0);
  EXPECT_EQ(d.replicas_desired(), 3);
  EXPECT_EQ(d.replicas_pending(), 2);
  EXPECT_EQ(d.pending_reason(), "no free device for 2 replicas");
  EXPECT_EQ(d.in_flight(), 5);
  std::vector<int64_t> seen;
  for (const auto& s : snaps) {
    for (const auto& e : s.scaling_events()) {
      seen.push_back(e.at_unix_ms());
      EXPECT_EQ(e.deployment(), "chat");
      EXPECT_EQ(e.to_replicas(), e.from_replicas() + 1);
      EXPECT_EQ(e.queue_depth(), 12);
      EXPECT_EQ(e.in_flight(), 5);
      EXPECT_FALSE(e.reason().empty());
    }
  }
  EXPECT_EQ(seen, (std::vector<int64_t>{1000, 2000}));
  ASSERT_EQ(snaps[0].scaling_events_size(), 1);  // the first snapshot carries what is kept
}

}  // namespace
}  // namespace sextant::rpc
