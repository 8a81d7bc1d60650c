#include "connectors/cloud/aws/service_quotas_client.h"
#include "connectors/cloud/json_fields.h"

#include <cctype>

#include "connectors/cloud/aws/xml_reader.h"

namespace sextant::cloud::aws {

std::optional<Ec2QuotaCode> QuotaForInstanceType(std::string_view instance_type, bool spot) {
  // The family is the letters before the generation digit: "p5.48xlarge" -> "p",
  // "g6e.xlarge" -> "g", "vt1.3xlarge" -> "vt", "p6-b200.48xlarge" -> "p".
  size_t n = 0;
  while (n < instance_type.size() && std::isalpha(static_cast<unsigned char>(instance_type[n]))) {
    ++n;
  }
  const std::string_view family = instance_type.substr(0, n);
  if (family == "p") {
    return spot ? Ec2QuotaCode{"L-7212CCBC", "All P Spot Instance Requests"}
                : Ec2QuotaCode{"L-417A185B", "Running On-Demand P instances"};
  }
  if (family == "g" || family == "gr" || family == "vt") {
    return spot ? Ec2QuotaCode{"L-3819A6DF", "All G and VT Spot Instance Requests"}
                : Ec2QuotaCode{"L-DB2E81BA", "Running On-Demand G and VT instances"};
  }
  return std::nullopt;
}

CallResult<ServiceQuota> GetEc2ServiceQuota(AwsClient& client, const std::string& region,
                                            std::string_view quota_code) {
  const ServiceCall call{"servicequotas", region, "GetServiceQuota"};
  auto j = client.Json(call, "ServiceQuotasV20190624",
                       {{"ServiceCode", "ec2"}, {"QuotaCode", std::string(quota_code)}});
  if (!j.ok()) return j.error();
  auto q = j->find("Quota");
  if (q == j->end() || !q->is_object()) return Malformed(call, "no Quota object");
  auto v = q->find("Value");
  if (v == q->end() || !v->is_number()) return Malformed(call, "Quota.Value is not a number");
  ServiceQuota out;
  out.code = std::string(quota_code);
  out.name = JsonString(*q, "QuotaName");
  out.value = v->get<double>();
  return out;
}

}  // namespace sextant::cloud::aws
