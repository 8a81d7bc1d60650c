#include "app/console/store/rollout_journal.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "app/console/store/console_database.h"

namespace sextant::console {
namespace {

namespace fs = std::filesystem;

class RolloutJournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("rollout_journal_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    auto db = ConsoleDatabase::Open(dir_);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(db).value();
  }
  void TearDown() override {
    db_.reset();
    fs::remove_all(dir_);
  }
  std::unique_ptr<ConsoleDatabase> db_;
  fs::path dir_;
};

TargetRecord Record(const std::string& target, int64_t prev_generation, int64_t generation,
                    TargetState state) {
  TargetRecord r;
  r.target = target;
  r.previous_known = true;
  if (prev_generation > 0) {
    RemoteDeployment prev;
    prev.generation = prev_generation;
    prev.spec.spec_json = "{\"name\":\"chat\"}";
    prev.spec.spec_digest = "sha256:" + std::string(64, 'a');
    prev.spec.model_uri = "file://m.gguf";
    prev.spec.model_sha256 = std::string(64, 'b');
    r.previous = prev;
  }
  r.generation = generation;
  r.state = state;
  return r;
}

// What rollback relies on: the state before the push, written before the apply, survives later
// updates of the same row, and the latest push that changed a target is the one found.
TEST_F(RolloutJournalTest, KeepsThePreviousStateAndFindsTheLatestPushThatChangedATarget) {
  RolloutJournal& j = db_->rollouts();
  EXPECT_EQ(j.LatestPush("chat").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(j.TargetsOfLatestPush("chat")->empty());

  auto first = j.Begin("push", "chat", "sha256:1");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE(j.RecordTarget(*first, Record("eu1", 3, 0, TargetState::kApplying)).ok());
  // The update keeps the previous state written first, whatever the later record says.
  TargetRecord later = Record("eu1", 0, 4, TargetState::kDone);
  ASSERT_TRUE(j.RecordTarget(*first, later).ok());
  ASSERT_TRUE(j.RecordTarget(*first, Record("us1", 0, 1, TargetState::kDone)).ok());
  PushResult result;
  result.ok = true;
  result.deployment = "chat";
  result.targets.push_back({});
  result.targets[0].target = "eu1";
  result.targets[0].state = TargetState::kDone;
  result.targets[0].generation = 4;
  ASSERT_TRUE(j.Finish(*first, result).ok());

  // A later push that changed nothing (refused everywhere) is not what rollback undoes.
  auto second = j.Begin("push", "chat", "sha256:2");
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(j.RecordTarget(*second, Record("eu1", 4, 0, TargetState::kRefused)).ok());

  auto latest = j.LatestPush("chat");
  ASSERT_TRUE(latest.ok()) << latest.status().ToString();
  EXPECT_EQ(latest->rollout_id, *first);
  EXPECT_EQ(latest->spec_digest, "sha256:1");
  ASSERT_EQ(latest->records.size(), 2u);
  EXPECT_EQ(latest->records[0].target, "eu1");
  ASSERT_TRUE(latest->records[0].previous.has_value());
  EXPECT_EQ(latest->records[0].previous->generation, 3);
  EXPECT_EQ(latest->records[0].previous->spec.model_uri, "file://m.gguf");
  EXPECT_EQ(latest->records[0].generation, 4);
  EXPECT_EQ(latest->records[0].state, TargetState::kDone);
  EXPECT_FALSE(latest->records[1].previous.has_value());  // us1 had no deployment before

  // The targets of the newest push with any row (scale's default targets).
  EXPECT_EQ(*j.TargetsOfLatestPush("chat"), std::vector<std::string>{"eu1"});

  auto history = j.List("chat");
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ((*history)[0].rollout_id, *second);  // newest first
  EXPECT_EQ((*history)[1].targets.size(), 1u);
  EXPECT_EQ((*history)[1].targets[0].generation, 4);
  EXPECT_TRUE((*history)[1].ok);
  EXPECT_EQ(j.List("other")->size(), 0u);
  EXPECT_EQ(j.List("", 1)->size(), 1u);
}

}  // namespace
}  // namespace sextant::console
