// The vendor role's permissions, as a customer's reviewer sees them: the actions the console
// calls (one table, from which docs/cloud-accounts.md's minimal policy is generated), IAM
// policy documents parsed, and the grants of a role that go beyond that table.
//
// A grant goes beyond what is needed when an Allow statement names "*", a whole service
// ("s3:*"), an action that reads customer data (s3:GetObject, secretsmanager:GetSecretValue,
// sagemaker:InvokeEndpoint ...), an action that changes the account (iam:PassRole,
// ec2:RunInstances ...), uses NotAction, or names an action the console never calls. Deny
// statements only take away, so they are never a concern.
//
// Thread-safety: pure functions; the tables are immutable.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/status.h"

namespace sextant::console::cloud {

// A permission policy of the role: a managed policy (arn set) or an inline one.
struct NamedPolicy {
  std::string name;
  std::string arn;            // empty for an inline policy
  std::string document_json;  // the policy document, decoded
};

struct PolicyStatement {
  std::string sid;
  bool allow = false;
  std::vector<std::string> actions;
  std::vector<std::string> not_actions;
  std::vector<std::string> resources;
  nlohmann::json principal;  // null when absent
  nlohmann::json condition;  // null when absent
};

// Parses an IAM policy document ({"Version", "Statement": object or array}). Action, NotAction
// and Resource may be a string or an array of strings. An error names `name` and the statement.
Result<std::vector<PolicyStatement>> ParsePolicyDocument(std::string_view json_text,
                                                         const std::string& name);

// IAM's action matching: case-insensitive, '*' matches any run of characters, '?' one.
bool ActionMatches(std::string_view pattern, std::string_view action);

// An action the console calls, and for what. `role_scoped`: the resource is the vendor role
// itself (the console reads its own role's policies and nothing else in IAM).
struct RequiredAction {
  std::string_view action;
  std::string_view used_for;
  bool role_scoped = false;
};
const std::vector<RequiredAction>& RequiredActions();

// The minimal permission policy for the vendor role, as indented JSON: one statement for the
// read calls on "*" (they take no narrower resource) and one for the IAM reads of the role
// itself (`role_arn`, e.g. "arn:aws:iam::123456789012:role/sextant-vendor").
std::string MinimalPolicyJson(std::string_view role_arn);

enum class GrantConcern {
  kAllActions,       // "*"
  kServiceWildcard,  // "s3:*"
  kDataAccess,       // reads customer data
  kWrite,            // changes the account or its identities
  kNotAction,        // Allow with NotAction: everything but a list
  kUnneeded,         // an action (or pattern) the console never calls
};
std::string_view GrantConcernName(GrantConcern c);

struct ExcessGrant {
  std::string policy;   // policy name
  int statement = 0;    // index in the document's Statement list
  std::string pattern;  // the action pattern as written
  GrantConcern concern = GrantConcern::kUnneeded;
  std::string detail;  // e.g. "allows s3:GetObject (reads customer data)"
};

// The grants of `policies` beyond RequiredActions(), in policy then statement order. A policy
// that does not parse is reported in `errors` (and its grants are unknown), never skipped.
std::vector<ExcessGrant> FindExcessGrants(const std::vector<NamedPolicy>& policies,
                                          std::vector<std::string>* errors);

// Whether every Allow statement of a trust policy that lets an AWS principal assume the role
// requires sts:ExternalId to equal `external_id` (StringEquals). `detail` says which statement
// does not, or what was checked.
struct TrustCheck {
  bool requires_external_id = false;
  std::string detail;
};
TrustCheck CheckTrustRequiresExternalId(const std::vector<PolicyStatement>& trust,
                                        std::string_view external_id);

}  // namespace sextant::console::cloud
