#include <gtest/gtest.h>

#include "app/console/cloud/cloud_provider.h"

namespace sextant::console::cloud {
namespace {

GpuOffer Offer(const std::string& region, const std::string& type, const std::string& gpu, int gpus,
               std::optional<double> od, std::optional<double> spot) {
  GpuOffer o;
  o.provider = "aws";
  o.account = "prod";
  o.region = region;
  o.zone = region + "a";
  o.type.instance_type = type;
  o.type.gpu = gpu;
  o.type.gpu_count = gpus;
  if (od) o.on_demand = DatedPrice{*od, "catalog", "2024-06-01", 1};
  if (spot) o.spot = DatedPrice{*spot, "ec2:DescribeSpotPriceHistory", "2024-06-01", 1};
  return o;
}

TEST(Offers, SortedByPricePerGpuHourThenWithoutPrice) {
  std::vector<GpuOffer> offers = {
      Offer("us-east-1", "p5.48xlarge", "H100", 8, 98.32, 30.0),  // 12.29 / GPU-h
      Offer("us-west-2", "p5.4xlarge", "H100", 1, 10.0, std::nullopt),
      Offer("us-east-1", "g5.xlarge", "A10G", 1, 1.006, 0.4),
      Offer("eu-west-1", "p5.48xlarge", "H100", 8, std::nullopt, 24.0),  // spot only
      Offer("eu-west-1", "p5e.48xlarge", "H200", 8, std::nullopt, std::nullopt),
  };
  auto all = FilterAndSortOffers(offers, {});
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(all[0].type.instance_type, "g5.xlarge");
  EXPECT_EQ(all[1].type.instance_type, "p5.4xlarge");
  EXPECT_EQ(all[2].region, "us-east-1");  // 12.29
  EXPECT_EQ(all[3].region, "eu-west-1");  // spot only comes after every on-demand price
  EXPECT_EQ(all[4].type.gpu, "H200");     // no price at all: last

  OfferQuery spot;
  spot.sort_by = OfferQuery::SortBy::kSpot;
  auto by_spot = FilterAndSortOffers(offers, spot);
  EXPECT_EQ(by_spot[0].type.instance_type, "g5.xlarge");   // 0.4
  EXPECT_EQ(by_spot[1].region, "eu-west-1");               // 3.0 per GPU-hour
  EXPECT_EQ(by_spot[2].region, "us-east-1");               // 3.75
  EXPECT_EQ(by_spot[3].type.instance_type, "p5.4xlarge");  // on-demand only
}

TEST(Offers, FilterByGpuNameCountAndRegion) {
  std::vector<GpuOffer> offers = {
      Offer("us-east-1", "p5.48xlarge", "H100", 8, 98.32, std::nullopt),
      Offer("us-west-2", "p5.4xlarge", "H100", 1, 10.0, std::nullopt),
      Offer("us-east-1", "g4ad.xlarge", "Radeon Pro V520", 1, 0.4, std::nullopt)};
  OfferQuery q;
  q.gpu = "h100";
  EXPECT_EQ(FilterAndSortOffers(offers, q).size(), 2u);
  q.min_gpus = 8;
  auto eight = FilterAndSortOffers(offers, q);
  ASSERT_EQ(eight.size(), 1u);
  EXPECT_EQ(eight[0].type.instance_type, "p5.48xlarge");
  q = {};
  q.gpu = "radeon-pro-v520";
  EXPECT_EQ(FilterAndSortOffers(offers, q).size(), 1u);
  q = {};
  q.region = "us-west-2";
  EXPECT_EQ(FilterAndSortOffers(offers, q).size(), 1u);
  EXPECT_FALSE(GpuNameMatches("A10G", "A10"));
}

TEST(Offers, PerGpuPriceAndQuotaHeadroom) {
  auto o = Offer("us-east-1", "p5.48xlarge", "H100", 8, 98.32, std::nullopt);
  ASSERT_TRUE(o.OnDemandPerGpuHour().has_value());
  EXPECT_DOUBLE_EQ(*o.OnDemandPerGpuHour(), 12.29);
  EXPECT_FALSE(o.SpotPerGpuHour().has_value());
  QuotaHeadroom q{"L-417A185B", "Running On-Demand P instances", 400, 192, "", 0};
  EXPECT_DOUBLE_EQ(q.FreeVcpus(), 208);
  EXPECT_EQ(q.Instances(192), 1);
  EXPECT_EQ(q.Instances(0), 0);
  QuotaHeadroom over{"L", "", 100, 192, "", 0};
  EXPECT_DOUBLE_EQ(over.FreeVcpus(), 0);
}

TEST(CallError, ToStringNamesCallRegionCodeAndHint) {
  CallError e{"ec2:DescribeInstances", "eu-west-1", "AuthFailure", "no", "enable the region", 401};
  EXPECT_EQ(e.ToString(),
            "ec2:DescribeInstances (eu-west-1): AuthFailure: no [HTTP 401] (hint: enable the "
            "region)");
}

}  // namespace
}  // namespace sextant::console::cloud
