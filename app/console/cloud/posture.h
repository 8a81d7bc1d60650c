// Account posture: the facts the console reads from a customer's account through the vendor
// role, and the rules evaluated on them. Each finding names the API call its facts came from, so
// a reviewer can repeat the call and see the same thing.
//
// Rules (ids are stable; the compliance packs and their SARIF/OCSF output use them):
//   aws.cloudtrail.logging            a trail that is logging covers every region used: a
//                                     multi-region trail, or one whose home region it is
//                                     (cloudtrail:DescribeTrails, cloudtrail:GetTrailStatus)
//   aws.ebs.encryption-by-default     EBS encryption by default is on in every region used
//                                     (ec2:GetEbsEncryptionByDefault)
//   aws.ec2.imdsv2-required           every GPU instance requires IMDSv2 (HttpTokens=required)
//                                     (ec2:DescribeInstances)
//   aws.ec2.agent-ports-not-public    no security group of a GPU instance admits 0.0.0.0/0 or
//                                     ::/0 to an agent port (ec2:DescribeSecurityGroups)
//   aws.iam.trust-requires-external-id  every statement of the vendor role's trust policy that
//                                     lets another account assume it requires the external id
//                                     recorded for the account (iam:GetRole)
// A rule whose facts could not be read gives kUnknown with the call's error, never a pass.
//
// Thread-safety: values and pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "app/console/cloud/cloud_types.h"
#include "app/console/cloud/iam_policy.h"

namespace sextant::console::cloud {

struct TrailFact {
  std::string name;
  std::string arn;
  std::string home_region;
  bool multi_region = false;
  std::optional<bool> logging;  // from GetTrailStatus; nullopt when it could not be read
};

struct IngressRule {
  std::string protocol;  // "tcp", "udp", "icmp", or "-1" (all)
  int from_port = -1;    // -1 with protocol "-1": all ports
  int to_port = -1;
  std::vector<std::string> cidrs;  // IPv4 and IPv6 ranges
};

struct SecurityGroupFact {
  std::string id;
  std::string name;
  std::vector<IngressRule> ingress;
};

// What one region says. A fact left empty could not be read; errors says why.
struct RegionPostureFacts {
  std::string region;
  std::optional<std::vector<TrailFact>> trails;
  std::optional<bool> ebs_encryption_by_default;
  std::optional<std::vector<CloudInstance>> gpu_instances;
  std::optional<std::vector<SecurityGroupFact>> security_groups;  // of the GPU instances
  std::vector<CallError> errors;
};

struct RoleFacts {
  std::string role_arn;
  std::optional<std::string> trust_policy_json;  // the role's AssumeRolePolicyDocument
  std::vector<NamedPolicy> policies;             // attached and inline permission policies
  std::vector<CallError> errors;
};

struct AccountPostureFacts {
  std::string account;  // the console's name for it
  std::string account_id;
  std::string external_id;  // the one the console was told when the account was added
  std::vector<RegionPostureFacts> regions;
  RoleFacts role;
  TimeMs observed_at = 0;
};

enum class PostureVerdict { kPass, kFail, kUnknown };
std::string_view PostureVerdictName(PostureVerdict v);

struct PostureFinding {
  std::string rule_id;
  std::string title;
  std::string region;    // empty for account-wide rules
  std::string resource;  // the trail, instance, security group or role concerned
  PostureVerdict verdict = PostureVerdict::kUnknown;
  std::string message;
  std::string api_call;  // where the facts came from
  TimeMs observed_at = 0;
};

struct PostureOptions {
  std::vector<int> agent_ports = {7443, 8080};  // gRPC (mTLS) and the inference HTTP API
};

// One finding per rule and region (the trust rule once per account), in rule then region
// order; the IMDSv2 and security-group rules give one finding per failing resource, or one
// passing finding per region.
std::vector<PostureFinding> EvaluatePosture(const AccountPostureFacts& facts,
                                            const PostureOptions& options = {});

// The rule ids and titles, in evaluation order.
struct PostureRuleInfo {
  std::string_view id;
  std::string_view title;
  std::string_view api_call;
};
const std::vector<PostureRuleInfo>& PostureRules();

}  // namespace sextant::console::cloud
