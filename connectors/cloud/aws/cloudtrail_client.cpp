#include "connectors/cloud/aws/cloudtrail_client.h"
#include "connectors/cloud/json_fields.h"

#include "connectors/cloud/aws/xml_reader.h"

namespace sextant::cloud::aws {

namespace {
constexpr std::string_view kTarget = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101";
}

CallResult<std::vector<console::cloud::TrailFact>> DescribeTrailsWithStatus(
    AwsClient& client, const std::string& region, std::vector<CallError>* status_errors) {
  const ServiceCall call{"cloudtrail", region, "DescribeTrails"};
  auto j = client.Json(call, kTarget, {{"includeShadowTrails", true}});
  if (!j.ok()) return j.error();
  auto list = j->find("trailList");
  if (list == j->end() || !list->is_array()) return Malformed(call, "no trailList");
  std::vector<console::cloud::TrailFact> out;
  for (const auto& t : *list) {
    if (!t.is_object()) return Malformed(call, "a trailList entry is not an object");
    console::cloud::TrailFact f;
    f.name = JsonString(t, "Name");
    f.arn = JsonString(t, "TrailARN");
    f.home_region = JsonString(t, "HomeRegion");
    f.multi_region = JsonBool(t, "IsMultiRegionTrail");
    const ServiceCall status_call{"cloudtrail", region, "GetTrailStatus"};
    auto status = client.Json(status_call, kTarget, {{"Name", f.arn.empty() ? f.name : f.arn}});
    if (status.ok() && JsonField(*status, "IsLogging").is_boolean()) {
      f.logging = JsonBool(*status, "IsLogging");
    } else if (status_errors) {
      status_errors->push_back(status.ok() ? Malformed(status_call, "no IsLogging")
                                           : status.error());
    }
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace sextant::cloud::aws
