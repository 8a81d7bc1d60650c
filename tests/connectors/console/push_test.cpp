// Push and rollback from the console store to real agents over mutual TLS on 127.0.0.1, each
// checking the signed report against its trusted console key, the model's sha256 in its own
// store, and re-running the validation prompts on the real engine (stories260K, CPU).
#include "connectors/console/push.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <fstream>
#include <map>

#include "connectors/agent/agent_client.h"
#include "connectors/console/fleet_connector.h"
#include "connectors/console/rollout_channel.h"
#include "tests/connectors/console/push_test_fleet.h"

namespace sextant::rpc {
namespace {

namespace fs = std::filesystem;
using console::TargetState;

using pushtest::TinyModel;

class PushTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(TinyModel())) {
      GTEST_SKIP() << "no " << TinyModel() << " (the shared models folder is absent)";
    }
    fleet_ = std::make_unique<pushtest::LocalFleet>(
        fs::temp_directory_path() /
        ("push_test_" + std::to_string(::getpid()) + "_" +
         ::testing::UnitTest::GetInstance()->current_test_info()->name()));
    ASSERT_TRUE(fleet_->Init(TinyModel()).ok());
  }
  void TearDown() override { fleet_.reset(); }

  PushRequest Request(const fs::path& spec) {
    PushRequest r;
    r.spec_file = spec;
    r.targets = fleet_->TargetNames();
    r.signing_key = fleet_->key_path();
    r.call_deadline = std::chrono::milliseconds(20000);
    r.validation_deadline = std::chrono::milliseconds(120000);
    r.on_event = [this](const console::PushEvent& e) {
      events_.push_back(e.target + " " + std::string(console::TargetStateName(e.state)));
    };
    return r;
  }
  // What agent i's durable desired state holds for "tiny": {generation, bare digest}, or {0, ""}.
  std::pair<int64_t, std::string> Desired(size_t i) {
    auto rec = fleet_->agent(i).state->Get("tiny");
    if (!rec.ok()) return {0, ""};
    return {rec->generation, console::BareDigest(rec->spec_digest)};
  }
  static const console::TargetOutcome& Of(const console::PushResult& r, const std::string& t) {
    for (const auto& o : r.targets) {
      if (o.target == t) return o;
    }
    static console::TargetOutcome none;
    ADD_FAILURE() << "no outcome for " << t;
    return none;
  }

  std::unique_ptr<pushtest::LocalFleet> fleet_;
  std::vector<std::string> events_;
};

TEST_F(PushTest, PushesToFiveAgentsWhoseOutputDigestsEqualTheLocalReport) {
  ASSERT_TRUE(fleet_->StartAgents(5).ok());
  auto spec = fleet_->WriteAndValidate("tiny", 24);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  const std::string local = fleet_->last_report().output_digest;
  auto r = Request(*spec);
  r.max_unavailable = 2;
  r.canary = "agent-2";
  auto result = PushFromStore(fleet_->store(), r);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_TRUE(result->ok) << result->stopped_because;
  EXPECT_EQ(result->local_output_digest, local);
  ASSERT_EQ(result->targets.size(), 5u);
  for (const auto& o : result->targets) {
    EXPECT_EQ(o.state, TargetState::kDone) << o.target << ": " << o.error;
    EXPECT_EQ(o.output_digest, local) << o.target;
    EXPECT_EQ(o.comparison, "exact (cpu): match");
    EXPECT_EQ(o.backend, "cpu");
    EXPECT_EQ(o.generation, 1);
  }
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(Desired(i), std::make_pair(int64_t{1}, console::BareDigest(result->spec_digest)));
  }
  EXPECT_EQ(events_.front(), "agent-2 applying");

  // The same digest again: nothing is applied, no generation moves.
  auto again = PushFromStore(fleet_->store(), Request(*spec));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(again->ok);
  EXPECT_TRUE(again->no_op);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(Desired(i).first, 1);

  // The journal has both rollouts, newest first.
  auto history = fleet_->store().rollouts().List("tiny");
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 2u);
  EXPECT_TRUE((*history)[0].no_op);
  EXPECT_EQ((*history)[1].targets.size(), 5u);
  EXPECT_EQ((*history)[1].targets[0].output_digest, local);
}

TEST_F(PushTest, AModelAlteredByOneByteIsRefusedAndTheRolloutRollsBackToThePreviousGeneration) {
  ASSERT_TRUE(fleet_->StartAgents(5).ok());
  auto v1 = fleet_->WriteAndValidate("tiny", 18);
  ASSERT_TRUE(v1.ok()) << v1.status().ToString();
  auto first = PushFromStore(fleet_->store(), Request(*v1));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE(first->ok) << first->stopped_because;
  const std::string v1_digest = console::BareDigest(first->spec_digest);

  // One byte of agent-3's copy of the model changes.
  const fs::path copy = fleet_->agent(3).model_store / TinyModel().filename();
  {
    std::fstream f(copy, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(fs::file_size(copy) / 2));
    char c = 0;
    f.read(&c, 1);
    f.seekp(static_cast<std::streamoff>(fs::file_size(copy) / 2));
    c = static_cast<char>(c ^ 1);
    f.write(&c, 1);
  }
  auto v2 = fleet_->WriteAndValidate("tiny", 26);
  ASSERT_TRUE(v2.ok());
  auto r = Request(*v2);
  r.canary = "agent-0";
  auto result = PushFromStore(fleet_->store(), r);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_FALSE(result->ok);
  const auto& refused = Of(*result, "agent-3");
  EXPECT_EQ(refused.state, TargetState::kRefused);
  // The console (the vendor) reads only that the model is not available there; agent-3's own
  // audit record keeps the cause for its owner.
  EXPECT_NE(refused.error.find("model not available"), std::string::npos) << refused.error;
  bool cause_recorded = false;
  auto recs =
      fleet_->agent(3).audit->Query({.after_seq = 0, .limit = 1000, .rpc = "ApplyDeployment"});
  ASSERT_TRUE(recs.ok());
  for (const auto& rec : *recs) {
    cause_recorded = cause_recorded || rec.entry.detail.find("model sha256 mismatch: store has ") !=
                                           std::string::npos;
  }
  EXPECT_TRUE(cause_recorded);
  EXPECT_NE(result->stopped_because.find("agent-3 refused"), std::string::npos);
  // agent-0..2 ran v2 and are back on v1 (a new generation with v1's spec); agent-3 never
  // changed; agent-4 was never reached.
  for (size_t i = 0; i < 3; ++i) {
    const auto& o = Of(*result, "agent-" + std::to_string(i));
    EXPECT_EQ(o.state, TargetState::kRolledBack) << o.target << ": " << o.error;
    EXPECT_EQ(o.previous_generation, 1);
    EXPECT_EQ(o.generation, 3);
    EXPECT_EQ(Desired(i), std::make_pair(int64_t{3}, v1_digest)) << i;
  }
  EXPECT_EQ(Desired(3), std::make_pair(int64_t{1}, v1_digest));
  EXPECT_EQ(Of(*result, "agent-4").state, TargetState::kPending);
  EXPECT_EQ(Desired(4), std::make_pair(int64_t{1}, v1_digest));
  // Nothing is left for `sextant rollback` of that push.
  auto rb = RollbackFromStore(fleet_->store(), "tiny");
  EXPECT_EQ(rb.status().code(), StatusCode::kNotFound) << rb.status().ToString();
}

TEST_F(PushTest, AnAlteredReportSignatureIsRefused) {
  ASSERT_TRUE(fleet_->StartAgents(2).ok());
  auto spec = fleet_->WriteAndValidate("tiny", 16);
  ASSERT_TRUE(spec.ok());
  // The test's own connection to the console's file, to alter a stored row.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(fleet_->store().path().c_str(), &db), SQLITE_OK);
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> close_db(db, sqlite3_close);
  sqlite3_busy_timeout(db, 5000);
  char* sig = nullptr;
  // The stored report's signature, altered in one hex digit: the console refuses to push it.
  auto flip = [&](const char* sql) {
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &sig), SQLITE_OK) << (sig ? sig : "");
  };
  flip(
      "UPDATE validation_reports SET signature = (CASE substr(signature, 1, 1) WHEN '0' THEN '1' "
      "ELSE '0' END) || substr(signature, 2)");
  auto refused = PushFromStore(fleet_->store(), Request(*spec));
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("does not verify"), std::string::npos)
      << refused.status().message();
  EXPECT_EQ(Desired(0).first, 0);

  // The agent refuses it too, when a push carries it anyway.
  auto target = fleet_->store().targets().Get("agent-0");
  ASSERT_TRUE(target.ok());
  auto ch = ConnectTargetChannel(*target, std::chrono::seconds(10), std::chrono::seconds(60));
  ASSERT_TRUE(ch.ok());
  auto stored = fleet_->store().reports().List();
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), 1u);
  auto loaded = spec::LoadDeploymentSpec(*spec);
  ASSERT_TRUE(loaded.ok());
  console::PushPlan plan;
  plan.deployment.name = "tiny";
  plan.deployment.spec_json = spec::CanonicalJson(*loaded);
  plan.deployment.spec_digest = spec::SpecDigest(*loaded);
  plan.deployment.model_uri = loaded->model.uri;
  plan.deployment.model_sha256 = loaded->model.sha256;
  plan.deployment.signed_report_json =
      report::SignedReportToJson((*stored)[0].signed_report).dump();
  plan.expected = {{"cpu", fleet_->last_report().output_digest, {}, 1}};
  plan.targets = {*ch};
  auto result = console::Push(plan, {});
  ASSERT_TRUE(result.ok());
  EXPECT_FALSE(result->ok);
  EXPECT_EQ(result->targets[0].state, TargetState::kRefused) << result->targets[0].error;
  EXPECT_EQ(Desired(0).first, 0);

  // A report signed by a key the agents do not trust is refused by them.
  flip("DELETE FROM validation_reports");
  auto other = report::SigningKey::Generate();
  ASSERT_TRUE(other.ok());
  std::error_code ec;
  fs::remove(fleet_->key_path(), ec);
  ASSERT_TRUE(other->Save(fleet_->key_path()).ok());
  auto signed_by_other = report::SignReport(fleet_->last_report(), *other);
  ASSERT_TRUE(signed_by_other.ok());
  ASSERT_TRUE(fleet_->store().reports().Add(fleet_->last_report(), *signed_by_other).ok());
  auto untrusted = PushFromStore(fleet_->store(), Request(*spec));
  ASSERT_TRUE(untrusted.ok()) << untrusted.status().ToString();
  EXPECT_FALSE(untrusted->ok);
  EXPECT_EQ(Of(*untrusted, "agent-0").state, TargetState::kRefused);
  EXPECT_NE(Of(*untrusted, "agent-0").error.find("not from a trusted console key"),
            std::string::npos)
      << Of(*untrusted, "agent-0").error;
  EXPECT_EQ(Of(*untrusted, "agent-1").state, TargetState::kPending);
  EXPECT_EQ(Desired(0).first, 0);
  EXPECT_EQ(Desired(1).first, 0);
}

TEST_F(PushTest, RollbackReturnsEveryTargetToItsPreviousGeneration) {
  ASSERT_TRUE(fleet_->StartAgents(3).ok());
  auto v1 = fleet_->WriteAndValidate("tiny", 16);
  ASSERT_TRUE(v1.ok());
  auto r1 = Request(*v1);
  r1.targets = {"agent-0", "agent-1"};
  auto first = PushFromStore(fleet_->store(), r1);
  ASSERT_TRUE(first.ok() && first->ok);
  auto v2 = fleet_->WriteAndValidate("tiny", 17);
  ASSERT_TRUE(v2.ok());
  auto r2 = Request(*v2);
  r2.targets.clear();
  r2.selector = "ring=even";  // agent-0 and agent-2
  r2.max_unavailable = 2;
  auto second = PushFromStore(fleet_->store(), r2);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  ASSERT_TRUE(second->ok) << second->stopped_because;
  ASSERT_EQ(second->targets.size(), 2u);

  auto back = RollbackFromStore(fleet_->store(), "tiny");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->ok) << back->stopped_because;
  EXPECT_EQ(back->kind, "rollback");
  const std::string v1_digest = console::BareDigest(first->spec_digest);
  EXPECT_EQ(Desired(0), std::make_pair(int64_t{3}, v1_digest));  // v1 re-applied
  EXPECT_EQ(Desired(1), std::make_pair(int64_t{1}, v1_digest));  // not in the push
  EXPECT_EQ(Desired(2).first, 0);                                // absent before: deleted
  EXPECT_EQ(Of(*back, "agent-0").state, TargetState::kRolledBack);
  EXPECT_EQ(Of(*back, "agent-2").state, TargetState::kRolledBack);
  // Once is enough.
  auto again = RollbackFromStore(fleet_->store(), "tiny");
  EXPECT_EQ(again.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(Desired(0).first, 3);
}

TEST_F(PushTest, NoPassingReportMeansNoPush) {
  ASSERT_TRUE(fleet_->StartAgents(1).ok());
  const fs::path spec = fleet_->root() / "unvalidated.yaml";
  std::ofstream(spec) << pushtest::SpecYaml("tiny", "stories260K.gguf", fleet_->model_sha(), 3);
  auto r = PushFromStore(fleet_->store(), Request(spec));
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("sextant validate"), std::string::npos);
  EXPECT_EQ(Desired(0).first, 0);
}

}  // namespace
}  // namespace sextant::rpc
