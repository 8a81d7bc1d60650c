// AwsProvider end to end against moto: the console's IAM user assumes the vendor role with the
// external id (moto checks the signature, the trust policy and every call against the role's
// policy), then reads offers, instances, billed cost, posture, clusters and its own access.
//
// What moto does not serve, and what these tests check instead:
//   - moto's signature check rejects every EKS (REST) request, botocore's own included (the
//     aws CLI gets SignatureDoesNotMatch too): the EKS calls are made with moto's
//     authentication off, and the access check does not judge the EKS probes;
//   - Service Quotas has no EC2 quotas in moto (NoSuchResourceException): offers carry no
//     headroom and say why;
//   - the Pricing API is absent (HTTP 500): on-demand prices come from resources/prices with
//     the catalog row named, and the Pricing API's failure is reported once;
//   - spot prices cannot be seeded: moto answers 0.00001 USD for every type and zone, which the
//     offers carry with their source;
//   - IAM SimulatePrincipalPolicy is not implemented: the console reads the role's policies
//     instead (it does so on AWS too).
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "app/console/cloud/posture.h"
#include "connectors/cloud/aws/aws_provider.h"
#include "tests/connectors/cloud/aws/moto_account.h"

namespace sextant::cloud::aws {
namespace {

namespace cc = console::cloud;
using testing::MotoSeeder;
using testing::MotoServer;
using testing::SeededAccount;

class AwsProviderMoto : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto program = MotoServer::Find();
    if (!program) return;
    moto_ = new MotoServer();
    start_ = moto_->Start(*program);
  }
  static void TearDownTestSuite() {
    delete moto_;
    moto_ = nullptr;
  }

  void SetUp() override {
    if (moto_ == nullptr) GTEST_SKIP() << "moto_server is not installed (set SEXTANT_MOTO_SERVER)";
    ASSERT_TRUE(start_.ok()) << start_.ToString();
    ASSERT_TRUE(moto_->SetAuthentication(false).ok());
    ASSERT_TRUE(moto_->Reset().ok());
  }

  // The standard account with `policy` on the vendor role; authentication on afterwards.
  void Seed(const std::string& policy =
                cc::MinimalPolicyJson("arn:aws:iam::123456789012:role/sextant-vendor")) {
    MotoSeeder seeder(moto_->Endpoint());
    account_ = seeder.Standard(*moto_, policy);
    ASSERT_FALSE(account_.console.access_key_id.empty());
    ASSERT_TRUE(moto_->SetAuthentication(true).ok());
  }

  AwsAccountConfig Config(std::vector<std::string> regions = {"us-east-1", "us-west-2"}) {
    AwsAccountConfig c;
    c.name = "prod";
    c.role_arn = account_.role_arn;
    c.external_id = account_.external_id;
    c.regions = std::move(regions);
    c.endpoint_url = moto_->Endpoint();
    return c;
  }

  std::unique_ptr<AwsProvider> Provider(AwsAccountConfig config) {
    AwsProviderOptions o;
    o.base_credentials = std::make_shared<StaticCredentials>(account_.console);
    auto catalog = console::PriceCatalog::LoadDir(std::filesystem::path(SEXTANT_SOURCE_DIR) /
                                                  "resources/prices");
    EXPECT_TRUE(catalog.ok()) << catalog.status().ToString();
    if (catalog.ok()) o.catalog = std::make_shared<console::PriceCatalog>(*catalog);
    o.client.backoff_base = std::chrono::milliseconds(1);
    o.client.backoff_cap = std::chrono::milliseconds(4);
    return std::make_unique<AwsProvider>(std::move(config), std::move(o));
  }

  static bool HasError(const std::vector<CallError>& errors, std::string_view api_call,
                       std::string_view code) {
    return std::any_of(errors.begin(), errors.end(), [&](const CallError& e) {
      return e.api_call == api_call && e.code == code;
    });
  }

  static MotoServer* moto_;
  static Status start_;
  SeededAccount account_;
};

MotoServer* AwsProviderMoto::moto_ = nullptr;
Status AwsProviderMoto::start_;

TEST_F(AwsProviderMoto, AssumesTheVendorRoleWithTheExternalId) {
  Seed();
  auto p = Provider(Config());
  auto id = p->Identity();
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(id->account_id, "123456789012");
  EXPECT_NE(id->arn.find("assumed-role/sextant-vendor/sextant-console"), std::string::npos)
      << id->arn;
  EXPECT_EQ(p->role_assumptions(), 1);
  // The role's credentials are kept, not assumed again for every call.
  ASSERT_TRUE(p->Identity().ok());
  EXPECT_EQ(p->role_assumptions(), 1);
}

TEST_F(AwsProviderMoto, AWrongExternalIdIsAccessDeniedWithAHint) {
  Seed();
  auto config = Config();
  config.external_id = "not-the-one";
  auto p = Provider(config);
  auto id = p->Identity();
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(id.status().message().find("sts:AssumeRole"), std::string::npos);
  EXPECT_NE(id.status().message().find("AccessDenied"), std::string::npos);
  EXPECT_NE(id.status().message().find("external id"), std::string::npos) << id.status().message();
  EXPECT_FALSE(p->CheckAccess().ok());  // an account that cannot be reached: check fails
}

TEST_F(AwsProviderMoto, UnknownBaseCredentialsAreRefused) {
  Seed();
  AwsProviderOptions o;
  Credentials bogus;
  bogus.access_key_id = "AKIAUNKNOWNKEY000000";
  bogus.secret_access_key = "nope";
  o.base_credentials = std::make_shared<StaticCredentials>(bogus);
  AwsProvider p(Config(), o);
  auto id = p.Identity();
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), StatusCode::kUnauthenticated) << id.status().ToString();
  EXPECT_NE(id.status().message().find("InvalidClientTokenId"), std::string::npos)
      << id.status().message();
}

TEST_F(AwsProviderMoto, AWrongSecretKeyFailsTheSignatureCheck) {
  Seed();
  Credentials wrong = account_.console;
  wrong.secret_access_key += "x";
  AwsProviderOptions o;
  o.base_credentials = std::make_shared<StaticCredentials>(wrong);
  AwsProvider p(Config(), o);
  auto id = p.Identity();
  ASSERT_FALSE(id.ok());
  EXPECT_NE(id.status().message().find("SignatureDoesNotMatch"), std::string::npos)
      << id.status().message();
}

TEST_F(AwsProviderMoto, H100OffersInBothRegionsWithDatedPricesAndHonestGaps) {
  Seed();
  auto p = Provider(Config());
  cc::OfferQuery q;
  q.gpu = "H100";
  auto offers = p->Offers(q);
  ASSERT_TRUE(offers.ok()) << offers.status().ToString();
  ASSERT_FALSE(offers->items.empty());
  std::set<std::string> regions;
  for (const auto& o : offers->items) {
    regions.insert(o.region);
    EXPECT_EQ(o.provider, "aws");
    EXPECT_EQ(o.account, "prod");
    EXPECT_EQ(o.type.gpu, "H100");
    EXPECT_EQ(o.zone.rfind(o.region, 0), 0u) << o.zone;
    if (o.type.instance_type == "p5.48xlarge") {
      EXPECT_EQ(o.type.gpu_count, 8);
      EXPECT_EQ(o.type.gpu_memory_mib, 81920);
      EXPECT_EQ(o.type.vcpus, 192);
      // On demand: the catalog row (the Pricing API is not in moto), named and dated.
      ASSERT_TRUE(o.on_demand.has_value());
      EXPECT_DOUBLE_EQ(o.on_demand->usd_per_hour, 98.32);
      EXPECT_NE(o.on_demand->source.find("aws.csv:"), std::string::npos) << o.on_demand->source;
      EXPECT_EQ(o.on_demand->as_of, "2024-06-01");
    }
    // Spot: what moto's DescribeSpotPriceHistory serves, with its source.
    ASSERT_TRUE(o.spot.has_value()) << o.zone << " " << o.type.instance_type;
    EXPECT_DOUBLE_EQ(o.spot->usd_per_hour, 0.00001);
    EXPECT_EQ(o.spot->source, "ec2:DescribeSpotPriceHistory");
    // Quota: moto has no EC2 quotas; the headroom is unknown and says why.
    EXPECT_FALSE(o.quota.has_value());
    EXPECT_TRUE(std::any_of(o.notes.begin(), o.notes.end(), [](const std::string& n) {
      return n.find("NoSuchResourceException") != std::string::npos;
    }));
  }
  EXPECT_EQ(regions, (std::set<std::string>{"us-east-1", "us-west-2"}));
  EXPECT_EQ(offers->regions_answered.size(), 2u);
  EXPECT_TRUE(HasError(offers->errors, "servicequotas:GetServiceQuota", "NoSuchResourceException"));
  // The Pricing API failed once and was not asked again for the other types and regions.
  EXPECT_EQ(std::count_if(offers->errors.begin(), offers->errors.end(),
                          [](const CallError& e) { return e.api_call == "pricing:GetProducts"; }),
            1);
  // Sorted by on-demand price per GPU-hour; offers without it last.
  std::optional<double> last;
  bool unpriced = false;
  for (const auto& o : offers->items) {
    auto price = o.OnDemandPerGpuHour();
    if (!price) {
      unpriced = true;
      continue;
    }
    EXPECT_FALSE(unpriced) << "a priced offer after an unpriced one";
    if (last) {
      EXPECT_LE(*last, *price);
    }
    last = price;
  }
}

TEST_F(AwsProviderMoto, QueryFiltersByGpuCountAndRegion) {
  Seed();
  auto p = Provider(Config());
  cc::OfferQuery q;
  q.min_gpus = 8;
  q.region = "us-west-2";
  auto offers = p->Offers(q);
  ASSERT_TRUE(offers.ok()) << offers.status().ToString();
  ASSERT_FALSE(offers->items.empty());
  std::set<std::string> gpus;
  for (const auto& o : offers->items) {
    EXPECT_EQ(o.region, "us-west-2");
    EXPECT_GE(o.type.gpu_count, 8);
    gpus.insert(o.type.gpu);
  }
  EXPECT_TRUE(gpus.count("H100") && gpus.count("A100")) << gpus.size();
}

TEST_F(AwsProviderMoto, ARegionNotEnabledIsReportedAndTheOthersStillAnswer) {
  Seed();
  auto p = Provider(Config({"us-east-1", "ap-east-1"}));  // moto: ap-east-1 not opted in
  cc::OfferQuery q;
  q.gpu = "H100";
  auto offers = p->Offers(q);
  ASSERT_TRUE(offers.ok()) << offers.status().ToString();
  EXPECT_TRUE(HasError(offers->errors, "ec2:DescribeRegions", "OptInRequired"));
  EXPECT_EQ(offers->regions_answered, std::vector<std::string>{"us-east-1"});
  for (const auto& o : offers->items) EXPECT_EQ(o.region, "us-east-1");
  auto instances = p->GpuInstances();
  ASSERT_TRUE(instances.ok());
  EXPECT_TRUE(HasError(instances->errors, "ec2:DescribeRegions", "OptInRequired"));
}

TEST_F(AwsProviderMoto, GpuInstancesAcrossRegionsWithTagsAndNoCpuOnlyOnes) {
  Seed();
  auto p = Provider(Config());
  auto r = p->GpuInstances();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->errors.empty()) << r->errors.front().ToString();
  std::map<std::string, cc::CloudInstance> by_id;
  for (const auto& i : r->items) by_id[i.instance_id] = i;
  ASSERT_EQ(by_id.size(), 3u);
  EXPECT_EQ(by_id.count(account_.instances["east-cpu"]), 0u);
  const auto& h100 = by_id[account_.instances["east-h100"]];
  EXPECT_EQ(h100.region, "us-east-1");
  EXPECT_EQ(h100.gpu, "H100");
  EXPECT_EQ(h100.gpu_count, 8);
  EXPECT_EQ(h100.state, "running");
  EXPECT_EQ(h100.tags.at("sextant.io/deployment"), "stories");
  EXPECT_EQ(h100.http_tokens, "required");
  const auto& a100 = by_id[account_.instances["west-a100"]];
  EXPECT_EQ(a100.region, "us-west-2");
  EXPECT_EQ(a100.gpu, "A100");
  EXPECT_EQ(by_id[account_.instances["east-a10g"]].http_tokens, "optional");
}

TEST_F(AwsProviderMoto, BilledCostPerDayAndDeploymentTag) {
  Seed();
  auto p = Provider(Config());
  auto cost = p->Billed({"2026-03-01", "2026-03-03", "sextant.io/deployment"});
  ASSERT_TRUE(cost.ok()) << cost.status().ToString();
  EXPECT_EQ(cost->source, "ce:GetCostAndUsage");
  ASSERT_EQ(cost->lines.size(), 4u);
  EXPECT_EQ(cost->lines[0].day, "2026-03-01");
  EXPECT_EQ(cost->lines[0].tag_value, "stories");
  EXPECT_DOUBLE_EQ(cost->lines[0].amount, 2359.68);
  EXPECT_EQ(cost->lines[0].unit, "USD");
  EXPECT_FALSE(cost->lines[0].estimated);
  EXPECT_EQ(cost->lines[2].tag_value, "");  // untagged: the credit
  EXPECT_DOUBLE_EQ(cost->lines[2].amount, -100.0);
  EXPECT_TRUE(cost->lines[3].estimated);
  EXPECT_GT(cost->observed_at, 0);

  auto bad = p->Billed({"2026-03-03", "2026-03-01", "sextant.io/deployment"});
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(AwsProviderMoto, PostureFactsAndRulesNameTheirCalls) {
  Seed();
  auto p = Provider(Config());
  auto facts = p->Posture();
  ASSERT_TRUE(facts.ok()) << facts.status().ToString();
  auto findings = cc::EvaluatePosture(*facts);
  auto verdict = [&](std::string_view rule, std::string_view region,
                     std::string_view resource = {}) {
    for (const auto& f : findings) {
      if (f.rule_id == rule && f.region == region && (resource.empty() || f.resource == resource)) {
        return std::string(cc::PostureVerdictName(f.verdict)) + ": " + f.message;
      }
    }
    return std::string("missing");
  };
  // The multi-region trail homed in us-east-1 covers both regions.
  EXPECT_EQ(verdict("aws.cloudtrail.logging", "us-east-1").rfind("pass", 0), 0u)
      << verdict("aws.cloudtrail.logging", "us-east-1");
  EXPECT_EQ(verdict("aws.cloudtrail.logging", "us-west-2").rfind("pass", 0), 0u);
  EXPECT_EQ(verdict("aws.ebs.encryption-by-default", "us-east-1").rfind("fail", 0), 0u);
  EXPECT_EQ(verdict("aws.ebs.encryption-by-default", "us-west-2").rfind("pass", 0), 0u);
  EXPECT_EQ(verdict("aws.ec2.imdsv2-required", "us-east-1", account_.instances["east-a10g"])
                .rfind("fail", 0),
            0u);
  EXPECT_EQ(verdict("aws.ec2.imdsv2-required", "us-west-2").rfind("pass", 0), 0u);
  EXPECT_EQ(
      verdict("aws.ec2.agent-ports-not-public", "us-east-1", account_.open_sg).rfind("fail", 0), 0u)
      << verdict("aws.ec2.agent-ports-not-public", "us-east-1", account_.open_sg);
  EXPECT_EQ(verdict("aws.ec2.agent-ports-not-public", "us-west-2").rfind("pass", 0), 0u);
  EXPECT_EQ(verdict("aws.iam.trust-requires-external-id", "").rfind("pass", 0), 0u)
      << verdict("aws.iam.trust-requires-external-id", "");
  for (const auto& f : findings) EXPECT_FALSE(f.api_call.empty()) << f.rule_id;
  // The role's own policy was read (the minimal one).
  ASSERT_EQ(facts->role.policies.size(), 1u);
  EXPECT_NE(facts->role.policies[0].document_json.find("ec2:DescribeInstances"), std::string::npos);
}

TEST_F(AwsProviderMoto, ClustersWithTheirGpuNodeGroups) {
  Seed();
  auto p = Provider(Config());
  ASSERT_TRUE(p->Identity().ok());                    // the role, assumed with checks on
  ASSERT_TRUE(moto_->SetAuthentication(false).ok());  // moto cannot check EKS signatures
  auto r = p->Clusters();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->items.size(), 1u);
  const auto& c = r->items[0];
  EXPECT_EQ(c.name, "inference");
  EXPECT_EQ(c.region, "us-west-2");
  EXPECT_EQ(c.status, "ACTIVE");
  ASSERT_EQ(c.node_groups.size(), 1u);
  EXPECT_EQ(c.node_groups[0].instance_types, std::vector<std::string>{"p5.48xlarge"});
  EXPECT_EQ(c.node_groups[0].gpu, "H100");
  EXPECT_EQ(c.node_groups[0].gpus_per_node, 8);
  EXPECT_EQ(c.node_groups[0].capacity_type, "SPOT");
  EXPECT_EQ(c.node_groups[0].desired_size, 2);
  EXPECT_EQ(r->regions_answered.size(), 2u);
}

TEST_F(AwsProviderMoto, CheckAccessWithTheMinimalPolicyAllowsEveryCallAndWarnsOfNothing) {
  Seed();
  auto p = Provider(Config());
  auto report = p->CheckAccess();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  std::set<std::string> probed;
  for (const auto& probe : report->probes) {
    probed.insert(probe.api_call);
    if (probe.api_call == "pricing:GetProducts") {
      // moto has no Pricing API: the call fails for a reason that is not a permission.
      EXPECT_EQ(probe.outcome, cc::ProbeOutcome::kFailed);
      continue;
    }
    if (probe.api_call.rfind("eks:", 0) == 0) continue;  // moto: see the file comment
    EXPECT_EQ(probe.outcome, cc::ProbeOutcome::kAllowed)
        << probe.api_call << " " << probe.region << ": "
        << (probe.error ? probe.error->ToString() : "");
  }
  for (const auto& a : cc::RequiredActions()) {
    EXPECT_EQ(probed.count(std::string(a.action)), 1u) << a.action << " was not probed";
  }
  EXPECT_TRUE(report->excess.empty()) << report->excess.front().pattern;
  EXPECT_EQ(report->identity.account_id, "123456789012");
}

TEST_F(AwsProviderMoto, CheckAccessNamesDeniedCallsAndGrantsBeyondTheNeed) {
  // A role that may not read the bill or EKS, and may read S3 objects and do anything in EC2.
  std::string policy = R"({"Version":"2012-10-17","Statement":[
    {"Effect":"Allow","Action":["ec2:*","s3:GetObject","servicequotas:GetServiceQuota",
      "pricing:GetProducts","cloudtrail:DescribeTrails","cloudtrail:GetTrailStatus",
      "iam:GetRole","iam:ListAttachedRolePolicies","iam:ListRolePolicies","iam:GetRolePolicy",
      "iam:GetPolicy","iam:GetPolicyVersion"],"Resource":"*"}]})";
  Seed(policy);
  auto p = Provider(Config());
  auto report = p->CheckAccess();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  auto outcome = [&](std::string_view call, std::string_view region) {
    for (const auto& probe : report->probes) {
      if (probe.api_call == call && probe.region == region) return probe;
    }
    ADD_FAILURE() << call << " " << region << " not probed";
    return cc::ApiProbe{};
  };
  auto ce = outcome("ce:GetCostAndUsage", "");
  EXPECT_EQ(ce.outcome, cc::ProbeOutcome::kDenied);
  ASSERT_TRUE(ce.error.has_value());
  EXPECT_EQ(ce.error->code, "AccessDenied");
  EXPECT_NE(ce.error->hint.find("ce:GetCostAndUsage"), std::string::npos) << ce.error->hint;
  EXPECT_EQ(outcome("eks:ListClusters", "us-west-2").outcome, cc::ProbeOutcome::kDenied);
  EXPECT_EQ(outcome("ec2:DescribeInstances", "us-east-1").outcome, cc::ProbeOutcome::kAllowed);
  EXPECT_FALSE(report->AllAllowed());

  std::map<std::string, cc::GrantConcern> excess;
  for (const auto& e : report->excess) excess[e.pattern] = e.concern;
  EXPECT_EQ(excess.at("ec2:*"), cc::GrantConcern::kServiceWildcard);
  EXPECT_EQ(excess.at("s3:GetObject"), cc::GrantConcern::kDataAccess);
  EXPECT_EQ(excess.size(), 2u);
}

TEST_F(AwsProviderMoto, ARoleWhoseTrustNoLongerNamesTheConsoleCannotBeAssumed) {
  Seed();
  // The customer revokes the vendor: the trust policy names someone else. AWS answers a deleted
  // role the same way (AccessDenied on sts:AssumeRole); moto instead issues credentials for a
  // deleted role and fails the calls made with them with HTTP 500, so revoking the trust is how
  // this test takes the role away.
  ASSERT_TRUE(moto_->SetAuthentication(false).ok());
  MotoSeeder seeder(moto_->Endpoint());
  seeder.Query("iam", "us-east-1", "UpdateAssumeRolePolicy",
               {{"RoleName", account_.role_name},
                {"PolicyDocument", R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow",
                   "Principal":{"AWS":"arn:aws:iam::123456789012:user/someone-else"},
                   "Action":"sts:AssumeRole"}]})"}});
  ASSERT_TRUE(moto_->SetAuthentication(true).ok());
  auto p = Provider(Config());
  auto id = p->Identity();
  ASSERT_FALSE(id.ok()) << id->arn;
  EXPECT_EQ(id.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(id.status().message().find("sts:AssumeRole"), std::string::npos)
      << id.status().message();
  EXPECT_NE(id.status().message().find("deleted"), std::string::npos) << id.status().message();
  EXPECT_NE(id.status().message().find("trust policy"), std::string::npos);
}

}  // namespace
}  // namespace sextant::cloud::aws
