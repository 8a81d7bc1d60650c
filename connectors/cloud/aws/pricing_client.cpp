#include "connectors/cloud/aws/pricing_client.h"
#include "connectors/cloud/json_fields.h"

#include <cstdlib>

#include "connectors/cloud/aws/xml_reader.h"
#include "connectors/cloud/time_format.h"

namespace sextant::cloud::aws {

Result<double> ParseOnDemandPrice(std::string_view entry, std::string* effective_date) {
  nlohmann::json j = nlohmann::json::parse(entry, nullptr, false);
  if (!j.is_object()) return Status::InvalidArgument("price list entry: not a JSON object");
  auto terms = j.find("terms");
  if (terms == j.end() || !terms->is_object()) {
    return Status::InvalidArgument("price list entry: no terms");
  }
  auto od = terms->find("OnDemand");
  if (od == terms->end() || !od->is_object() || od->empty()) {
    return Status::NotFound("price list entry: no OnDemand term");
  }
  for (const auto& [term_id, term] : od->items()) {
    if (!term.is_object()) continue;
    auto dims = term.find("priceDimensions");
    if (dims == term.end() || !dims->is_object()) continue;
    for (const auto& [dim_id, dim] : dims->items()) {
      if (JsonString(dim, "unit") != "Hrs") continue;
      auto ppu = dim.find("pricePerUnit");
      if (ppu == dim.end() || !ppu->is_object()) continue;
      auto usd = ppu->find("USD");
      if (usd == ppu->end() || !usd->is_string()) continue;
      const std::string s = usd->get<std::string>();
      char* end = nullptr;
      const double v = std::strtod(s.c_str(), &end);
      if (end == s.c_str() || *end != '\0' || v < 0) {
        return Status::InvalidArgument("price list entry: term " + term_id +
                                       " has a USD price that is not a number: \"" + s + "\"");
      }
      if (effective_date) *effective_date = JsonString(term, "effectiveDate");
      return v;
    }
  }
  return Status::NotFound("price list entry: no hourly USD price dimension");
}

CallResult<std::optional<console::cloud::DatedPrice>> GetOnDemandPrice(
    AwsClient& client, const std::string& region, const std::string& instance_type) {
  const ServiceCall call{"pricing", "us-east-1", "GetProducts"};
  auto term = [](const char* field, const std::string& value) {
    return nlohmann::json{{"Type", "TERM_MATCH"}, {"Field", field}, {"Value", value}};
  };
  nlohmann::json body = {
      {"ServiceCode", "AmazonEC2"},
      {"FormatVersion", "aws_v1"},
      {"MaxResults", 10},
      {"Filters",
       {term("instanceType", instance_type), term("regionCode", region),
        term("operatingSystem", "Linux"), term("tenancy", "Shared"), term("preInstalledSw", "NA"),
        term("capacitystatus", "Used")}},
  };
  auto j = client.Json(call, "AWSPriceListService", body);
  if (!j.ok()) return j.error();
  auto list = j->find("PriceList");
  if (list == j->end() || !list->is_array()) return Malformed(call, "no PriceList");
  for (const auto& entry : *list) {
    if (!entry.is_string()) return Malformed(call, "a PriceList entry is not a string");
    std::string effective;
    auto price = ParseOnDemandPrice(entry.get<std::string>(), &effective);
    if (price.status().code() == StatusCode::kNotFound) continue;
    if (!price.ok()) return Malformed(call, price.status().message());
    console::cloud::DatedPrice p;
    p.usd_per_hour = *price;
    p.source = call.api_call();
    p.as_of = effective;
    p.observed_at = ToUnixMs(client.Now());
    return std::optional<console::cloud::DatedPrice>(p);
  }
  return std::optional<console::cloud::DatedPrice>();
}

}  // namespace sextant::cloud::aws
