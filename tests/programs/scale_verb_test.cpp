// `sextant scale` end to end: the console program against real agents over mutual TLS on
// 127.0.0.1 (in this process, each checking the signed report against its trusted console key,
// the model in its own store, and re-running the validation prompts on the real engine).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "app/common/spec_diff.h"
#include "connectors/console/push.h"
#include "tests/connectors/console/push_test_fleet.h"
#include "tests/support/command.h"

namespace sextant::rpc {
namespace {

namespace fs = std::filesystem;
using sextant::testing::RunCommand;

using pushtest::TinyModel;

class ScaleVerbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(TinyModel())) {
      GTEST_SKIP() << "no " << TinyModel() << " (the shared models folder is absent)";
    }
    fleet_ = std::make_unique<pushtest::LocalFleet>(
        fs::temp_directory_path() /
        ("scale_verb_test_" + std::to_string(::getpid()) + "_" +
         ::testing::UnitTest::GetInstance()->current_test_info()->name()));
    ASSERT_TRUE(fleet_->Init(TinyModel()).ok());
  }
  void TearDown() override { fleet_.reset(); }

  std::string Sextant(const std::string& args) {
    return std::string(SEXTANT_CONSOLE_BIN) + " scale " + args + " --state " +
           (fleet_->root() / "console").string() + " --key " + fleet_->key_path().string() +
           " --deadline 20 --validation-deadline 120";
  }
  // The JSON document of the output (stderr lines, if any, come before it).
  static nlohmann::json Json(const std::string& out) {
    const size_t at = out.rfind("\n{\n") != std::string::npos ? out.find("\n{\n") + 1 : 0;
    if (out.compare(at, 2, "{\n") != 0) return nullptr;
    return nlohmann::json::parse(out.substr(at), nullptr, false);
  }
  // The pushed spec of "tiny" (through the library, as `sextant push` does).
  void PushTiny(size_t agents) {
    // Rescaling makes a new spec digest: this customer admits every spec of the model.
    fleet_->AdmitEverySpecOfTheModel();
    ASSERT_TRUE(fleet_->StartAgents(agents).ok());
    auto spec = fleet_->WriteAndValidate("tiny", 18);
    ASSERT_TRUE(spec.ok()) << spec.status().ToString();
    PushRequest r;
    r.spec_file = *spec;
    r.targets = fleet_->TargetNames();
    r.signing_key = fleet_->key_path();
    r.call_deadline = std::chrono::milliseconds(20000);
    r.validation_deadline = std::chrono::milliseconds(120000);
    auto pushed = PushFromStore(fleet_->store(), r);
    ASSERT_TRUE(pushed.ok()) << pushed.status().ToString();
    ASSERT_TRUE(pushed->ok) << pushed->stopped_because;
    old_digest_ = console::BareDigest(pushed->spec_digest);
  }
  // Successful applies of "tiny" in agent i's audit log.
  int64_t ApplyRecords(size_t i) {
    agent::AuditQuery q;
    q.rpc = "ApplyDeployment";
    q.limit = 1000;
    auto recs = fleet_->agent(i).audit->Query(q);
    EXPECT_TRUE(recs.ok());
    int64_t n = 0;
    // Each apply is two records: "allowed" before it takes effect, then its outcome.
    for (const auto& r : *recs) n += r.entry.target == "tiny" && r.entry.outcome == "ok" ? 1 : 0;
    return n;
  }

  std::unique_ptr<pushtest::LocalFleet> fleet_;
  std::string old_digest_;
};

TEST_F(ScaleVerbTest, ScalesEveryTargetThroughANewGenerationWithACarriedReport) {
  PushTiny(3);
  std::vector<int64_t> applies_before;
  for (size_t i = 0; i < 3; ++i) applies_before.push_back(ApplyRecords(i));
  const fs::path written = fleet_->root() / "tiny-scaled.json";

  auto r = RunCommand(Sextant("tiny --min 2 --max 4 -o json --write " + written.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = Json(r.output);
  ASSERT_TRUE(j.is_object()) << r.output;
  EXPECT_EQ(j["replicas"]["min"]["from"], 1);
  EXPECT_EQ(j["replicas"]["min"]["to"], 2);
  EXPECT_EQ(j["replicas"]["max"]["from"], 1);
  EXPECT_EQ(j["replicas"]["max"]["to"], 4);
  EXPECT_EQ(j["from_spec_digest"], "sha256:" + old_digest_);
  const std::string new_digest = console::BareDigest(j["spec_digest"].get<std::string>());
  EXPECT_NE(new_digest, old_digest_);
  ASSERT_EQ(j["carried_reports"].size(), 1u) << j.dump(2);
  ASSERT_EQ(j["rollout"]["targets"].size(), 3u);
  for (const auto& t : j["rollout"]["targets"]) {
    EXPECT_EQ(t["state"], "done") << t.dump();
    EXPECT_EQ(t["previous_generation"], 1);
    EXPECT_EQ(t["generation"], 2);
    EXPECT_EQ(t["comparison"], "exact (cpu): match");
  }

  // Every agent's durable state: generation 2 of the new digest, with the new bounds and
  // nothing else changed; its audit log has the apply.
  auto old_spec = spec::LoadDeploymentSpec(fleet_->root() / "tiny-18.yaml");
  ASSERT_TRUE(old_spec.ok());
  for (size_t i = 0; i < 3; ++i) {
    auto rec = fleet_->agent(i).state->Get("tiny");
    ASSERT_TRUE(rec.ok());
    EXPECT_EQ(rec->generation, 2);
    EXPECT_EQ(console::BareDigest(rec->spec_digest), new_digest);
    auto parsed = spec::ParseDeploymentSpec(rec->spec_json);
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(parsed.spec.resources.replicas_min, 2);
    EXPECT_EQ(parsed.spec.resources.replicas_max, 4);
    std::vector<std::string> fields;
    for (const auto& d : spec::DiffSpecs(*old_spec, parsed.spec)) fields.push_back(d.field);
    EXPECT_EQ(fields,
              (std::vector<std::string>{"resources.replicas.max", "resources.replicas.min"}));
    EXPECT_EQ(ApplyRecords(i), applies_before[i] + 1) << "agent-" << i;
  }

  // The carried report: stored, signed by the console key, naming the report it came from.
  console::ReportRepository& reports = fleet_->store().reports();
  auto stored = reports.List(new_digest);
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), 1u);
  auto key = report::SigningKey::Load(fleet_->key_path());
  ASSERT_TRUE(key.ok());
  auto verified = console::VerifyStoredReport((*stored)[0], key->public_key());
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  ASSERT_TRUE(verified->carried_from.has_value());
  EXPECT_EQ(verified->carried_from->spec_digest, old_digest_);
  EXPECT_EQ(verified->output_digest, fleet_->last_report().output_digest);
  // `sextant reports show` says where a carried report's figures come from.
  auto shown = RunCommand(std::string(SEXTANT_CONSOLE_BIN) + " reports show " +
                          std::to_string((*stored)[0].id) + " --state " +
                          (fleet_->root() / "console").string());
  ASSERT_EQ(shown.exit_code, 0) << shown.output;
  EXPECT_NE(shown.output.find("carried from  report " +
                              std::to_string(verified->carried_from->report_id) + " (spec digest " +
                              old_digest_),
            std::string::npos)
      << shown.output;

  // The written spec is the new spec.
  auto saved = spec::LoadDeploymentSpec(written);
  ASSERT_TRUE(saved.ok()) << saved.status().ToString();
  EXPECT_EQ(spec::SpecDigest(*saved), new_digest);

  // The same bounds again: the new spec's report is reused, nothing is applied.
  r = RunCommand(Sextant("tiny --min 2 --max 4"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("no-op"), std::string::npos) << r.output;
  EXPECT_EQ(reports.List(new_digest)->size(), 1u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(fleet_->agent(i).state->Get("tiny")->generation, 2);

  // Back down to one replica, as a table: a third generation, what changed is printed.
  r = RunCommand(Sextant("tiny --max 1 --min 1"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("replicas min 2 -> 1, max 4 -> 1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("2 -> 3"), std::string::npos) << r.output;
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(console::BareDigest(fleet_->agent(i).state->Get("tiny")->spec_digest), old_digest_);
  }
}

TEST_F(ScaleVerbTest, AnUnknownDeploymentOrBadBoundsAreClearErrors) {
  ASSERT_TRUE(fleet_->StartAgents(1).ok());
  auto r = RunCommand(Sextant("nope --min 1 --max 2"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("no push of deployment 'nope'"), std::string::npos) << r.output;

  // Named targets that do not run it.
  r = RunCommand(Sextant("nope --min 1 --max 2 --to agent-0"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("agent-0 has no deployment 'nope'"), std::string::npos) << r.output;

  r = RunCommand(Sextant("nope --min 3 --max 2"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--min 3 is above --max 2"), std::string::npos) << r.output;
  r = RunCommand(Sextant("nope"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

}  // namespace
}  // namespace sextant::rpc
