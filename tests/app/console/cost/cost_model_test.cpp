#include "app/console/cost/cost_model.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "app/console/cost/price_catalog.h"

namespace sextant::console {
namespace {

constexpr console::TimeMs kH0 = 1767225600000;  // 2026-01-01T00:00:00Z
constexpr console::TimeMs kHour = 3'600'000;

const char* kCatalog =
    "# test catalog\n"
    "provider,region,gpu_model,gpus_per_instance,instance_type,on_demand_usd_per_hour,"
    "spot_usd_per_hour,reserved_usd_per_hour,source,price_date\n"
    "test,r1,X,8,big8,80.00,40,,https://example.com/prices,2026-01-01\n"
    "test,r1,X,1,small1,2.00,1.00,,\"https://example.com/p?a=1,b=2\",2026-01-01\n";

PriceCatalog Catalog() {
  auto c = PriceCatalog::Parse(kCatalog, "test.csv");
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return *c;
}

std::vector<TargetInfo> Targets() {
  TargetInfo a{"A",
               "acct1",
               {{"team", "ml"}, {"env", "prod"}},
               {"test", "r1", "big8", "X", PricingModel::kOnDemand}};
  TargetInfo b{"B", "acct2", {{"team", "ml"}}, {"test", "r1", "", "X", PricingModel::kSpot}};
  TargetInfo c{"C", "acct1", {}, {"test", "r1", "nope", "", PricingModel::kOnDemand}};
  return {a, b, c};
}

std::vector<console::HourUsage> Usage() {
  auto target = [](const char* t, console::TimeMs h, double prov) {
    console::HourUsage u;
    u.target = t;
    u.hour = h;
    u.gpu_seconds_provisioned = prov;
    return u;
  };
  auto dep = [](const char* t, const char* d, console::TimeMs h, double req, double used,
                int64_t tokens) {
    console::HourUsage u;
    u.target = t;
    u.deployment = d;
    u.hour = h;
    u.gpu_seconds_requested = req;
    u.gpu_seconds_used = used;
    u.tokens_generated = tokens;
    return u;
  };
  return {target("A", kH0, 8 * 3600.0),
          target("A", kH0 + kHour, 8 * 3600.0),
          dep("A", "chat", kH0, 2 * 3600.0, 3 * 3600.0, 1'500'000),
          dep("A", "chat", kH0 + kHour, 2 * 3600.0, 1 * 3600.0, 500'000),
          dep("A", "embed", kH0, 1 * 3600.0, 0, 0),
          target("B", kH0 + 24 * kHour, 3600.0),
          dep("B", "tiny", kH0 + 24 * kHour, 3600.0, 1800.0, 100'000),
          target("C", kH0, 3600.0)};
}

const CostLine* Find(const CostReport& r, const std::string& key) {
  for (const auto& l : r.lines) {
    if (l.key == key) return &l;
  }
  return nullptr;
}

// Hand-computed: A runs big8 on demand at $80 / 8 GPUs = $10 per GPU-hour; B runs small1 on
// spot at $1 per GPU-hour. Allocated = max(requested, used) per hour.
TEST(CostModel, PerDeploymentWithCostPerMillionTokens) {
  auto r = ComputeCost(Usage(), Targets(), Catalog(), GroupBy::kDeployment);
  const CostLine* chat = Find(r, "A/chat");
  ASSERT_NE(chat, nullptr);
  EXPECT_DOUBLE_EQ(chat->allocated_usd, 30 + 20);  // max(2,3)*10 + max(2,1)*10
  EXPECT_EQ(chat->generated_tokens, 2'000'000);
  ASSERT_TRUE(chat->usd_per_million_tokens.has_value());
  EXPECT_DOUBLE_EQ(*chat->usd_per_million_tokens, 25.0);
  const CostLine* embed = Find(r, "A/embed");
  EXPECT_DOUBLE_EQ(embed->allocated_usd, 10);
  EXPECT_FALSE(embed->usd_per_million_tokens.has_value());
  const CostLine* tiny = Find(r, "B/tiny");
  EXPECT_DOUBLE_EQ(tiny->allocated_usd, 1.0);
  EXPECT_DOUBLE_EQ(*tiny->usd_per_million_tokens, 10.0);
  ASSERT_EQ(r.unpriced.size(), 1u);
  EXPECT_NE(r.unpriced[0].find("C: no catalog row for test/r1/nope"), std::string::npos);
}

TEST(CostModel, PerTargetWithIdleCost) {
  auto r = ComputeCost(Usage(), Targets(), Catalog(), GroupBy::kTarget);
  const CostLine* a = Find(r, "A");
  ASSERT_NE(a, nullptr);
  EXPECT_DOUBLE_EQ(a->provisioned_usd, 160);
  EXPECT_DOUBLE_EQ(a->allocated_usd, 60);
  EXPECT_DOUBLE_EQ(a->idle_usd, 100);  // hour 0: 80 - 40; hour 1: 80 - 20
  EXPECT_DOUBLE_EQ(a->gpu_hours_provisioned, 16);
  const CostLine* b = Find(r, "B");
  EXPECT_DOUBLE_EQ(b->provisioned_usd, 1);
  EXPECT_DOUBLE_EQ(b->idle_usd, 0);
  EXPECT_EQ(Find(r, "C"), nullptr);  // unpriced, listed apart
  EXPECT_DOUBLE_EQ(r.total.provisioned_usd, 161);
  EXPECT_DOUBLE_EQ(r.total.idle_usd, 100);
}

TEST(CostModel, PerAccountLabelAndDay) {
  auto acct = ComputeCost(Usage(), Targets(), Catalog(), GroupBy::kAccount);
  EXPECT_DOUBLE_EQ(Find(acct, "acct1")->provisioned_usd, 160);
  EXPECT_DOUBLE_EQ(Find(acct, "acct2")->provisioned_usd, 1);
  auto label = ComputeCost(Usage(), Targets(), Catalog(), GroupBy::kLabel);
  EXPECT_DOUBLE_EQ(Find(label, "team=ml")->provisioned_usd, 161);
  EXPECT_DOUBLE_EQ(Find(label, "env=prod")->provisioned_usd, 160);
  auto day = ComputeCost(Usage(), Targets(), Catalog(), GroupBy::kDay);
  EXPECT_DOUBLE_EQ(Find(day, "2026-01-01")->provisioned_usd, 160);
  EXPECT_DOUBLE_EQ(Find(day, "2026-01-02")->provisioned_usd, 1);
}

TEST(CostModel, OverridesDiscountAndFixPrices) {
  PriceCatalog c = Catalog();
  ASSERT_TRUE(c.ParseOverrides("provider,region,instance_type,pricing,usd_per_hour,"
                               "discount_percent,note\n"
                               "test,*,*,on_demand,,25,enterprise discount\n"
                               "test,r1,small1,spot,0.5,,committed\n",
                               "override.csv")
                  .ok());
  auto big = c.Rate({"test", "r1", "big8", "", PricingModel::kOnDemand});
  ASSERT_TRUE(big.ok());
  EXPECT_DOUBLE_EQ(big->usd_per_gpu_hour, 7.5);
  EXPECT_NE(big->origin.find("override.csv:2"), std::string::npos);
  auto small = c.Rate({"test", "r1", "", "X", PricingModel::kSpot});
  EXPECT_DOUBLE_EQ(small->usd_per_gpu_hour, 0.5);
  auto r = ComputeCost(Usage(), Targets(), c, GroupBy::kTarget);
  EXPECT_DOUBLE_EQ(Find(r, "A")->provisioned_usd, 120);
  EXPECT_DOUBLE_EQ(Find(r, "B")->provisioned_usd, 0.5);
}

TEST(CostModel, BudgetsWarnAndBreach) {
  const console::TimeMs now = kH0 + 48 * kHour;
  auto st = EvaluateBudgets({{"team=ml", 1000, 30, 0.8},
                             {"team=ml", 200, 30, 0.8},
                             {"team=ml", 150, 30, 0.8},
                             {"env=prod", 100, 1, 0.8}},
                            Usage(), Targets(), Catalog(), now);
  ASSERT_EQ(st.size(), 4u);
  EXPECT_DOUBLE_EQ(st[0].spent_usd, 161);
  EXPECT_EQ(st[0].state, BudgetState::kOk);
  EXPECT_EQ(st[1].state, BudgetState::kWarning);  // 161 / 200 = 0.805
  EXPECT_EQ(st[2].state, BudgetState::kBreach);
  // A one-day window at now sees none of A's hours.
  EXPECT_DOUBLE_EQ(st[3].spent_usd, 0);
  EXPECT_EQ(st[3].state, BudgetState::kOk);
}

TEST(PriceCatalogTest, MalformedRowsNameFileAndLine) {
  const std::string header =
      "provider,region,gpu_model,gpus_per_instance,instance_type,on_demand_usd_per_hour,"
      "spot_usd_per_hour,reserved_usd_per_hour,source,price_date\n";
  struct Case {
    std::string row;
    std::string expect;
  };
  for (const Case& c :
       {Case{"aws,r,H100,8,p5,abc,,,src,2024-01-01", "cat.csv:3: on_demand_usd_per_hour 'abc'"},
        Case{"aws,r,H100,8,p5,1,,,src", "cat.csv:3: expected 10 fields, found 9"},
        Case{"aws,r,H100,0,p5,1,,,src,2024-01-01", "cat.csv:3: gpus_per_instance '0'"},
        Case{"aws,r,H100,8,p5,1,,,src,2024-13-01", "cat.csv:3: price_date '2024-13-01'"},
        Case{"aws,r,H100,8,p5,,,,src,2024-01-01", "cat.csv:3: row has no price"},
        Case{"aws,r,H100,8,p5,-3,,,src,2024-01-01", "cat.csv:3: on_demand_usd_per_hour '-3'"},
        Case{"aws,r,H100,8,p5,1,,,\"src,2024-01-01", "cat.csv:3: unterminated"},
        Case{"aws,r,H100,8,p5,1,,,src,2024-01-01\naws,r,H100,8,p5,2,,,src,2024-01-01",
             "cat.csv:4: duplicate of cat.csv:3"}}) {
    auto r = PriceCatalog::Parse("# comment\n" + header + c.row + "\n", "cat.csv");
    ASSERT_FALSE(r.ok()) << c.row;
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << r.status().message() << " / wanted " << c.expect;
  }
  auto bad_header = PriceCatalog::Parse("provider,region\n", "h.csv");
  EXPECT_NE(bad_header.status().message().find("h.csv:1: header"), std::string::npos);
  PriceCatalog c = Catalog();
  auto o = c.ParseOverrides(
      "provider,region,instance_type,pricing,usd_per_hour,discount_percent,note\n"
      "test,r1,big8,on_demand,5,10,both\n",
      "o.csv");
  EXPECT_NE(o.message().find("o.csv:2: set exactly one"), std::string::npos) << o.message();
  o = c.ParseOverrides(
      "provider,region,instance_type,pricing,usd_per_hour,discount_percent,note\n"
      "other,r1,big8,on_demand,5,,x\n",
      "o.csv");
  EXPECT_NE(o.message().find("o.csv:2: override matches no catalog row"), std::string::npos);
}

TEST(PriceCatalogTest, ShippedCatalogsParseAndCoverTheMainGpus) {
  auto c = PriceCatalog::LoadDir(std::filesystem::path(SEXTANT_SOURCE_DIR) / "resources/prices");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  std::set<std::string> providers, models;
  for (const auto& r : c->rows()) {
    providers.insert(r.provider);
    models.insert(r.gpu_model);
    EXPECT_FALSE(r.source.empty());
  }
  for (const char* p : {"aws", "gcp", "azure"}) EXPECT_TRUE(providers.count(p)) << p;
  EXPECT_TRUE(providers.count("lambda") || providers.count("coreweave"));
  for (const char* m : {"H100", "H200", "A100", "L4"}) EXPECT_TRUE(models.count(m)) << m;
  auto rate = c->Rate({"aws", "us-east-1", "p5.48xlarge", "", PricingModel::kOnDemand});
  ASSERT_TRUE(rate.ok());
  EXPECT_NEAR(rate->usd_per_gpu_hour, 98.32 / 8, 1e-9);
}

TEST(CostModel, ParseSince) {
  EXPECT_EQ(*ParseSince("7d"), 7 * 86'400'000LL);
  EXPECT_EQ(*ParseSince("24h"), 86'400'000LL);
  EXPECT_FALSE(ParseSince("7w").ok());
  EXPECT_FALSE(ParseSince("d").ok());
}

}  // namespace
}  // namespace sextant::console

namespace sextant::console {
namespace {

TEST(CostModel, CatalogGpuModelNames) {
  EXPECT_EQ(CatalogGpuModel("NVIDIA H100 80GB HBM3"), "H100");
  EXPECT_EQ(CatalogGpuModel("NVIDIA H200"), "H200");
  EXPECT_EQ(CatalogGpuModel("NVIDIA A100-SXM4-80GB"), "A100-80GB");
  EXPECT_EQ(CatalogGpuModel("NVIDIA A100-SXM4-40GB"), "A100");
  EXPECT_EQ(CatalogGpuModel("NVIDIA L4"), "L4");
  EXPECT_EQ(CatalogGpuModel("NVIDIA L40S"), "NVIDIA L40S");
  EXPECT_EQ(CatalogGpuModel("AMD Instinct MI300X"), "MI300X");
}

}  // namespace
}  // namespace sextant::console
