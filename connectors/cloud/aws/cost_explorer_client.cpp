#include "connectors/cloud/aws/cost_explorer_client.h"
#include "connectors/cloud/json_fields.h"

#include <cstdlib>
#include <set>

#include "connectors/cloud/aws/xml_reader.h"
#include "connectors/cloud/time_format.h"

namespace sextant::cloud::aws {

namespace {

// "12.34" -> 12.34; the amounts are decimal strings.
bool ParseAmount(const nlohmann::json& m, double* amount, std::string* unit) {
  if (!m.is_object()) return false;
  auto a = m.find("Amount");
  if (a == m.end() || !a->is_string()) return false;
  const std::string s = a->get<std::string>();
  char* end = nullptr;
  *amount = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || *end != '\0') return false;
  *unit = JsonString(m, "Unit");
  return true;
}

}  // namespace

CallResult<console::cloud::BilledCost> GetCostAndUsage(AwsClient& client, const std::string& start,
                                                       const std::string& end,
                                                       const std::string& tag_key,
                                                       const std::string& metric) {
  const ServiceCall call{"ce", "us-east-1", "GetCostAndUsage"};
  console::cloud::BilledCost out;
  out.tag_key = tag_key;
  out.metric = metric;
  out.start = start;
  out.end = end;
  out.source = call.api_call();
  std::string token;
  std::set<std::string> seen;
  for (int page = 0; page < 100; ++page) {
    nlohmann::json body = {{"TimePeriod", {{"Start", start}, {"End", end}}},
                           {"Granularity", "DAILY"},
                           {"Metrics", {metric}},
                           {"GroupBy", {{{"Type", "TAG"}, {"Key", tag_key}}}}};
    if (!token.empty()) body["NextPageToken"] = token;
    auto j = client.Json(call, "AWSInsightsIndexService", body);
    if (!j.ok()) return j.error();
    auto results = j->find("ResultsByTime");
    if (results == j->end() || !results->is_array()) return Malformed(call, "no ResultsByTime");
    for (size_t i = 0; i < results->size(); ++i) {
      const auto& r = (*results)[i];
      const std::string where = "ResultsByTime[" + std::to_string(i) + "]";
      if (!r.is_object()) return Malformed(call, where + " is not an object");
      std::string day;
      if (auto tp = r.find("TimePeriod"); tp != r.end() && tp->is_object()) {
        day = JsonString(*tp, "Start");
      }
      if (day.size() != 10) return Malformed(call, where + ".TimePeriod.Start is not a date");
      const bool estimated = JsonBool(r, "Estimated");
      auto groups = r.find("Groups");
      if (groups == r.end() || !groups->is_array()) continue;
      for (const auto& g : *groups) {
        console::cloud::BilledCostLine line;
        line.day = day;
        line.estimated = estimated;
        if (auto keys = g.find("Keys");
            keys != g.end() && keys->is_array() && !keys->empty() && (*keys)[0].is_string()) {
          const std::string key = (*keys)[0].get<std::string>();
          const size_t dollar = key.find('$');
          line.tag_value = dollar == std::string::npos ? key : key.substr(dollar + 1);
        }
        auto metrics = g.find("Metrics");
        if (metrics == g.end() || !metrics->is_object() || !metrics->contains(metric) ||
            !ParseAmount((*metrics)[metric], &line.amount, &line.unit)) {
          return Malformed(call, where + ": a group without a numeric " + metric + ".Amount");
        }
        out.lines.push_back(std::move(line));
      }
    }
    token = JsonString(*j, "NextPageToken");
    if (token.empty()) break;
    if (!seen.insert(token).second) return Malformed(call, "the page token repeats");
  }
  out.observed_at = ToUnixMs(client.Now());
  return out;
}

}  // namespace sextant::cloud::aws
