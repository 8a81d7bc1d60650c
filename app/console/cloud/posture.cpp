#include "app/console/cloud/posture.h"

#include <algorithm>

namespace sextant::console::cloud {

namespace {

constexpr std::string_view kTrailRule = "aws.cloudtrail.logging";
constexpr std::string_view kEbsRule = "aws.ebs.encryption-by-default";
constexpr std::string_view kImdsRule = "aws.ec2.imdsv2-required";
constexpr std::string_view kPortsRule = "aws.ec2.agent-ports-not-public";
constexpr std::string_view kTrustRule = "aws.iam.trust-requires-external-id";

const PostureRuleInfo& Info(std::string_view id) {
  for (const auto& r : PostureRules()) {
    if (r.id == id) return r;
  }
  return PostureRules().front();  // unreachable: every id above is in the table
}

PostureFinding Make(std::string_view rule, const std::string& region, std::string resource,
                    PostureVerdict verdict, std::string message, TimeMs at) {
  const PostureRuleInfo& info = Info(rule);
  PostureFinding f;
  f.rule_id = std::string(info.id);
  f.title = std::string(info.title);
  f.region = region;
  f.resource = std::move(resource);
  f.verdict = verdict;
  f.message = std::move(message);
  f.api_call = std::string(info.api_call);
  f.observed_at = at;
  return f;
}

// The error of the first call of `api_prefix` in the region's errors, in words.
std::string ErrorFor(const RegionPostureFacts& r, std::string_view api_prefix) {
  for (const auto& e : r.errors) {
    if (e.api_call.rfind(api_prefix, 0) == 0) return e.ToString();
  }
  return "the facts could not be read";
}

bool IsOpenCidr(const std::string& cidr) { return cidr == "0.0.0.0/0" || cidr == "::/0"; }

bool CoversPort(const IngressRule& rule, int port) {
  if (rule.protocol == "-1") return true;  // every protocol, every port
  if (rule.protocol != "tcp" && rule.protocol != "6") return false;
  if (rule.from_port < 0 || rule.to_port < 0) return true;
  return rule.from_port <= port && port <= rule.to_port;
}

}  // namespace

std::string_view PostureVerdictName(PostureVerdict v) {
  switch (v) {
    case PostureVerdict::kPass:
      return "pass";
    case PostureVerdict::kFail:
      return "fail";
    case PostureVerdict::kUnknown:
      return "unknown";
  }
  return "unknown";
}

const std::vector<PostureRuleInfo>& PostureRules() {
  static const std::vector<PostureRuleInfo> kRules = {
      {kTrailRule, "CloudTrail logs every region used",
       "cloudtrail:DescribeTrails, cloudtrail:GetTrailStatus"},
      {kEbsRule, "EBS encryption by default is on", "ec2:GetEbsEncryptionByDefault"},
      {kImdsRule, "GPU instances require IMDSv2", "ec2:DescribeInstances"},
      {kPortsRule, "Agent ports are not open to the internet", "ec2:DescribeSecurityGroups"},
      {kTrustRule, "The vendor role's trust policy requires the external id", "iam:GetRole"},
  };
  return kRules;
}

std::vector<PostureFinding> EvaluatePosture(const AccountPostureFacts& facts,
                                            const PostureOptions& options) {
  std::vector<PostureFinding> out;
  const TimeMs at = facts.observed_at;

  // CloudTrail: a logging trail that is multi-region or homed in the region.
  for (const auto& r : facts.regions) {
    if (!r.trails) {
      out.push_back(
          Make(kTrailRule, r.region, "", PostureVerdict::kUnknown, ErrorFor(r, "cloudtrail:"), at));
      continue;
    }
    const TrailFact* covering = nullptr;
    bool status_unknown = false;
    for (const auto& t : *r.trails) {
      if (!t.multi_region && t.home_region != r.region) continue;
      if (!t.logging) {
        status_unknown = true;
        continue;
      }
      if (*t.logging) {
        covering = &t;
        break;
      }
    }
    if (covering) {
      out.push_back(Make(kTrailRule, r.region, covering->arn, PostureVerdict::kPass,
                         "trail " + covering->name + " is logging" +
                             (covering->multi_region ? " (multi-region)" : ""),
                         at));
    } else if (status_unknown) {
      out.push_back(Make(kTrailRule, r.region, "", PostureVerdict::kUnknown,
                         "a trail covers the region but its status could not be read: " +
                             ErrorFor(r, "cloudtrail:GetTrailStatus"),
                         at));
    } else {
      out.push_back(Make(kTrailRule, r.region, "", PostureVerdict::kFail,
                         r.trails->empty() ? "no trail covers the region"
                                           : "no trail covering the region is logging",
                         at));
    }
  }

  for (const auto& r : facts.regions) {
    if (!r.ebs_encryption_by_default) {
      out.push_back(Make(kEbsRule, r.region, "", PostureVerdict::kUnknown,
                         ErrorFor(r, "ec2:GetEbsEncryptionByDefault"), at));
    } else {
      out.push_back(
          Make(kEbsRule, r.region, "",
               *r.ebs_encryption_by_default ? PostureVerdict::kPass : PostureVerdict::kFail,
               *r.ebs_encryption_by_default ? "new EBS volumes are encrypted by default"
                                            : "new EBS volumes are not encrypted unless asked for",
               at));
    }
  }

  for (const auto& r : facts.regions) {
    if (!r.gpu_instances) {
      out.push_back(Make(kImdsRule, r.region, "", PostureVerdict::kUnknown,
                         ErrorFor(r, "ec2:DescribeInstances"), at));
      continue;
    }
    int checked = 0, failed = 0;
    for (const auto& inst : *r.gpu_instances) {
      if (inst.state == "terminated" || inst.state == "shutting-down") continue;
      ++checked;
      if (inst.http_tokens != "required") {
        ++failed;
        out.push_back(Make(kImdsRule, r.region, inst.instance_id, PostureVerdict::kFail,
                           inst.instance_type + " allows IMDSv1 (HttpTokens=" +
                               (inst.http_tokens.empty() ? "unknown" : inst.http_tokens) + ")",
                           at));
      }
    }
    if (failed == 0) {
      out.push_back(Make(kImdsRule, r.region, "", PostureVerdict::kPass,
                         checked == 0
                             ? "no GPU instances in the region"
                             : std::to_string(checked) + " GPU instance(s), all require IMDSv2",
                         at));
    }
  }

  for (const auto& r : facts.regions) {
    if (!r.security_groups) {
      out.push_back(Make(kPortsRule, r.region, "", PostureVerdict::kUnknown,
                         ErrorFor(r, "ec2:DescribeSecurityGroups"), at));
      continue;
    }
    int failed = 0;
    for (const auto& sg : *r.security_groups) {
      std::vector<int> open;
      for (const auto& rule : sg.ingress) {
        if (!std::any_of(rule.cidrs.begin(), rule.cidrs.end(), IsOpenCidr)) continue;
        for (int port : options.agent_ports) {
          if (CoversPort(rule, port) && std::find(open.begin(), open.end(), port) == open.end()) {
            open.push_back(port);
          }
        }
      }
      if (!open.empty()) {
        ++failed;
        std::string ports;
        for (int p : open) ports += (ports.empty() ? "" : ", ") + std::to_string(p);
        out.push_back(Make(kPortsRule, r.region, sg.id, PostureVerdict::kFail,
                           "security group " + sg.id +
                               (sg.name.empty() ? "" : " (" + sg.name + ")") +
                               " admits the internet to port(s) " + ports,
                           at));
      }
    }
    if (failed == 0) {
      out.push_back(Make(kPortsRule, r.region, "", PostureVerdict::kPass,
                         r.security_groups->empty()
                             ? "no security groups on GPU instances"
                             : std::to_string(r.security_groups->size()) +
                                   " security group(s) of GPU instances checked",
                         at));
    }
  }

  if (!facts.role.trust_policy_json) {
    std::string why = "the trust policy could not be read";
    for (const auto& e : facts.role.errors) {
      if (e.api_call == "iam:GetRole") why = e.ToString();
    }
    out.push_back(Make(kTrustRule, "", facts.role.role_arn, PostureVerdict::kUnknown, why, at));
  } else {
    auto trust = ParsePolicyDocument(*facts.role.trust_policy_json, "trust policy");
    if (!trust.ok()) {
      out.push_back(Make(kTrustRule, "", facts.role.role_arn, PostureVerdict::kUnknown,
                         trust.status().message(), at));
    } else {
      TrustCheck c = CheckTrustRequiresExternalId(*trust, facts.external_id);
      out.push_back(Make(kTrustRule, "", facts.role.role_arn,
                         c.requires_external_id ? PostureVerdict::kPass : PostureVerdict::kFail,
                         c.detail, at));
    }
  }
  return out;
}

}  // namespace sextant::console::cloud
