#include "app/console/cloud/iam_policy.h"

#include <algorithm>
#include <cctype>

namespace sextant::console::cloud {

namespace {

using nlohmann::json;

char Lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

bool IsWildcard(std::string_view pattern) {
  return pattern.find_first_of("*?") != std::string_view::npos;
}

// A string or an array of strings; anything else is an error naming the field.
Status StringList(const json& j, const std::string& where, std::vector<std::string>* out) {
  if (j.is_string()) {
    out->push_back(j.get<std::string>());
    return Status::Ok();
  }
  if (!j.is_array()) return Status::InvalidArgument(where + ": expected a string or an array");
  for (size_t i = 0; i < j.size(); ++i) {
    if (!j[i].is_string()) {
      return Status::InvalidArgument(where + "[" + std::to_string(i) + "]: expected a string");
    }
    out->push_back(j[i].get<std::string>());
  }
  return Status::Ok();
}

// Actions that read what the customer keeps in the account (objects, secrets, parameters,
// inference payloads, logs, disks). Matched against the patterns of Allow statements.
constexpr std::string_view kDataActions[] = {
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:ListBucket",
    "s3:PutObject",
    "s3:DeleteObject",
    "secretsmanager:GetSecretValue",
    "ssm:GetParameter",
    "ssm:GetParameters",
    "ssm:GetParametersByPath",
    "kms:Decrypt",
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "logs:GetLogEvents",
    "logs:FilterLogEvents",
    "sagemaker:InvokeEndpoint",
    "bedrock:InvokeModel",
    "ec2:GetConsoleOutput",
    "ec2:GetPasswordData",
    "ebs:GetSnapshotBlock",
    "ecr:GetDownloadUrlForLayer",
    "rds-data:ExecuteStatement",
};

// Actions that change the account, its identities or its instances.
constexpr std::string_view kWriteActions[] = {
    "iam:PassRole",
    "iam:CreateAccessKey",
    "iam:CreateUser",
    "iam:AttachRolePolicy",
    "iam:PutRolePolicy",
    "iam:UpdateAssumeRolePolicy",
    "sts:AssumeRole",
    "ec2:RunInstances",
    "ec2:TerminateInstances",
    "ec2:ModifyInstanceAttribute",
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:CreateSnapshot",
    "ssm:SendCommand",
    "ssm:StartSession",
    "eks:CreateAccessEntry",
    "eks:UpdateClusterConfig",
    "cloudtrail:StopLogging",
    "cloudtrail:DeleteTrail",
};

std::string Join(const std::vector<std::string>& v, std::string_view sep) {
  std::string s;
  for (const auto& x : v) {
    if (!s.empty()) s += sep;
    s += x;
  }
  return s;
}

bool IsRequired(std::string_view action) {
  for (const auto& r : RequiredActions()) {
    if (EqualsIgnoreCase(r.action, action)) return true;
  }
  return false;
}

}  // namespace

bool ActionMatches(std::string_view pattern, std::string_view action) {
  // Iterative glob match with backtracking to the last '*'.
  size_t p = 0, a = 0, star = std::string_view::npos, mark = 0;
  while (a < action.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || Lower(pattern[p]) == Lower(action[a]))) {
      ++p;
      ++a;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = a;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      a = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

Result<std::vector<PolicyStatement>> ParsePolicyDocument(std::string_view json_text,
                                                         const std::string& name) {
  json doc = json::parse(json_text, nullptr, false);
  if (doc.is_discarded()) return Status::InvalidArgument(name + ": not valid JSON");
  if (!doc.is_object()) return Status::InvalidArgument(name + ": the document is not an object");
  auto st = doc.find("Statement");
  if (st == doc.end()) return Status::InvalidArgument(name + ": no Statement");
  json list = st->is_array() ? *st : json::array({*st});
  std::vector<PolicyStatement> out;
  for (size_t i = 0; i < list.size(); ++i) {
    const json& s = list[i];
    const std::string where = name + ": Statement[" + std::to_string(i) + "]";
    if (!s.is_object()) return Status::InvalidArgument(where + ": not an object");
    PolicyStatement ps;
    if (auto it = s.find("Sid"); it != s.end() && it->is_string()) ps.sid = it->get<std::string>();
    auto effect = s.find("Effect");
    if (effect == s.end() || !effect->is_string()) {
      return Status::InvalidArgument(where + ".Effect: missing");
    }
    if (*effect == "Allow") {
      ps.allow = true;
    } else if (*effect != "Deny") {
      return Status::InvalidArgument(where + ".Effect: \"" + effect->get<std::string>() +
                                     "\" is neither Allow nor Deny");
    }
    if (auto it = s.find("Action"); it != s.end()) {
      SEXTANT_RETURN_IF_ERROR(StringList(*it, where + ".Action", &ps.actions));
    }
    if (auto it = s.find("NotAction"); it != s.end()) {
      SEXTANT_RETURN_IF_ERROR(StringList(*it, where + ".NotAction", &ps.not_actions));
    }
    if (ps.actions.empty() && ps.not_actions.empty()) {
      return Status::InvalidArgument(where + ": neither Action nor NotAction");
    }
    if (auto it = s.find("Resource"); it != s.end()) {
      SEXTANT_RETURN_IF_ERROR(StringList(*it, where + ".Resource", &ps.resources));
    }
    if (auto it = s.find("Principal"); it != s.end()) ps.principal = *it;
    if (auto it = s.find("Condition"); it != s.end()) {
      if (!it->is_object()) return Status::InvalidArgument(where + ".Condition: not an object");
      ps.condition = *it;
    }
    out.push_back(std::move(ps));
  }
  return out;
}

const std::vector<RequiredAction>& RequiredActions() {
  static const std::vector<RequiredAction> kActions = {
      {"ec2:DescribeRegions", "the regions the account may use (accounts check, offers)"},
      {"ec2:DescribeInstanceTypeOfferings", "instance types offered per zone (offers)"},
      {"ec2:DescribeInstanceTypes", "GPU model, count and memory of each type (offers, fleet)"},
      {"ec2:DescribeSpotPriceHistory", "current spot prices (offers)"},
      {"ec2:DescribeInstances",
       "GPU instances (fleet), quota in use (offers), IMDSv2 rule (compliance)"},
      {"ec2:GetEbsEncryptionByDefault", "EBS encryption rule (compliance)"},
      {"ec2:DescribeSecurityGroups", "agent ports rule (compliance)"},
      {"servicequotas:GetServiceQuota", "vCPU quota of the instance family (offers)"},
      {"pricing:GetProducts", "on-demand list prices (offers; the price catalogs otherwise)"},
      {"ce:GetCostAndUsage", "billed cost per deployment tag (cost)"},
      {"cloudtrail:DescribeTrails", "CloudTrail rule (compliance)"},
      {"cloudtrail:GetTrailStatus", "CloudTrail rule (compliance)"},
      {"eks:ListClusters", "EKS clusters (clusters)"},
      {"eks:DescribeCluster", "EKS clusters (clusters)"},
      {"eks:ListNodegroups", "GPU node groups (clusters)"},
      {"eks:DescribeNodegroup", "GPU node groups (clusters)"},
      {"iam:GetPolicy", "the role's attached policies (accounts check)"},
      {"iam:GetPolicyVersion", "the role's attached policies (accounts check)"},
      {"iam:GetRole", "the trust policy's external id (accounts check, compliance)", true},
      {"iam:ListAttachedRolePolicies", "the role's own permissions (accounts check)", true},
      {"iam:ListRolePolicies", "the role's own permissions (accounts check)", true},
      {"iam:GetRolePolicy", "the role's own permissions (accounts check)", true},
  };
  return kActions;
}

std::string MinimalPolicyJson(std::string_view role_arn) {
  json read_actions = json::array();
  json role_actions = json::array();
  for (const auto& r : RequiredActions()) {
    (r.role_scoped ? role_actions : read_actions).push_back(std::string(r.action));
  }
  json doc = {
      {"Version", "2012-10-17"},
      {"Statement", json::array({
                        {{"Sid", "SextantRead"},
                         {"Effect", "Allow"},
                         {"Action", read_actions},
                         {"Resource", "*"}},
                        {{"Sid", "SextantReadOwnRole"},
                         {"Effect", "Allow"},
                         {"Action", role_actions},
                         {"Resource", std::string(role_arn)}},
                    })},
  };
  return doc.dump(2);
}

std::string_view GrantConcernName(GrantConcern c) {
  switch (c) {
    case GrantConcern::kAllActions:
      return "all-actions";
    case GrantConcern::kServiceWildcard:
      return "service-wildcard";
    case GrantConcern::kDataAccess:
      return "data-access";
    case GrantConcern::kWrite:
      return "write";
    case GrantConcern::kNotAction:
      return "not-action";
    case GrantConcern::kUnneeded:
      return "unneeded";
  }
  return "unknown";
}

std::vector<ExcessGrant> FindExcessGrants(const std::vector<NamedPolicy>& policies,
                                          std::vector<std::string>* errors) {
  std::vector<ExcessGrant> out;
  for (const auto& policy : policies) {
    auto statements = ParsePolicyDocument(policy.document_json, policy.name);
    if (!statements.ok()) {
      if (errors) errors->push_back(statements.status().message());
      continue;
    }
    for (size_t i = 0; i < statements->size(); ++i) {
      const PolicyStatement& s = (*statements)[i];
      if (!s.allow) continue;
      const std::string on = s.resources.empty() ? std::string() : " on " + Join(s.resources, ", ");
      auto add = [&](const std::string& pattern, GrantConcern c, std::string detail) {
        out.push_back({policy.name, static_cast<int>(i), pattern, c, std::move(detail) + on});
      };
      if (!s.not_actions.empty()) {
        add("NotAction: " + Join(s.not_actions, ", "), GrantConcern::kNotAction,
            "allows every action except " + Join(s.not_actions, ", "));
      }
      for (const std::string& pattern : s.actions) {
        if (pattern == "*") {
          add(pattern, GrantConcern::kAllActions, "allows every action of every service");
          continue;
        }
        const size_t colon = pattern.find(':');
        if (colon != std::string::npos && pattern.substr(colon + 1) == "*") {
          add(pattern, GrantConcern::kServiceWildcard,
              "allows every " + pattern.substr(0, colon) + " action");
          continue;
        }
        std::vector<std::string> data, write;
        for (std::string_view a : kDataActions) {
          if (ActionMatches(pattern, a)) data.emplace_back(a);
        }
        for (std::string_view a : kWriteActions) {
          if (ActionMatches(pattern, a)) write.emplace_back(a);
        }
        if (!data.empty()) {
          add(pattern, GrantConcern::kDataAccess,
              "allows " + Join(data, ", ") + " (reads customer data)");
        } else if (!write.empty()) {
          add(pattern, GrantConcern::kWrite,
              "allows " + Join(write, ", ") + " (changes the account)");
        } else if (IsWildcard(pattern)) {
          std::vector<std::string> covered;
          for (const auto& r : RequiredActions()) {
            if (ActionMatches(pattern, r.action)) covered.emplace_back(r.action);
          }
          add(pattern, GrantConcern::kUnneeded,
              covered.empty()
                  ? "a pattern covering no action Sextant calls"
                  : "a pattern covering more than the " + std::to_string(covered.size()) +
                        " action(s) Sextant calls (" + Join(covered, ", ") + ")");
        } else if (!IsRequired(pattern)) {
          add(pattern, GrantConcern::kUnneeded, "an action Sextant never calls");
        }
      }
    }
  }
  return out;
}

namespace {

// The AWS principals of a statement ("*" counts as every principal).
bool HasAwsPrincipal(const json& principal) {
  if (principal.is_string()) return principal.get<std::string>() == "*";
  if (!principal.is_object()) return false;
  for (auto it = principal.begin(); it != principal.end(); ++it) {
    if (it.key() == "AWS") return true;
  }
  return false;
}

// The values a StringEquals condition gives sts:ExternalId (condition keys are
// case-insensitive), or nothing.
std::vector<std::string> ExternalIdValues(const json& condition) {
  std::vector<std::string> values;
  if (!condition.is_object()) return values;
  auto op = condition.find("StringEquals");
  if (op == condition.end() || !op->is_object()) return values;
  for (auto it = op->begin(); it != op->end(); ++it) {
    if (!EqualsIgnoreCase(it.key(), "sts:ExternalId")) continue;
    std::vector<std::string> v;
    if (StringList(*it, "", &v).ok()) values.insert(values.end(), v.begin(), v.end());
  }
  return values;
}

}  // namespace

TrustCheck CheckTrustRequiresExternalId(const std::vector<PolicyStatement>& trust,
                                        std::string_view external_id) {
  TrustCheck check;
  int cross_account = 0;
  for (size_t i = 0; i < trust.size(); ++i) {
    const PolicyStatement& s = trust[i];
    if (!s.allow || !HasAwsPrincipal(s.principal)) continue;
    bool assumes = !s.not_actions.empty();  // NotAction may well include AssumeRole
    for (const auto& a : s.actions) assumes = assumes || ActionMatches(a, "sts:AssumeRole");
    if (!assumes) continue;
    ++cross_account;
    const std::string which =
        "statement " + std::to_string(i) + (s.sid.empty() ? std::string() : " (" + s.sid + ")");
    std::vector<std::string> ids = ExternalIdValues(s.condition);
    if (ids.empty()) {
      check.detail = which + " lets an AWS principal assume the role without sts:ExternalId";
      return check;
    }
    if (!external_id.empty()) {
      for (const auto& id : ids) {
        if (id != external_id) {
          check.detail = which + " accepts an external id other than the one recorded";
          return check;
        }
      }
    }
  }
  if (cross_account == 0) {
    check.detail = "no statement lets an AWS principal assume the role";
    return check;
  }
  check.requires_external_id = true;
  check.detail = std::to_string(cross_account) + " statement(s) letting an AWS principal assume " +
                 "the role require sts:ExternalId" +
                 (external_id.empty() ? std::string() : " to equal the recorded one");
  return check;
}

}  // namespace sextant::console::cloud
