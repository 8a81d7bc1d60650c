// IAM reads of the vendor role itself: its trust policy (iam:GetRole) and its permission
// policies, attached (iam:ListAttachedRolePolicies, iam:GetPolicy, iam:GetPolicyVersion) and
// inline (iam:ListRolePolicies, iam:GetRolePolicy). Documents come back decoded (IAM sends
// them URL-encoded).
// Thread-safety: free functions over a thread-safe AwsClient.
#pragma once

#include <string>
#include <vector>

#include "app/console/cloud/iam_policy.h"
#include "connectors/cloud/aws/aws_client.h"

namespace sextant::cloud::aws {

// "arn:aws:iam::123456789012:role/path/sextant-vendor" -> "sextant-vendor"; "" if not a role
// ARN.
std::string RoleNameFromArn(std::string_view arn);
// "arn:aws:iam::123456789012:role/x" -> "123456789012"; "" if not an ARN.
std::string AccountFromArn(std::string_view arn);

struct RoleInfo {
  std::string name;
  std::string arn;
  std::string trust_policy_json;
};
CallResult<RoleInfo> IamGetRole(AwsClient& client, const std::string& role_name);

// The role's permission policies. A policy that cannot be read is left out and its error
// appended to `errors`; the listing calls failing is an error.
CallResult<std::vector<console::cloud::NamedPolicy>> IamRolePolicies(
    AwsClient& client, const std::string& role_name, std::vector<CallError>* errors);

}  // namespace sextant::cloud::aws
