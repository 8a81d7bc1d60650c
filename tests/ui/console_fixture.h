// A console store in a temp dir filled the way the fleet connector fills it (accounts, targets,
// statuses, inventory, deployments, samples, facts), so the GUI's models and views can be
// checked against known values. Shared by the ui tests.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "app/console/compliance/pack.h"
#include "app/console/cost/price_catalog.h"
#include "app/console/store/console_database.h"
#include "ui/console_snapshot.h"

namespace sextant::ui::testing {

constexpr int64_t kGiB = 1024LL * 1024 * 1024;

inline std::filesystem::path ScratchDir(const std::string& what) {
  auto dir = std::filesystem::temp_directory_path() /
             ("sextant_ui_" + what + "_" + std::to_string(::getpid()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline SnapshotSources TestSources() {
  SnapshotSources s;
  auto catalog = console::PriceCatalog::LoadDir(std::filesystem::path(SEXTANT_SOURCE_DIR) /
                                                "resources/prices");
  EXPECT_TRUE(catalog.ok()) << catalog.status().ToString();
  if (catalog.ok()) s.catalog = std::make_shared<const console::PriceCatalog>(*catalog);
  auto packs = console::LoadPacks(std::filesystem::path(SEXTANT_SOURCE_DIR) / "resources/policies");
  EXPECT_TRUE(packs.ok()) << packs.status().ToString();
  if (packs.ok()) s.packs = *packs;
  s.stale_after_ms = 60'000;
  return s;
}

// Two accounts; "eu1" (2 H100s, deployment "chat") connected, "us1" (1 H100, deployment
// "chat") stale since 10 minutes ago, "lab" (no account) in error.
inline void FillStore(console::ConsoleDatabase& st, console::TimeMs now) {
  ASSERT_TRUE(st.accounts().Add({"prod-eu", "aws", "111", {"eu-west-1"}, "", "", 0}).ok());
  ASSERT_TRUE(st.accounts().Add({"prod-us", "aws", "222", {"us-east-1"}, "", "", 0}).ok());
  auto add = [&](const std::string& name, const std::string& account, const std::string& region,
                 const std::string& team) {
    console::Target t;
    t.name = name;
    t.endpoint = "10.0.0.1:7443";
    t.account = account;
    t.labels = {{"team", team}};
    ASSERT_TRUE(st.targets().Add(t).ok());
    ASSERT_TRUE(st.facts()
                    .Replace(name, "",
                             {{"cloud.provider", "aws"},
                              {"cloud.region", region},
                              {"cloud.instance_type", "p5.48xlarge"}},
                             now)
                    .ok());
  };
  add("eu1", "prod-eu", "us-east-1", "ml");
  add("us1", "prod-us", "us-west-2", "search");
  add("lab", "", "us-east-1", "ml");
  ASSERT_TRUE(st.targets()
                  .SetStatus({"eu1", console::ConnState::kConnected, now - 5000, now, "",
                              "spiffe://x/vendor/c", "vendor-operator"})
                  .ok());
  ASSERT_TRUE(st.targets()
                  .SetStatus({"us1", console::ConnState::kStale, now - 600'000, now - 600'000,
                              "no report for 600 s", "spiffe://x/vendor/c", "vendor-operator"})
                  .ok());
  ASSERT_TRUE(st.targets()
                  .SetStatus({"lab", console::ConnState::kError, now - 1000, 0,
                              "connection refused", "", ""})
                  .ok());
  auto gpu = [](const std::string& target, int index, double util, int64_t used) {
    console::Gpu g;
    g.target = target;
    g.node = "node-a";
    g.index = index;
    g.kind = "cuda";
    g.model = "NVIDIA H100 80GB HBM3";
    g.memory_total_bytes = 80 * kGiB;
    g.utilization = util;
    g.memory_used_bytes = used;
    return g;
  };
  ASSERT_TRUE(st.telemetry().ReplaceGpus("eu1", {gpu("eu1", 0, 0, 0), gpu("eu1", 1, 0, 0)}).ok());
  ASSERT_TRUE(st.telemetry().ReplaceGpus("us1", {gpu("us1", 0, 0, 0)}).ok());
  auto dep = [](const std::string& target) {
    console::Deployment d;
    d.target = target;
    d.name = "chat";
    d.model_sha256 = std::string(64, 'a');
    d.spec_digest = "sha256:" + std::string(64, 'b');
    d.gpus_requested = 1;
    return d;
  };
  ASSERT_TRUE(st.telemetry().ReplaceDeployments("eu1", {dep("eu1")}).ok());
  ASSERT_TRUE(st.telemetry().ReplaceDeployments("us1", {dep("us1")}).ok());
  // Two hours of samples, one a minute, so the cost rollups have hours to price.
  std::vector<console::GpuSample> gs;
  std::vector<console::DeploymentSample> ds;
  for (int m = 120; m >= 0; --m) {
    const console::TimeMs ts = now - m * 60'000LL;
    for (const auto& [target, gpus] : {std::pair<std::string, int>{"eu1", 2}, {"us1", 1}}) {
      for (int i = 0; i < gpus; ++i) {
        gs.push_back({target, "node-a", i, ts, 60, target == "eu1" ? 0.5 + 0.2 * i : 0.9,
                      (10 + i) * kGiB, 60.0 + i, 300.0 + 50 * i});
      }
      console::DeploymentSample d;
      d.target = target;
      d.deployment = "chat";
      d.ts = ts;
      d.period_s = 60;
      d.gpus_requested = 1;
      d.gpus_used = 0.6;
      d.replicas_ready = target == "eu1" ? 2 : 1;
      d.replicas_desired = 2;
      d.ttft_p50_ms = target == "eu1" ? 40 : 90;
      d.ttft_p99_ms = target == "eu1" ? 120 : 400;
      d.tokens_per_s = target == "eu1" ? 250 : 80;
      d.queue_depth = target == "eu1" ? 3 : 9;
      d.itl_p50_ms = target == "eu1" ? 12 : 25;
      d.itl_p99_ms = target == "eu1" ? 30 : 80;
      d.kv_cache_use = target == "eu1" ? 0.42 : 0.95;
      d.generated_tokens_total = (120 - m) * 15000LL;
      d.prompt_tokens_total = (120 - m) * 1000LL;
      ds.push_back(d);
    }
  }
  ASSERT_TRUE(st.telemetry().AppendSamples(gs, ds).ok());
  ASSERT_TRUE(st.budgets().Set({"team=ml", 5000, 30, 0.8}).ok());
}

}  // namespace sextant::ui::testing
