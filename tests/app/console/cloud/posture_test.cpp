#include "app/console/cloud/posture.h"

#include <gtest/gtest.h>

namespace sextant::console::cloud {
namespace {

const PostureFinding* Find(const std::vector<PostureFinding>& fs, std::string_view rule,
                           std::string_view region, std::string_view resource = {}) {
  for (const auto& f : fs) {
    if (f.rule_id == rule && f.region == region && (resource.empty() || f.resource == resource)) {
      return &f;
    }
  }
  return nullptr;
}

CloudInstance Gpu(const std::string& id, const std::string& tokens,
                  const std::string& state = "running") {
  CloudInstance i;
  i.instance_id = id;
  i.instance_type = "p5.48xlarge";
  i.state = state;
  i.http_tokens = tokens;
  i.gpu_count = 8;
  return i;
}

AccountPostureFacts GoodAccount() {
  AccountPostureFacts f;
  f.account = "prod";
  f.external_id = "ext-1";
  f.observed_at = 1000;
  RegionPostureFacts east;
  east.region = "us-east-1";
  east.trails = std::vector<TrailFact>{{"org", "arn:trail/org", "us-west-2", true, true}};
  east.ebs_encryption_by_default = true;
  east.gpu_instances = std::vector<CloudInstance>{Gpu("i-1", "required")};
  east.security_groups = std::vector<SecurityGroupFact>{
      {"sg-1", "agents", {{"tcp", 7443, 7443, {"10.0.0.0/8"}}, {"tcp", 22, 22, {"0.0.0.0/0"}}}}};
  f.regions.push_back(east);
  f.role.role_arn = "arn:aws:iam::123456789012:role/sextant-vendor";
  f.role.trust_policy_json = R"({"Statement":[{"Effect":"Allow",
      "Principal":{"AWS":"arn:aws:iam::999999999999:root"},"Action":"sts:AssumeRole",
      "Condition":{"StringEquals":{"sts:ExternalId":"ext-1"}}}]})";
  return f;
}

TEST(Posture, AWellConfiguredAccountPassesEveryRuleAndNamesTheCall) {
  auto fs = EvaluatePosture(GoodAccount());
  ASSERT_EQ(fs.size(), PostureRules().size());
  for (const auto& f : fs) {
    EXPECT_EQ(f.verdict, PostureVerdict::kPass) << f.rule_id << ": " << f.message;
    EXPECT_FALSE(f.api_call.empty()) << f.rule_id;
    EXPECT_EQ(f.observed_at, 1000);
  }
  EXPECT_EQ(Find(fs, "aws.cloudtrail.logging", "us-east-1")->resource, "arn:trail/org");
  EXPECT_EQ(Find(fs, "aws.ebs.encryption-by-default", "us-east-1")->api_call,
            "ec2:GetEbsEncryptionByDefault");
  EXPECT_EQ(Find(fs, "aws.iam.trust-requires-external-id", "")->api_call, "iam:GetRole");
}

TEST(Posture, EachRuleFailsOnTheFactsThatBreakIt) {
  auto f = GoodAccount();
  auto& r = f.regions[0];
  // A trail homed elsewhere and not multi-region does not cover us-east-1; a covering one that
  // stopped logging does not either.
  r.trails = std::vector<TrailFact>{{"west", "arn:trail/west", "us-west-2", false, true},
                                    {"east", "arn:trail/east", "us-east-1", false, false}};
  r.ebs_encryption_by_default = false;
  r.gpu_instances = std::vector<CloudInstance>{Gpu("i-1", "required"), Gpu("i-2", "optional"),
                                               Gpu("i-3", "optional", "terminated")};
  r.security_groups =
      std::vector<SecurityGroupFact>{{"sg-open", "wide", {{"tcp", 8000, 9000, {"::/0"}}}},
                                     {"sg-all", "all", {{"-1", -1, -1, {"0.0.0.0/0"}}}},
                                     {"sg-udp", "udp", {{"udp", 7443, 7443, {"0.0.0.0/0"}}}}};
  f.role.trust_policy_json = R"({"Statement":[{"Effect":"Allow",
      "Principal":{"AWS":"arn:aws:iam::999999999999:root"},"Action":"sts:AssumeRole"}]})";
  auto fs = EvaluatePosture(f);

  EXPECT_EQ(Find(fs, "aws.cloudtrail.logging", "us-east-1")->verdict, PostureVerdict::kFail);
  EXPECT_EQ(Find(fs, "aws.ebs.encryption-by-default", "us-east-1")->verdict, PostureVerdict::kFail);
  const auto* imds = Find(fs, "aws.ec2.imdsv2-required", "us-east-1", "i-2");
  ASSERT_NE(imds, nullptr);
  EXPECT_EQ(imds->verdict, PostureVerdict::kFail);
  EXPECT_EQ(Find(fs, "aws.ec2.imdsv2-required", "us-east-1", "i-3"), nullptr);  // terminated
  const auto* open = Find(fs, "aws.ec2.agent-ports-not-public", "us-east-1", "sg-open");
  ASSERT_NE(open, nullptr);
  EXPECT_NE(open->message.find("8080"), std::string::npos);
  EXPECT_EQ(open->message.find("7443"), std::string::npos);  // 7443 is outside 8000-9000
  const auto* all = Find(fs, "aws.ec2.agent-ports-not-public", "us-east-1", "sg-all");
  ASSERT_NE(all, nullptr);
  EXPECT_NE(all->message.find("7443, 8080"), std::string::npos);
  EXPECT_EQ(Find(fs, "aws.ec2.agent-ports-not-public", "us-east-1", "sg-udp"), nullptr);
  EXPECT_EQ(Find(fs, "aws.iam.trust-requires-external-id", "")->verdict, PostureVerdict::kFail);
}

TEST(Posture, UnreadableFactsAreUnknownWithTheCallsErrorNeverAPass) {
  AccountPostureFacts f;
  f.role.role_arn = "arn:aws:iam::1:role/r";
  f.role.errors.push_back({"iam:GetRole", "", "AccessDenied", "not authorized", "", 403});
  RegionPostureFacts r;
  r.region = "eu-west-1";
  r.errors.push_back({"cloudtrail:DescribeTrails", "eu-west-1", "AccessDeniedException", "no",
                      "add cloudtrail:DescribeTrails", 400});
  r.errors.push_back(
      {"ec2:GetEbsEncryptionByDefault", "eu-west-1", "UnauthorizedOperation", "no", "", 403});
  f.regions.push_back(r);
  auto fs = EvaluatePosture(f);
  ASSERT_EQ(fs.size(), PostureRules().size());
  for (const auto& x : fs) EXPECT_EQ(x.verdict, PostureVerdict::kUnknown) << x.rule_id;
  EXPECT_NE(Find(fs, "aws.cloudtrail.logging", "eu-west-1")->message.find("AccessDeniedException"),
            std::string::npos);
  EXPECT_NE(
      Find(fs, "aws.ebs.encryption-by-default", "eu-west-1")->message.find("UnauthorizedOperation"),
      std::string::npos);
  EXPECT_NE(Find(fs, "aws.iam.trust-requires-external-id", "")->message.find("AccessDenied"),
            std::string::npos);
}

TEST(Posture, TrailStatusUnreadableIsUnknown) {
  auto f = GoodAccount();
  f.regions[0].trails = std::vector<TrailFact>{{"org", "arn", "us-east-1", false, std::nullopt}};
  f.regions[0].errors.push_back(
      {"cloudtrail:GetTrailStatus", "us-east-1", "TrailNotFoundException", "gone", "", 400});
  auto fs = EvaluatePosture(f);
  const auto* t = Find(fs, "aws.cloudtrail.logging", "us-east-1");
  EXPECT_EQ(t->verdict, PostureVerdict::kUnknown);
  EXPECT_NE(t->message.find("TrailNotFoundException"), std::string::npos);
}

}  // namespace
}  // namespace sextant::console::cloud
