// The agent's desired state: idempotent apply with generations, persistence across reopen,
// optimistic concurrency, validation, listeners.
#include "app/agent/state/desired_state.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "app/agent/state/cpu_inventory.h"
#include "engine/base/sha256.h"

namespace sextant::agent {
namespace {

class DesiredStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sextant-state-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static ApplyRequest Spec(const std::string& name, int version) {
    ApplyRequest r;
    r.name = name;
    r.spec_json = "{\"name\":\"" + name + "\",\"version\":" + std::to_string(version) + "}";
    r.spec_digest = "sha256:" + Sha256Hex(r.spec_json);
    r.model_uri = "models/tiny.gguf";
    r.model_sha256 = std::string(64, 'a');
    r.applied_by = "spiffe://example.org/vendor/operator";
    return r;
  }

  std::filesystem::path dir_;
};

TEST_F(DesiredStateTest, ApplyIsIdempotentAndNewSpecsBumpTheGeneration) {
  auto s = DesiredState::Open(dir_);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto a = (*s)->Apply(Spec("chat", 1));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(a->changed);
  EXPECT_EQ(a->record.generation, 1);
  auto again = (*s)->Apply(Spec("chat", 1));
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->changed);
  EXPECT_EQ(again->record.generation, 1);
  auto b = (*s)->Apply(Spec("chat", 2));
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->changed);
  EXPECT_EQ(b->record.generation, 2);
  auto list = (*s)->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].spec_digest, Spec("chat", 2).spec_digest);
}

TEST_F(DesiredStateTest, SurvivesReopen) {
  {
    auto s = DesiredState::Open(dir_);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->Apply(Spec("a", 1)).ok());
    ASSERT_TRUE((*s)->Apply(Spec("b", 1)).ok());
    ASSERT_TRUE((*s)->Apply(Spec("b", 2)).ok());
  }
  auto s = DesiredState::Open(dir_);
  ASSERT_TRUE(s.ok());
  auto b = (*s)->Get("b");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->generation, 2);
  EXPECT_EQ(b->applied_by, "spiffe://example.org/vendor/operator");
  EXPECT_TRUE((*s)->IntegrityCheck().ok());
  EXPECT_EQ((*s)->Get("zzz").status().code(), StatusCode::kNotFound);
}

TEST_F(DesiredStateTest, DeleteThenApplyKeepsGenerationsIncreasing) {
  auto s = DesiredState::Open(dir_);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE((*s)->Apply(Spec("a", 1)).ok());
  ASSERT_TRUE((*s)->Apply(Spec("a", 2)).ok());
  auto d = (*s)->Delete("a");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->generation, 2);
  EXPECT_EQ((*s)->Delete("a").status().code(), StatusCode::kNotFound);
  auto again = (*s)->Apply(Spec("a", 1));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->record.generation, 3);
}

TEST_F(DesiredStateTest, OptimisticConcurrency) {
  auto s = DesiredState::Open(dir_);
  ASSERT_TRUE(s.ok());
  auto r = Spec("a", 1);
  r.require_absent = true;
  ASSERT_TRUE((*s)->Apply(r).ok());
  auto dup = Spec("a", 2);
  dup.require_absent = true;
  EXPECT_EQ((*s)->Apply(dup).status().code(), StatusCode::kFailedPrecondition);
  auto stale = Spec("a", 2);
  stale.if_generation = 5;
  EXPECT_EQ((*s)->Apply(stale).status().code(), StatusCode::kFailedPrecondition);
  stale.if_generation = 1;
  EXPECT_TRUE((*s)->Apply(stale).ok());
  EXPECT_EQ((*s)->Delete("a", 1).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE((*s)->Delete("a", 2).ok());
}

TEST_F(DesiredStateTest, RejectsBadInputNamingTheField) {
  auto s = DesiredState::Open(dir_);
  ASSERT_TRUE(s.ok());
  auto bad_name = Spec("Chat_1", 1);
  auto st = (*s)->Apply(bad_name).status();
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("character 0"), std::string::npos) << st.message();
  auto wrong_digest = Spec("a", 1);
  wrong_digest.spec_digest = Spec("a", 2).spec_digest;
  st = (*s)->Apply(wrong_digest).status();
  EXPECT_NE(st.message().find("does not match"), std::string::npos) << st.message();
  auto bad_model = Spec("a", 1);
  bad_model.model_sha256 = "xyz";
  st = (*s)->Apply(bad_model).status();
  EXPECT_NE(st.message().find("model_sha256"), std::string::npos) << st.message();
  auto not_json = Spec("a", 1);
  not_json.spec_json = "{not json";
  not_json.spec_digest = Sha256Hex(not_json.spec_json);
  st = (*s)->Apply(not_json).status();
  EXPECT_NE(st.message().find("JSON"), std::string::npos) << st.message();
  // A bare hex digest is accepted and stored normalized.
  auto bare = Spec("a", 1);
  bare.spec_digest = Sha256Hex(bare.spec_json);
  auto ok = (*s)->Apply(bare);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->record.spec_digest, "sha256:" + Sha256Hex(bare.spec_json));
}

TEST_F(DesiredStateTest, ListenersHearDurableChanges) {
  auto s = DesiredState::Open(dir_);
  ASSERT_TRUE(s.ok());
  std::vector<std::pair<DeploymentChange::Kind, int64_t>> seen;
  DesiredState* state = s->get();
  const int id = (*s)->Subscribe([&](const DeploymentChange& c) {
    // The change is visible to readers when the listener runs.
    if (c.kind == DeploymentChange::Kind::kApplied) {
      auto r = state->Get(c.record.name);
      EXPECT_TRUE(r.ok());
      if (r.ok()) {
        EXPECT_EQ(r->generation, c.record.generation);
      }
    }
    seen.emplace_back(c.kind, c.record.generation);
  });
  ASSERT_TRUE((*s)->Apply(Spec("a", 1)).ok());
  ASSERT_TRUE((*s)->Apply(Spec("a", 1)).ok());  // no change, no notification
  ASSERT_TRUE((*s)->Apply(Spec("a", 2)).ok());
  ASSERT_TRUE((*s)->Delete("a").ok());
  (*s)->Unsubscribe(id);
  ASSERT_TRUE((*s)->Apply(Spec("b", 1)).ok());
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], std::make_pair(DeploymentChange::Kind::kApplied, int64_t{1}));
  EXPECT_EQ(seen[1], std::make_pair(DeploymentChange::Kind::kApplied, int64_t{2}));
  EXPECT_EQ(seen[2], std::make_pair(DeploymentChange::Kind::kDeleted, int64_t{2}));
}

TEST(CpuInventory, ReportsTheCpuFromProc) {
  CpuInventorySource cpu;
  InventoryInfo inv = cpu.Snapshot();
  ASSERT_EQ(inv.devices.size(), 1u);
  EXPECT_EQ(inv.devices[0].kind, "cpu");
  EXPECT_GT(inv.devices[0].cores, 0);
  EXPECT_GT(inv.devices[0].memory_total_bytes, 0);
  EXPECT_FALSE(inv.devices[0].model.empty());
  EXPECT_EQ(inv.source, "cpu");
  EXPECT_FALSE(inv.node.empty());
}

}  // namespace
}  // namespace sextant::agent
