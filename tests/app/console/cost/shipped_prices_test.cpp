// The shipped price catalogs (resources/prices) for the newer accelerators: H200 and AMD
// MI300X rows parse, say where and when their price was published, and the cost model prices
// targets that run on them (through the GPU model names inventories report).
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <set>

#include "app/console/cost/cost_model.h"
#include "app/console/cost/price_catalog.h"

namespace sextant::console {
namespace {

constexpr console::TimeMs kH0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z

PriceCatalog Shipped() {
  auto c = PriceCatalog::LoadDir(std::filesystem::path(SEXTANT_SOURCE_DIR) / "resources/prices");
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? *c : PriceCatalog();
}

TEST(ShippedPrices, EveryRowNamesItsSourceAndDate) {
  const std::regex url("https://[a-z0-9.-]+/.*");
  const std::regex date("20[0-9]{2}-[01][0-9]-[0-3][0-9]");
  const PriceCatalog c = Shipped();
  ASSERT_FALSE(c.rows().empty());
  for (const auto& r : c.rows()) {
    EXPECT_TRUE(std::regex_match(r.source, url)) << r.origin << ": " << r.source;
    EXPECT_TRUE(std::regex_match(r.price_date, date)) << r.origin << ": " << r.price_date;
    EXPECT_TRUE(r.on_demand || r.spot || r.reserved) << r.origin << ": no price at all";
    EXPECT_GT(r.gpus_per_instance, 0) << r.origin;
  }
}

TEST(ShippedPrices, H200AndMI300XWhereSold) {
  const PriceCatalog c = Shipped();
  std::set<std::string> h200, mi300x;
  for (const auto& r : c.rows()) {
    if (r.gpu_model == "H200") h200.insert(r.provider);
    if (r.gpu_model == "MI300X") mi300x.insert(r.provider);
  }
  EXPECT_TRUE(h200.count("aws")) << "p5e.48xlarge (Capacity Blocks)";
  EXPECT_TRUE(h200.count("coreweave"));
  EXPECT_TRUE(h200.count("gcp")) << "A3 Ultra (a3-ultragpu-8g)";
  EXPECT_TRUE(h200.count("azure")) << "ND H200 v5";
  EXPECT_TRUE(mi300x.count("azure")) << "ND MI300X v5";
  EXPECT_TRUE(mi300x.count("oci")) << "BM.GPU.MI300X.8";

  // The rates a target gets, per GPU-hour.
  auto mi = c.Rate({"azure", "eastus", "Standard_ND96isr_MI300X_v5", "", PricingModel::kOnDemand});
  ASSERT_TRUE(mi.ok()) << mi.status().ToString();
  EXPECT_NEAR(mi->usd_per_gpu_hour, 48.00 / 8, 1e-9);
  // By GPU model when the instance type is not known.
  auto by_model = c.Rate({"oci", "us-chicago-1", "", "MI300X", PricingModel::kOnDemand});
  ASSERT_TRUE(by_model.ok()) << by_model.status().ToString();
  EXPECT_NEAR(by_model->usd_per_gpu_hour, 6.0, 1e-9);
  // p5e is sold as Capacity Block reservations: a reserved rate, and no on-demand one.
  auto p5e = c.Rate({"aws", "us-east-2", "p5e.48xlarge", "", PricingModel::kReserved});
  ASSERT_TRUE(p5e.ok()) << p5e.status().ToString();
  EXPECT_NEAR(p5e->usd_per_gpu_hour, 43.26 / 8, 1e-9);
  EXPECT_FALSE(c.Rate({"aws", "us-east-2", "p5e.48xlarge", "", PricingModel::kOnDemand}).ok());
  // H200 on demand on GCP (A3 Ultra) and Azure (ND H200 v5), per GPU-hour.
  auto a3u = c.Rate({"gcp", "us-central1", "a3-ultragpu-8g", "", PricingModel::kOnDemand});
  ASSERT_TRUE(a3u.ok()) << a3u.status().ToString();
  EXPECT_NEAR(a3u->usd_per_gpu_hour, 84.8069 / 8, 1e-9);
  auto nd = c.Rate({"azure", "eastus2", "Standard_ND96isr_H200_v5", "", PricingModel::kOnDemand});
  ASSERT_TRUE(nd.ok()) << nd.status().ToString();
  EXPECT_NEAR(nd->usd_per_gpu_hour, 84.80 / 8, 1e-9);
  // A target that reports only its GPU model is priced by it.
  auto by_h200 = c.Rate({"azure", "eastus2", "", "H200", PricingModel::kOnDemand});
  ASSERT_TRUE(by_h200.ok()) << by_h200.status().ToString();
  EXPECT_NEAR(by_h200->usd_per_gpu_hour, 84.80 / 8, 1e-9);
}

TEST(ShippedPrices, TheCostModelPricesMI300XAndH200Targets) {
  const PriceCatalog c = Shipped();
  // Targets as the store describes them: cloud facts and the GPU model their inventory reports.
  std::vector<console::Target> targets(2);
  targets[0].name = "amd";
  targets[1].name = "h200";
  std::vector<console::Fact> facts = {
      {"amd", "cloud.provider", "azure", kH0},
      {"amd", "cloud.region", "eastus", kH0},
      {"amd", "cloud.instance_type", "Standard_ND96isr_MI300X_v5", kH0},
      {"h200", "cloud.provider", "aws", kH0},
      {"h200", "cloud.region", "us-east-2", kH0},
      {"h200", "cloud.instance_type", "p5e.48xlarge", kH0},
      {"h200", "cloud.pricing", "reserved", kH0},
  };
  std::vector<console::Gpu> gpus(2);
  gpus[0].target = "amd";
  gpus[0].model = "AMD Instinct MI300X";
  gpus[1].target = "h200";
  gpus[1].model = "NVIDIA H200";
  const auto infos = TargetsFromStore(targets, facts, gpus);
  ASSERT_EQ(infos.size(), 2u);

  // One hour each: 8 GPUs provisioned, a deployment asking for 2 and using 3, 1.2 M tokens.
  std::vector<console::HourUsage> usage;
  for (const char* t : {"amd", "h200"}) {
    console::HourUsage prov;
    prov.target = t;
    prov.hour = kH0;
    prov.gpu_seconds_provisioned = 8 * 3600.0;
    console::HourUsage dep;
    dep.target = t;
    dep.deployment = "chat";
    dep.hour = kH0;
    dep.gpu_seconds_requested = 2 * 3600.0;
    dep.gpu_seconds_used = 3 * 3600.0;
    dep.tokens_generated = 1'200'000;
    usage.push_back(prov);
    usage.push_back(dep);
  }
  const CostReport r = ComputeCost(usage, infos, c, GroupBy::kDeployment);
  EXPECT_TRUE(r.unpriced.empty()) << r.unpriced.front();
  ASSERT_EQ(r.lines.size(), 2u);
  // Hand-computed: MI300X $6/GPU-h: allocated = max(2, 3) GPU-h × 6 = $18;
  // per million tokens = 18 / 1.2 = $15.
  const CostLine& amd = r.lines[0];
  EXPECT_EQ(amd.key, "amd/chat");
  EXPECT_NEAR(amd.allocated_usd, 18.0, 1e-9);
  ASSERT_TRUE(amd.usd_per_million_tokens.has_value());
  EXPECT_NEAR(*amd.usd_per_million_tokens, 15.0, 1e-9);
  // H200 reserved $43.26 / 8 = $5.4075/GPU-h: allocated 3 × 5.4075 = $16.2225.
  const CostLine& h200 = r.lines[1];
  EXPECT_EQ(h200.key, "h200/chat");
  EXPECT_NEAR(h200.allocated_usd, 3 * 43.26 / 8, 1e-9);
  EXPECT_NEAR(*h200.usd_per_million_tokens, 3 * 43.26 / 8 / 1.2, 1e-9);
  // Idle: 8 provisioned − 3 allocated GPU-hours on each.
  EXPECT_NEAR(r.total.idle_usd, 5 * 6.0 + 5 * 43.26 / 8, 1e-9);
}

}  // namespace
}  // namespace sextant::console
