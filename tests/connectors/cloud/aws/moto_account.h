// A customer account in moto, made the way a customer makes it: an IAM user for the console
// (the vendor's base credentials, allowed to assume roles), the vendor role with a trust policy
// that names that user and requires the external id, and a permission policy; GPU instances in
// two regions with tags and security groups, a multi-region CloudTrail trail, EBS encryption by
// default in one region, an EKS cluster with a GPU node group, and Cost Explorer answers.
// Everything is created through moto's AWS API with signed requests (moto's authentication is
// off while seeding, on afterwards).
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "app/console/cloud/iam_policy.h"
#include "connectors/cloud/aws/aws_client.h"
#include "connectors/cloud/aws/xml_reader.h"
#include "tests/support/moto_server.h"

namespace sextant::testing {

using cloud::aws::AwsClient;
using cloud::aws::Credentials;
using cloud::aws::KeyValues;
using cloud::aws::ServiceCall;

struct SeededAccount {
  Credentials console;  // the console's base credentials
  std::string account_id = "123456789012";
  std::string role_name = "sextant-vendor";
  std::string role_arn = "arn:aws:iam::123456789012:role/sextant-vendor";
  std::string external_id = "sextant-ext-7f3a";
  std::map<std::string, std::string> instances;  // name -> instance id
  std::string open_sg;                           // the group that admits the world to 8080
};

class MotoSeeder {
 public:
  explicit MotoSeeder(const std::string& endpoint) {
    Credentials seed;
    seed.access_key_id = "seed";
    seed.secret_access_key = "seed";
    seed.source = "seed";
    cloud::aws::AwsClientOptions o;
    o.endpoint_url = endpoint;
    o.max_attempts = 1;
    client_ = std::make_shared<AwsClient>(std::make_shared<cloud::CurlHttpClient>(),
                                          std::make_shared<cloud::aws::StaticCredentials>(seed), o);
  }

  // A query-protocol call; fails the test on an error.
  cloud::aws::XmlDoc Query(const std::string& service, const std::string& region,
                           const std::string& action, const KeyValues& params) {
    static const std::map<std::string, std::string> versions = {
        {"ec2", "2016-11-15"}, {"iam", "2010-05-08"}, {"sts", "2011-06-15"}};
    const ServiceCall call{service, region, action};
    auto body = client_->Query(call, versions.at(service), params);
    EXPECT_TRUE(body.ok()) << action << ": " << (body.ok() ? "" : body.error().ToString());
    if (!body.ok()) return std::make_shared<pugi::xml_document>();
    auto doc = cloud::aws::ParseXml(call, *body);
    EXPECT_TRUE(doc.ok());
    return doc.ok() ? *doc : std::make_shared<pugi::xml_document>();
  }

  static std::string Text(const cloud::aws::XmlDoc& doc, const char* xpath) {
    return doc->select_node(xpath).node().text().as_string();
  }

  // The console's IAM user with an access key and leave to assume roles.
  void CreateConsoleUser(SeededAccount* a) {
    Query("iam", "us-east-1", "CreateUser", {{"UserName", "sextant-console"}});
    auto key = Query("iam", "us-east-1", "CreateAccessKey", {{"UserName", "sextant-console"}});
    a->console.access_key_id = Text(key, "//AccessKey/AccessKeyId");
    a->console.secret_access_key = Text(key, "//AccessKey/SecretAccessKey");
    a->console.source = "moto user sextant-console";
    Query("iam", "us-east-1", "PutUserPolicy",
          {{"UserName", "sextant-console"},
           {"PolicyName", "assume-vendor-roles"},
           {"PolicyDocument", R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow",
              "Action":"sts:AssumeRole","Resource":"*"}]})"}});
  }

  // The vendor role, trusting the console's user with the external id, with `policy` attached.
  void CreateVendorRole(SeededAccount* a, const std::string& policy) {
    const nlohmann::json trust = {
        {"Version", "2012-10-17"},
        {"Statement",
         {{{"Effect", "Allow"},
           {"Principal", {{"AWS", "arn:aws:iam::" + a->account_id + ":user/sextant-console"}}},
           {"Action", "sts:AssumeRole"},
           {"Condition", {{"StringEquals", {{"sts:ExternalId", a->external_id}}}}}}}}};
    Query("iam", "us-east-1", "CreateRole",
          {{"RoleName", a->role_name}, {"AssumeRolePolicyDocument", trust.dump()}});
    AttachPolicy(a, "sextant-vendor-policy", policy);
  }

  void AttachPolicy(SeededAccount* a, const std::string& name, const std::string& policy) {
    auto created = Query("iam", "us-east-1", "CreatePolicy",
                         {{"PolicyName", name}, {"PolicyDocument", policy}});
    Query("iam", "us-east-1", "AttachRolePolicy",
          {{"RoleName", a->role_name}, {"PolicyArn", Text(created, "//Policy/Arn")}});
  }

  std::string SecurityGroup(const std::string& region, const std::string& name, int port,
                            const std::string& cidr) {
    auto sg = Query("ec2", region, "CreateSecurityGroup",
                    {{"GroupName", name}, {"GroupDescription", name}});
    const std::string id = Text(sg, "//groupId");
    Query("ec2", region, "AuthorizeSecurityGroupIngress",
          {{"GroupId", id},
           {"IpPermissions.1.IpProtocol", "tcp"},
           {"IpPermissions.1.FromPort", std::to_string(port)},
           {"IpPermissions.1.ToPort", std::to_string(port)},
           {"IpPermissions.1.IpRanges.1.CidrIp", cidr}});
    return id;
  }

  std::string RunInstance(const std::string& region, const std::string& type,
                          const std::string& http_tokens,
                          const std::map<std::string, std::string>& tags,
                          const std::string& security_group) {
    KeyValues p = {{"ImageId", "ami-12345678"},
                   {"InstanceType", type},
                   {"MinCount", "1"},
                   {"MaxCount", "1"},
                   {"MetadataOptions.HttpTokens", http_tokens}};
    if (!security_group.empty()) p.emplace_back("SecurityGroupId.1", security_group);
    int n = 1;
    if (!tags.empty()) p.emplace_back("TagSpecification.1.ResourceType", "instance");
    for (const auto& [k, v] : tags) {
      p.emplace_back("TagSpecification.1.Tag." + std::to_string(n) + ".Key", k);
      p.emplace_back("TagSpecification.1.Tag." + std::to_string(n) + ".Value", v);
      ++n;
    }
    auto doc = Query("ec2", region, "RunInstances", p);
    return Text(doc, "//instancesSet/item/instanceId");
  }

  void MultiRegionTrail(const std::string& home) {
    auto bucket =
        client_->Raw({"s3", home, "CreateBucket"}, "PUT", "/sextant-trail-logs", {}, {}, "");
    ASSERT_TRUE(bucket.ok()) << bucket.error().ToString();
    const std::string target = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101";
    auto trail = client_->Json({"cloudtrail", home, "CreateTrail"}, target,
                               {{"Name", "org-trail"},
                                {"S3BucketName", "sextant-trail-logs"},
                                {"IsMultiRegionTrail", true}});
    ASSERT_TRUE(trail.ok()) << trail.error().ToString();
    auto start =
        client_->Json({"cloudtrail", home, "StartLogging"}, target, {{"Name", "org-trail"}});
    ASSERT_TRUE(start.ok()) << start.error().ToString();
  }

  void EksCluster(const std::string& region, const std::string& name,
                  const std::string& node_type) {
    auto c = client_->Rest({"eks", region, "CreateCluster"}, "POST", "/clusters", {},
                           {{"name", name},
                            {"roleArn", "arn:aws:iam::123456789012:role/eks"},
                            {"resourcesVpcConfig", {{"subnetIds", {"subnet-1"}}}}});
    ASSERT_TRUE(c.ok()) << c.error().ToString();
    auto ng = client_->Rest(
        {"eks", region, "CreateNodegroup"}, "POST", "/clusters/" + name + "/node-groups", {},
        {{"nodegroupName", "gpu"},
         {"nodeRole", "arn:aws:iam::123456789012:role/node"},
         {"subnets", {"subnet-1"}},
         {"instanceTypes", {node_type}},
         {"capacityType", "SPOT"},
         {"scalingConfig", {{"minSize", 0}, {"maxSize", 4}, {"desiredSize", 2}}}});
    ASSERT_TRUE(ng.ok()) << ng.error().ToString();
  }

  // The account every end-to-end test starts from (see the file comment).
  SeededAccount Standard(MotoServer& moto, const std::string& policy) {
    SeededAccount a;
    CreateConsoleUser(&a);
    CreateVendorRole(&a, policy);
    a.open_sg = SecurityGroup("us-east-1", "agents", 8080, "0.0.0.0/0");
    const std::string closed = SecurityGroup("us-west-2", "agents", 7443, "10.0.0.0/8");
    a.instances["east-h100"] = RunInstance("us-east-1", "p5.48xlarge", "required",
                                           {{"sextant.io/deployment", "stories"}}, a.open_sg);
    a.instances["east-a10g"] =
        RunInstance("us-east-1", "g5.xlarge", "optional", {{"sextant.io/deployment", "chat"}}, "");
    a.instances["east-cpu"] = RunInstance("us-east-1", "t3.micro", "optional", {}, "");
    a.instances["west-a100"] = RunInstance("us-west-2", "p4d.24xlarge", "required",
                                           {{"sextant.io/deployment", "stories"}}, closed);
    Query("ec2", "us-west-2", "EnableEbsEncryptionByDefault", {});
    MultiRegionTrail("us-east-1");
    EksCluster("us-west-2", "inference", "p5.48xlarge");
    EXPECT_TRUE(moto.SeedCostAndUsage(CostResults().dump()).ok());
    return a;
  }

  // Two days of cost grouped by sextant.io/deployment, the second day still estimated, with a
  // credit on the first day in the untagged group.
  static nlohmann::json CostResults() {
    auto group = [](const std::string& key, const std::string& amount) {
      return nlohmann::json{
          {"Keys", {key}}, {"Metrics", {{"UnblendedCost", {{"Amount", amount}, {"Unit", "USD"}}}}}};
    };
    return {{"results",
             {{{"ResultsByTime",
                {{{"TimePeriod", {{"Start", "2026-03-01"}, {"End", "2026-03-02"}}},
                  {"Total", nlohmann::json::object()},
                  {"Groups",
                   {group("sextant.io/deployment$stories", "2359.68"),
                    group("sextant.io/deployment$chat", "24.14"),
                    group("sextant.io/deployment$", "-100.00")}},
                  {"Estimated", false}},
                 {{"TimePeriod", {{"Start", "2026-03-02"}, {"End", "2026-03-03"}}},
                  {"Total", nlohmann::json::object()},
                  {"Groups", {group("sextant.io/deployment$stories", "1179.84")}},
                  {"Estimated", true}}}},
               {"DimensionValueAttributes", nlohmann::json::array()}}}}};
  }

  AwsClient& client() { return *client_; }

 private:
  std::shared_ptr<AwsClient> client_;
};

}  // namespace sextant::testing
