#include "app/console/cloud/iam_policy.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

namespace sextant::console::cloud {
namespace {

TEST(ActionMatches, IamGlobRulesCaseInsensitive) {
  EXPECT_TRUE(ActionMatches("*", "s3:GetObject"));
  EXPECT_TRUE(ActionMatches("s3:*", "s3:GetObject"));
  EXPECT_TRUE(ActionMatches("S3:getobj*", "s3:GetObject"));
  EXPECT_TRUE(ActionMatches("ec2:Describe*", "ec2:DescribeInstances"));
  EXPECT_TRUE(ActionMatches("s3:Get?bject", "s3:GetObject"));
  EXPECT_TRUE(ActionMatches("*:Get*", "s3:GetObject"));
  EXPECT_FALSE(ActionMatches("ec2:Describe*", "ec2:RunInstances"));
  EXPECT_FALSE(ActionMatches("s3:Get", "s3:GetObject"));
  EXPECT_FALSE(ActionMatches("s3:GetObject", "s3:GetObjectAcl"));
  EXPECT_FALSE(ActionMatches("s3:*Acl", "s3:GetObject"));
}

TEST(PolicyDocument, StatementObjectOrArrayAndStringOrList) {
  auto one = ParsePolicyDocument(
      R"({"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}})",
      "p");
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  ASSERT_EQ(one->size(), 1u);
  EXPECT_TRUE((*one)[0].allow);
  EXPECT_EQ((*one)[0].actions, std::vector<std::string>{"s3:GetObject"});

  auto two = ParsePolicyDocument(
      R"({"Statement":[{"Sid":"a","Effect":"Deny","Action":["ec2:*","iam:*"]},
                       {"Effect":"Allow","NotAction":"iam:*","Resource":["*"]}]})",
      "p");
  ASSERT_TRUE(two.ok()) << two.status().ToString();
  EXPECT_FALSE((*two)[0].allow);
  EXPECT_EQ((*two)[0].sid, "a");
  EXPECT_EQ((*two)[0].actions.size(), 2u);
  EXPECT_EQ((*two)[1].not_actions, std::vector<std::string>{"iam:*"});
}

TEST(PolicyDocument, MalformedDocumentsNameTheStatementAndField) {
  struct Case {
    const char* doc;
    const char* want;
  } cases[] = {
      {"{", "not valid JSON"},
      {"[]", "not an object"},
      {R"({"Version":"x"})", "no Statement"},
      {R"({"Statement":[{"Action":"s3:*"}]})", "Statement[0].Effect: missing"},
      {R"({"Statement":[{"Effect":"Maybe","Action":"s3:*"}]})", "neither Allow nor Deny"},
      {R"({"Statement":[{"Effect":"Allow","Action":[1]}]})", "Statement[0].Action[0]"},
      {R"({"Statement":[{"Effect":"Allow","Action":"a:b"},{"Effect":"Allow"}]})",
       "Statement[1]: neither Action nor NotAction"},
      {R"({"Statement":[{"Effect":"Allow","Action":"a:b","Condition":[]}]})",
       "Statement[0].Condition"},
  };
  for (const auto& c : cases) {
    auto r = ParsePolicyDocument(c.doc, "doc.json");
    ASSERT_FALSE(r.ok()) << c.doc;
    EXPECT_NE(r.status().message().find(c.want), std::string::npos)
        << c.doc << " -> " << r.status().message();
    EXPECT_NE(r.status().message().find("doc.json"), std::string::npos);
  }
}

TEST(RequiredActions, MinimalPolicyGrantsExactlyTheTableAndNothingMore) {
  const std::string arn = "arn:aws:iam::123456789012:role/sextant-vendor";
  const std::string text = MinimalPolicyJson(arn);
  auto doc = nlohmann::json::parse(text);
  std::set<std::string> granted;
  for (const auto& s : doc["Statement"]) {
    EXPECT_EQ(s["Effect"], "Allow");
    for (const auto& a : s["Action"]) granted.insert(a.get<std::string>());
    if (s["Sid"] == "SextantReadOwnRole") {
      EXPECT_EQ(s["Resource"], arn);
    }
  }
  std::set<std::string> required;
  for (const auto& r : RequiredActions()) required.insert(std::string(r.action));
  EXPECT_EQ(granted, required);
  // The minimal policy itself raises no concern.
  std::vector<std::string> errors;
  auto excess = FindExcessGrants({{"minimal", "", text}}, &errors);
  EXPECT_TRUE(errors.empty());
  EXPECT_TRUE(excess.empty()) << excess.front().pattern << ": " << excess.front().detail;
  // No wildcard, no write: a reviewer reads the list as is.
  for (const auto& a : required) {
    EXPECT_EQ(a.find('*'), std::string::npos) << a;
    const std::string verb = a.substr(a.find(':') + 1);
    EXPECT_TRUE(verb.rfind("Describe", 0) == 0 || verb.rfind("Get", 0) == 0 ||
                verb.rfind("List", 0) == 0)
        << a << " is not a read";
  }
}

TEST(ExcessGrants, FlagsWildcardsDataWritesNotActionAndUnneeded) {
  const std::string doc = R"({"Version":"2012-10-17","Statement":[
    {"Effect":"Allow","Action":["ec2:DescribeInstances","s3:GetObject"],"Resource":"*"},
    {"Effect":"Allow","Action":"*","Resource":"*"},
    {"Effect":"Allow","Action":["s3:*","iam:PassRole","ec2:Describe*","ec2:DescribeVolumes"],
     "Resource":"*"},
    {"Effect":"Allow","NotAction":"iam:*","Resource":"*"},
    {"Effect":"Deny","Action":"*","Resource":"*"}]})";
  std::vector<std::string> errors;
  auto excess = FindExcessGrants({{"ReadOnlyPlus", "arn:aws:iam::aws:policy/X", doc}}, &errors);
  ASSERT_TRUE(errors.empty());
  auto find = [&](const std::string& pattern) -> const ExcessGrant* {
    for (const auto& e : excess) {
      if (e.pattern == pattern) return &e;
    }
    return nullptr;
  };
  ASSERT_NE(find("s3:GetObject"), nullptr);
  EXPECT_EQ(find("s3:GetObject")->concern, GrantConcern::kDataAccess);
  EXPECT_EQ(find("s3:GetObject")->statement, 0);
  EXPECT_EQ(find("s3:GetObject")->policy, "ReadOnlyPlus");
  EXPECT_EQ(find("*")->concern, GrantConcern::kAllActions);
  EXPECT_EQ(find("s3:*")->concern, GrantConcern::kServiceWildcard);
  EXPECT_EQ(find("iam:PassRole")->concern, GrantConcern::kWrite);
  ASSERT_NE(find("ec2:Describe*"), nullptr);
  EXPECT_EQ(find("ec2:Describe*")->concern, GrantConcern::kUnneeded);
  EXPECT_NE(find("ec2:Describe*")->detail.find("ec2:DescribeInstances"), std::string::npos);
  EXPECT_EQ(find("ec2:DescribeVolumes")->concern, GrantConcern::kUnneeded);
  EXPECT_EQ(find("NotAction: iam:*")->concern, GrantConcern::kNotAction);
  EXPECT_EQ(find("ec2:DescribeInstances"), nullptr);  // needed
  EXPECT_EQ(excess.size(), 7u);                       // Deny adds nothing
}

TEST(ExcessGrants, AMalformedPolicyIsReportedNotSkippedSilently) {
  std::vector<std::string> errors;
  auto excess = FindExcessGrants({{"broken", "", "{\"Statement\": 3"}}, &errors);
  EXPECT_TRUE(excess.empty());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("broken"), std::string::npos);
}

std::vector<PolicyStatement> Trust(const std::string& doc) {
  auto r = ParsePolicyDocument(doc, "trust");
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : std::vector<PolicyStatement>{};
}

TEST(TrustPolicy, ExternalIdRequiredForEveryCrossAccountStatement) {
  const std::string good = R"({"Statement":[{"Effect":"Allow",
     "Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"sts:AssumeRole",
     "Condition":{"StringEquals":{"sts:ExternalId":"ext-42"}}}]})";
  EXPECT_TRUE(CheckTrustRequiresExternalId(Trust(good), "ext-42").requires_external_id);
  // Condition keys are case-insensitive in IAM.
  const std::string lower = R"({"Statement":[{"Effect":"Allow",
     "Principal":{"AWS":["arn:aws:iam::111122223333:root"]},"Action":["sts:AssumeRole"],
     "Condition":{"StringEquals":{"sts:externalid":["ext-42"]}}}]})";
  EXPECT_TRUE(CheckTrustRequiresExternalId(Trust(lower), "ext-42").requires_external_id);

  auto other = CheckTrustRequiresExternalId(Trust(good), "ext-43");
  EXPECT_FALSE(other.requires_external_id);
  EXPECT_NE(other.detail.find("other than the one recorded"), std::string::npos);

  const std::string missing = R"({"Statement":[
     {"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"},
     {"Sid":"Vendor","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},
      "Action":"sts:*"}]})";
  auto m = CheckTrustRequiresExternalId(Trust(missing), "ext-42");
  EXPECT_FALSE(m.requires_external_id);
  EXPECT_NE(m.detail.find("statement 1 (Vendor)"), std::string::npos) << m.detail;

  // StringLike with a wildcard is not a requirement of the recorded id.
  const std::string like = R"({"Statement":[{"Effect":"Allow","Principal":"*",
     "Action":"sts:AssumeRole","Condition":{"StringLike":{"sts:ExternalId":"*"}}}]})";
  EXPECT_FALSE(CheckTrustRequiresExternalId(Trust(like), "ext-42").requires_external_id);

  const std::string service_only = R"({"Statement":[{"Effect":"Allow",
     "Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]})";
  auto s = CheckTrustRequiresExternalId(Trust(service_only), "ext-42");
  EXPECT_FALSE(s.requires_external_id);
  EXPECT_NE(s.detail.find("no statement"), std::string::npos);
}

}  // namespace
}  // namespace sextant::console::cloud
