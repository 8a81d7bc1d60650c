#include "app/console/fleet/fleet.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace sextant::console {
namespace {

class FleetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("fleet_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    auto s = console::ConsoleDatabase::Open(dir_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    ASSERT_TRUE(store_->accounts().Add({"prod", "aws", "1111", {"eu-west-1"}, "", ""}).ok());
    for (const char* name : {"a", "b", "c"}) {
      console::Target t;
      t.name = name;
      t.endpoint = "127.0.0.1:1";
      t.account = std::string(name) == "c" ? "" : "prod";
      ASSERT_TRUE(store_->targets().Add(t).ok());
    }
    // a: 2 H100 + a CPU device, one deployment; b: 1 L4; c: nothing known.
    ASSERT_TRUE(store_->telemetry()
                    .ReplaceGpus("a", {{"a", "n1", 0, "cuda", "H100", 80, 0, 0, 0, 0, 0},
                                       {"a", "n1", 1, "cuda", "H100", 80, 0, 0, 0, 0, 0},
                                       {"a", "n1", 2, "cpu", "EPYC", 512, 0, 0, 0, 0, 0}})
                    .ok());
    ASSERT_TRUE(store_->telemetry()
                    .ReplaceGpus("b", {{"b", "n9", 0, "cuda", "L4", 24, 0, 0, 0, 0, 0}})
                    .ok());
    ASSERT_TRUE(store_->facts().Replace("a", "", {{"cloud.region", "eu-west-1"}}, 1).ok());
    ASSERT_TRUE(store_->facts().Replace("b", "", {{"cloud.region", "us-east-1"}}, 1).ok());
    now_ = console::NowMs();
    ASSERT_TRUE(store_->telemetry()
                    .AppendSamples({{"a", "n1", 0, now_, 1, 0.5, 40, 60, 300},
                                    {"a", "n1", 1, now_, 1, 1.0, 80, 60, 300},
                                    {"b", "n9", 0, now_, 1, 0.25, 6, 50, 70}},
                                   {{"a", "chat", now_, 1, 1, 1, 1, 2, 80, 250, 42.5, 3, 10, 20}})
                    .ok());
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::filesystem::path dir_;
  std::unique_ptr<console::ConsoleDatabase> store_;
  console::TimeMs now_ = 0;
};

TEST_F(FleetTest, TotalsGroupsAndStaleTargets) {
  ASSERT_TRUE(store_->targets()
                  .SetStatus({"a", console::ConnState::kConnected, now_, now_, "", "", ""})
                  .ok());
  // b's last report is a minute old although its state says connected: stale since then.
  ASSERT_TRUE(store_->targets()
                  .SetStatus({"b", console::ConnState::kConnected, now_ - 60'000, now_ - 60'000, "",
                              "", ""})
                  .ok());
  ASSERT_TRUE(store_->targets()
                  .SetStatus({"c", console::ConnState::kError, now_, 0,
                              "unreachable: connection refused", "", ""})
                  .ok());
  auto snap = LoadFleet(*store_, now_, 30'000);
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  ASSERT_EQ(snap->accounts.size(), 2u);  // "(none)" and "prod"
  EXPECT_EQ(snap->accounts[1].name, "prod");
  EXPECT_EQ(snap->accounts[1].targets.size(), 2u);
  FleetRow t = Totals(*snap);
  EXPECT_EQ(t.targets, 3);
  EXPECT_EQ(t.connected, 1);
  EXPECT_EQ(t.stale, 1);
  EXPECT_EQ(t.unreachable, 1);
  EXPECT_EQ(t.gpus, 3);  // the CPU device is no GPU
  EXPECT_DOUBLE_EQ(t.utilization, (0.5 + 1.0 + 0.25) / 3);
  EXPECT_EQ(t.memory_used_bytes, 126);
  EXPECT_EQ(t.memory_total_bytes, 184);
  EXPECT_EQ(t.replicas_ready, 1);
  EXPECT_EQ(t.replicas_desired, 2);
  EXPECT_DOUBLE_EQ(t.ttft_p99_ms, 250);
  EXPECT_DOUBLE_EQ(t.tokens_per_s, 42.5);

  auto by_target = Summarize(*snap, FleetGroupBy::kTarget);
  ASSERT_EQ(by_target.size(), 3u);
  EXPECT_EQ(by_target[0].status, "connected");
  EXPECT_EQ(by_target[1].status.rfind("stale since ", 0), 0u) << by_target[1].status;
  EXPECT_EQ(by_target[2].status, "error: unreachable: connection refused");
  auto by_gpu = Summarize(*snap, FleetGroupBy::kGpu);
  ASSERT_EQ(by_gpu.size(), 2u);
  EXPECT_EQ(by_gpu[0].key, "H100");
  EXPECT_EQ(by_gpu[0].gpus, 2);
  EXPECT_EQ(by_gpu[1].key, "L4");
  auto by_region = Summarize(*snap, FleetGroupBy::kRegion);
  ASSERT_EQ(by_region.size(), 3u);
  EXPECT_EQ(by_region[0].key, "(unknown)");
  auto by_account = Summarize(*snap, FleetGroupBy::kAccount);
  EXPECT_EQ(by_account[1].key, "prod");
  EXPECT_EQ(by_account[1].targets, 2);
  EXPECT_FALSE(ParseFleetGroupBy("zone").ok());
}

}  // namespace
}  // namespace sextant::console
