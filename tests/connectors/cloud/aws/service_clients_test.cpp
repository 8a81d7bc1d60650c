// The service clients' readers on answers moto cannot give (the Pricing API's price list, Cost
// Explorer pages that repeat or lack amounts, quotas): a ScriptedHttpClient serves them.
#include <gtest/gtest.h>

#include "connectors/cloud/aws/cloudtrail_client.h"
#include "connectors/cloud/aws/cost_explorer_client.h"
#include "connectors/cloud/aws/ec2_client.h"
#include "connectors/cloud/aws/eks_client.h"
#include "connectors/cloud/aws/iam_client.h"
#include "connectors/cloud/aws/pricing_client.h"
#include "connectors/cloud/aws/service_quotas_client.h"
#include "connectors/cloud/aws/xml_reader.h"
#include "tests/connectors/cloud/scripted_http_client.h"

namespace sextant::cloud::aws {
namespace {

using testing::ScriptedHttpClient;

struct Harness {
  std::shared_ptr<ScriptedHttpClient> http = std::make_shared<ScriptedHttpClient>();
  std::unique_ptr<AwsClient> client;
  Harness() {
    Credentials c;
    c.access_key_id = "AKID";
    c.secret_access_key = "s";
    AwsClientOptions o;
    o.max_attempts = 1;
    o.now = [] { return std::chrono::system_clock::from_time_t(1'767'225'600); };
    client = std::make_unique<AwsClient>(http, std::make_shared<StaticCredentials>(c), o);
  }
};

// One PriceList entry as the Price List API returns it (a JSON document inside a string), for
// p5.48xlarge in us-east-1.
std::string PriceEntry(const std::string& usd) {
  nlohmann::json entry = {
      {"product",
       {{"productFamily", "Compute Instance"},
        {"attributes", {{"instanceType", "p5.48xlarge"}, {"regionCode", "us-east-1"}}},
        {"sku", "SKU1"}}},
      {"terms",
       {{"OnDemand",
         {{"SKU1.JRTCKXETXF",
           {{"effectiveDate", "2026-02-01T00:00:00Z"},
            {"priceDimensions",
             {{"SKU1.JRTCKXETXF.6YS6EN2CT7",
               {{"unit", "Hrs"},
                {"description", "$55.04 per On Demand Linux p5.48xlarge Instance Hour"},
                {"pricePerUnit", {{"USD", usd}}}}}}}}}}}}}};
  return entry.dump();
}

TEST(Pricing, OnDemandPriceFromThePriceList) {
  std::string effective;
  auto p = ParseOnDemandPrice(PriceEntry("55.0400000000"), &effective);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_DOUBLE_EQ(*p, 55.04);
  EXPECT_EQ(effective, "2026-02-01T00:00:00Z");
  EXPECT_EQ(ParseOnDemandPrice(PriceEntry("lots"), nullptr).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseOnDemandPrice(R"({"terms":{"Reserved":{}}})", nullptr).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(ParseOnDemandPrice("[]", nullptr).status().code(), StatusCode::kInvalidArgument);

  Harness h;
  h.http->Answer(200, nlohmann::json{{"PriceList", {PriceEntry("55.04")}}}.dump());
  auto price = GetOnDemandPrice(*h.client, "us-east-1", "p5.48xlarge");
  ASSERT_TRUE(price.ok()) << price.error().ToString();
  ASSERT_TRUE(price->has_value());
  EXPECT_DOUBLE_EQ((*price)->usd_per_hour, 55.04);
  EXPECT_EQ((*price)->source, "pricing:GetProducts");
  EXPECT_EQ((*price)->as_of, "2026-02-01T00:00:00Z");
  const std::string body = h.http->requests()[0].body;
  EXPECT_NE(body.find(R"("Field":"instanceType","Type":"TERM_MATCH","Value":"p5.48xlarge")"),
            std::string::npos)
      << body;
  EXPECT_NE(body.find(R"("Field":"regionCode","Type":"TERM_MATCH","Value":"us-east-1")"),
            std::string::npos);
  h.http->Answer(200, R"({"PriceList":[]})");
  auto none = GetOnDemandPrice(*h.client, "us-east-1", "p9.huge");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  h.http->Answer(200, R"({"PriceList":[7]})");
  EXPECT_EQ(GetOnDemandPrice(*h.client, "us-east-1", "x").error().code, "MalformedResponse");
}

TEST(CostExplorer, PagesAreFollowedAndBadAnswersNamed) {
  Harness h;
  auto page = [](const std::string& day, const std::string& amount, const std::string& token) {
    nlohmann::json j = {
        {"ResultsByTime",
         {{{"TimePeriod", {{"Start", day}, {"End", day}}},
           {"Groups",
            {{{"Keys", {"sextant.io/deployment$a"}},
              {"Metrics", {{"UnblendedCost", {{"Amount", amount}, {"Unit", "USD"}}}}}}}},
           {"Estimated", false}}}}};
    if (!token.empty()) j["NextPageToken"] = token;
    return j.dump();
  };
  h.http->Answer(200, page("2026-03-01", "1.5", "t1"));
  h.http->Answer(200, page("2026-03-02", "2.5", ""));
  auto cost = GetCostAndUsage(*h.client, "2026-03-01", "2026-03-03", "sextant.io/deployment");
  ASSERT_TRUE(cost.ok()) << cost.error().ToString();
  ASSERT_EQ(cost->lines.size(), 2u);
  EXPECT_DOUBLE_EQ(cost->lines[1].amount, 2.5);
  EXPECT_NE(h.http->requests()[1].body.find(R"("NextPageToken":"t1")"), std::string::npos);
  const std::string first = h.http->requests()[0].body;
  EXPECT_NE(first.find(R"("GroupBy":[{"Key":"sextant.io/deployment","Type":"TAG"}])"),
            std::string::npos)
      << first;
  EXPECT_NE(first.find(R"("Granularity":"DAILY")"), std::string::npos);

  h.http->Answer(200, page("2026-03-01", "1.5", "same"));
  h.http->Answer(200, page("2026-03-01", "1.5", "same"));
  auto loop = GetCostAndUsage(*h.client, "2026-03-01", "2026-03-03", "k");
  ASSERT_FALSE(loop.ok());
  EXPECT_NE(loop.error().message.find("repeats"), std::string::npos);

  h.http->Answer(200, page("2026-03-01", "one dollar", ""));
  auto bad = GetCostAndUsage(*h.client, "2026-03-01", "2026-03-03", "k");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, "MalformedResponse");
  EXPECT_NE(bad.error().message.find("ResultsByTime[0]"), std::string::npos);
}

TEST(ServiceQuotas, FamiliesAndTheirQuotaCodes) {
  EXPECT_EQ(QuotaForInstanceType("p5.48xlarge", false)->code, "L-417A185B");
  EXPECT_EQ(QuotaForInstanceType("p6-b200.48xlarge", false)->code, "L-417A185B");
  EXPECT_EQ(QuotaForInstanceType("p4d.24xlarge", true)->code, "L-7212CCBC");
  EXPECT_EQ(QuotaForInstanceType("g6e.xlarge", false)->code, "L-DB2E81BA");
  EXPECT_EQ(QuotaForInstanceType("gr6.4xlarge", true)->code, "L-3819A6DF");
  EXPECT_FALSE(QuotaForInstanceType("m7i.large", false).has_value());
  EXPECT_TRUE(IsAcceleratedFamily("p5.48xlarge"));
  EXPECT_TRUE(IsAcceleratedFamily("dl1.24xlarge"));
  EXPECT_FALSE(IsAcceleratedFamily("m5.large"));
  EXPECT_FALSE(IsAcceleratedFamily("mac2.metal"));

  Harness h;
  h.http->Answer(200, R"({"Quota":{"QuotaName":"Running On-Demand P instances","Value":384.0}})");
  auto q = GetEc2ServiceQuota(*h.client, "us-east-1", "L-417A185B");
  ASSERT_TRUE(q.ok());
  EXPECT_DOUBLE_EQ(q->value, 384);
  h.http->Answer(200, R"({"Quota":{"Value":"384"}})");
  EXPECT_EQ(GetEc2ServiceQuota(*h.client, "us-east-1", "L-417A185B").error().code,
            "MalformedResponse");
}

TEST(Ec2, PaginationEndsAtARepeatedTokenAndMalformedXmlIsNamed) {
  Harness h;
  const char* page = R"(<DescribeInstancesResponse><reservationSet/><nextToken>t</nextToken>
                        </DescribeInstancesResponse>)";
  h.http->Answer(200, page);
  h.http->Answer(200, page);
  auto r = DescribeInstances(*h.client, "us-east-1");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("repeats"), std::string::npos);
  h.http->Answer(200, "<DescribeInstancesResponse><reservationSet>");
  auto m = DescribeInstances(*h.client, "us-east-1");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code, "MalformedResponse");
  EXPECT_EQ(m.error().api_call, "ec2:DescribeInstances");
  EXPECT_NE(m.error().message.find("offset"), std::string::npos);
}

TEST(Iam, ArnsAndEncodedDocuments) {
  EXPECT_EQ(RoleNameFromArn("arn:aws:iam::123456789012:role/path/sextant-vendor"),
            "sextant-vendor");
  EXPECT_EQ(RoleNameFromArn("arn:aws:iam::123456789012:user/x"), "");
  EXPECT_EQ(AccountFromArn("arn:aws:iam::123456789012:role/x"), "123456789012");
  EXPECT_EQ(AccountFromArn("nonsense"), "");
  EXPECT_EQ(DecodePolicyDocument("%7B%22Version%22%3A%222012-10-17%22%7D"),
            R"({"Version":"2012-10-17"})");
  EXPECT_EQ(DecodePolicyDocument(R"({"a":"b%20c"})"), R"({"a":"b%20c"})");  // already JSON
  EXPECT_EQ(DecodePolicyDocument("%7"), "%7");  // a cut escape stays as it is
}

// Answers whose fields have the wrong types (a hostile or broken endpoint): every client returns
// an error or skips the field, and none throws.
TEST(ServiceClients, WronglyTypedAnswersNeverThrow) {
  const std::vector<std::string> bodies = {
      "[]",
      "\"x\"",
      "7",
      "null",
      "{}",
      R"({"trailList":{},"ResultsByTime":"x","Quota":[],"PriceList":{},"clusters":"x"})",
      R"({"trailList":[1,{"Name":5,"IsMultiRegionTrail":"yes","HomeRegion":[]}],
          "ResultsByTime":[{"TimePeriod":{"Start":5},"Groups":[1]},
                           {"TimePeriod":{"Start":"2026-01-01"},"Estimated":"no",
                            "Groups":[{"Keys":[5],"Metrics":{"UnblendedCost":{"Amount":5}}}]}],
          "NextPageToken":[],"Quota":{"Value":1,"QuotaName":[]},
          "PriceList":["{\"terms\":{\"OnDemand\":{\"a\":{\"priceDimensions\":{\"b\":{\"unit\":5}}}}}}"],
          "clusters":[1,"c"],"nextToken":5,"cluster":{"name":[],"status":1},
          "nodegroups":[{}],"IsLogging":"yes"})",
  };
  for (const auto& body : bodies) {
    Harness h;
    for (int i = 0; i < 12; ++i) h.http->Answer(200, body);
    EXPECT_NO_THROW({
      std::vector<CallError> errors;
      (void)DescribeTrailsWithStatus(*h.client, "us-east-1", &errors);
      (void)GetCostAndUsage(*h.client, "2026-01-01", "2026-01-02", "k");
      (void)GetEc2ServiceQuota(*h.client, "us-east-1", "L-1");
      (void)GetOnDemandPrice(*h.client, "us-east-1", "p5.48xlarge");
      (void)EksListClusters(*h.client, "us-east-1");
      (void)EksDescribeCluster(*h.client, "us-east-1", "c");
    }) << body;
  }
}

}  // namespace
}  // namespace sextant::cloud::aws
