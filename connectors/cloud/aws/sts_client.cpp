#include "connectors/cloud/aws/sts_client.h"

#include "connectors/cloud/aws/xml_reader.h"
#include "connectors/cloud/time_format.h"

namespace sextant::cloud::aws {

namespace {
constexpr std::string_view kVersion = "2011-06-15";
}

CallResult<AssumedRole> StsAssumeRole(AwsClient& sts, const AssumeRoleOptions& options) {
  const ServiceCall call{"sts", options.sts_region, "AssumeRole"};
  KeyValues params = {{"RoleArn", options.role_arn},
                      {"RoleSessionName", options.session_name},
                      {"DurationSeconds", std::to_string(options.duration.count())}};
  if (!options.external_id.empty()) params.emplace_back("ExternalId", options.external_id);
  auto body = sts.Query(call, kVersion, params);
  if (!body.ok()) return body.error();
  auto doc = ParseXml(call, *body);
  if (!doc.ok()) return doc.error();
  pugi::xml_node result = (*doc)->document_element().child("AssumeRoleResult");
  AssumedRole out;
  out.credentials.access_key_id = XmlText(result, "Credentials/AccessKeyId");
  out.credentials.secret_access_key = XmlText(result, "Credentials/SecretAccessKey");
  out.credentials.session_token = XmlText(result, "Credentials/SessionToken");
  out.credentials.source = "role " + options.role_arn;
  out.assumed_role_arn = XmlText(result, "AssumedRoleUser/Arn");
  auto exp = ParseRfc3339(XmlText(result, "Credentials/Expiration"));
  if (out.credentials.Empty() || out.credentials.session_token.empty()) {
    return Malformed(call, "AssumeRoleResult has no complete Credentials");
  }
  if (!exp.ok()) return Malformed(call, "Credentials/Expiration: " + exp.status().message());
  out.credentials.expiration = *exp;
  return out;
}

CallResult<console::cloud::CallerIdentity> StsGetCallerIdentity(AwsClient& client,
                                                                const std::string& region) {
  const ServiceCall call{"sts", region, "GetCallerIdentity"};
  auto body = client.Query(call, kVersion, {});
  if (!body.ok()) return body.error();
  auto doc = ParseXml(call, *body);
  if (!doc.ok()) return doc.error();
  pugi::xml_node result = (*doc)->document_element().child("GetCallerIdentityResult");
  console::cloud::CallerIdentity id;
  id.account_id = XmlText(result, "Account");
  id.arn = XmlText(result, "Arn");
  id.user_id = XmlText(result, "UserId");
  if (id.account_id.empty() || id.arn.empty()) {
    return Malformed(call, "GetCallerIdentityResult has no Account or Arn");
  }
  return id;
}

}  // namespace sextant::cloud::aws
