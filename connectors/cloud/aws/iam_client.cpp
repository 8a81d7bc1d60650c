#include "connectors/cloud/aws/iam_client.h"

#include "connectors/cloud/aws/xml_reader.h"

namespace sextant::cloud::aws {

namespace {

constexpr std::string_view kVersion = "2010-05-08";

ServiceCall Iam(const char* action) { return {"iam", "us-east-1", action}; }

CallResult<XmlDoc> Call(AwsClient& client, const ServiceCall& call, const KeyValues& params) {
  auto body = client.Query(call, kVersion, params);
  if (!body.ok()) return body.error();
  return ParseXml(call, *body);
}

}  // namespace

std::string RoleNameFromArn(std::string_view arn) {
  const size_t role = arn.find(":role/");
  if (arn.rfind("arn:", 0) != 0 || role == std::string_view::npos) return "";
  const size_t slash = arn.rfind('/');
  return std::string(arn.substr(slash + 1));
}

std::string AccountFromArn(std::string_view arn) {
  // arn:partition:service:region:account:resource
  if (arn.rfind("arn:", 0) != 0) return "";
  size_t pos = 0;
  for (int i = 0; i < 4; ++i) {
    pos = arn.find(':', pos);
    if (pos == std::string_view::npos) return "";
    ++pos;
  }
  const size_t end = arn.find(':', pos);
  if (end == std::string_view::npos) return "";
  return std::string(arn.substr(pos, end - pos));
}

CallResult<RoleInfo> IamGetRole(AwsClient& client, const std::string& role_name) {
  const ServiceCall call = Iam("GetRole");
  auto doc = Call(client, call, {{"RoleName", role_name}});
  if (!doc.ok()) return doc.error();
  pugi::xml_node role = (*doc)->document_element().first_element_by_path("GetRoleResult/Role");
  RoleInfo r;
  r.name = XmlText(role, "RoleName");
  r.arn = XmlText(role, "Arn");
  r.trust_policy_json = DecodePolicyDocument(XmlText(role, "AssumeRolePolicyDocument"));
  if (r.arn.empty()) return Malformed(call, "GetRoleResult has no Role/Arn");
  return r;
}

CallResult<std::vector<console::cloud::NamedPolicy>> IamRolePolicies(
    AwsClient& client, const std::string& role_name, std::vector<CallError>* errors) {
  std::vector<console::cloud::NamedPolicy> out;
  // Attached managed policies.
  std::string marker;
  for (int page = 0; page < 100; ++page) {
    KeyValues params = {{"RoleName", role_name}};
    if (!marker.empty()) params.emplace_back("Marker", marker);
    const ServiceCall call = Iam("ListAttachedRolePolicies");
    auto doc = Call(client, call, params);
    if (!doc.ok()) return doc.error();
    pugi::xml_node result = (*doc)->document_element().child("ListAttachedRolePoliciesResult");
    for (pugi::xml_node m : result.child("AttachedPolicies").children("member")) {
      console::cloud::NamedPolicy p;
      p.name = XmlText(m, "PolicyName");
      p.arn = XmlText(m, "PolicyArn");
      const ServiceCall get_policy = Iam("GetPolicy");
      auto meta = Call(client, get_policy, {{"PolicyArn", p.arn}});
      if (!meta.ok()) {
        if (errors) errors->push_back(meta.error());
        continue;
      }
      const std::string version =
          XmlText((*meta)->document_element(), "GetPolicyResult/Policy/DefaultVersionId");
      const ServiceCall get_version = Iam("GetPolicyVersion");
      auto ver = Call(client, get_version, {{"PolicyArn", p.arn}, {"VersionId", version}});
      if (!ver.ok()) {
        if (errors) errors->push_back(ver.error());
        continue;
      }
      p.document_json = DecodePolicyDocument(
          XmlText((*ver)->document_element(), "GetPolicyVersionResult/PolicyVersion/Document"));
      out.push_back(std::move(p));
    }
    if (XmlText(result, "IsTruncated") != "true") break;
    marker = XmlText(result, "Marker");
    if (marker.empty()) break;
  }
  // Inline policies.
  marker.clear();
  for (int page = 0; page < 100; ++page) {
    KeyValues params = {{"RoleName", role_name}};
    if (!marker.empty()) params.emplace_back("Marker", marker);
    const ServiceCall call = Iam("ListRolePolicies");
    auto doc = Call(client, call, params);
    if (!doc.ok()) return doc.error();
    pugi::xml_node result = (*doc)->document_element().child("ListRolePoliciesResult");
    for (pugi::xml_node m : result.child("PolicyNames").children("member")) {
      console::cloud::NamedPolicy p;
      p.name = m.text().as_string();
      const ServiceCall get = Iam("GetRolePolicy");
      auto pol = Call(client, get, {{"RoleName", role_name}, {"PolicyName", p.name}});
      if (!pol.ok()) {
        if (errors) errors->push_back(pol.error());
        continue;
      }
      p.document_json = DecodePolicyDocument(
          XmlText((*pol)->document_element(), "GetRolePolicyResult/PolicyDocument"));
      out.push_back(std::move(p));
    }
    if (XmlText(result, "IsTruncated") != "true") break;
    marker = XmlText(result, "Marker");
    if (marker.empty()) break;
  }
  return out;
}

}  // namespace sextant::cloud::aws
