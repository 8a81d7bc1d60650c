#include "app/console/compliance/report_formats.h"

#include <ctime>
#include <map>

#include "engine/base/time.h"

namespace sextant::console {
namespace {

using nlohmann::json;

json EvidenceJson(const Finding& f) {
  json ev = json::array();
  for (const auto& e : f.evidence) {
    ev.push_back(
        {{"fact", e.key}, {"value", e.value}, {"observed_at", FormatRfc3339(e.observed_at)}});
  }
  return ev;
}

// SARIF level of a failing result by severity; any other kind has level "none" (SARIF 3.27.10).
std::string SarifLevel(const Finding& f) {
  if (f.verdict == Verdict::kWarn) return "warning";
  if (f.verdict != Verdict::kFail) return "none";
  switch (f.severity) {
    case Severity::kLow:
      return "note";
    case Severity::kMedium:
      return "warning";
    case Severity::kHigh:
    case Severity::kCritical:
      break;
  }
  return "error";
}

std::string SarifKind(Verdict v) {
  switch (v) {
    case Verdict::kPass:
      return "pass";
    case Verdict::kFail:
    case Verdict::kWarn:
      return "fail";
    case Verdict::kUnknown:
      break;
  }
  return "open";
}

std::string SarifDefaultLevel(Severity s) {
  switch (s) {
    case Severity::kLow:
      return "note";
    case Severity::kMedium:
      return "warning";
    case Severity::kHigh:
    case Severity::kCritical:
      break;
  }
  return "error";
}

// OCSF severity_id: 1 Informational, 2 Low, 3 Medium, 4 High, 5 Critical.
int OcsfSeverityId(Severity s) {
  switch (s) {
    case Severity::kLow:
      return 2;
    case Severity::kMedium:
      return 3;
    case Severity::kHigh:
      return 4;
    case Severity::kCritical:
      return 5;
  }
  return 0;
}
const char* OcsfSeverityName(int id) {
  static const char* kNames[] = {"Unknown", "Informational", "Low", "Medium", "High", "Critical"};
  return id >= 0 && id <= 5 ? kNames[id] : "Other";
}

// OCSF compliance.status_id: 0 Unknown, 1 Pass, 2 Warning, 3 Fail.
int OcsfComplianceStatusId(Verdict v) {
  switch (v) {
    case Verdict::kPass:
      return 1;
    case Verdict::kWarn:
      return 2;
    case Verdict::kFail:
      return 3;
    case Verdict::kUnknown:
      break;
  }
  return 0;
}

}  // namespace

json FindingsToJson(const std::vector<Finding>& findings) {
  json arr = json::array();
  for (const auto& f : findings) {
    arr.push_back(
        {{"pack", f.pack},
         {"standard", f.standard},
         {"rule", f.rule_id},
         {"title", f.rule_title},
         {"severity", std::string(SeverityName(f.severity))},
         {"target", f.target},
         {"verdict", std::string(VerdictName(f.verdict))},
         {"message", f.message},
         {"evidence", EvidenceJson(f)},
         {"evidence_age_s", f.evidence_age_ms < 0 ? json() : json(f.evidence_age_ms / 1000)}});
  }
  return arr;
}

json FindingsToSarif(const std::vector<PolicyPack>& packs, const std::vector<Finding>& findings,
                     const std::string& tool_version, console::TimeMs now) {
  json rules = json::array();
  std::map<std::string, int> index;  // "pack/rule" -> position in rules
  for (const auto& p : packs) {
    for (const auto& r : p.rules) {
      const std::string id = p.name + "/" + r.id;
      index[id] = static_cast<int>(rules.size());
      json rule = {{"id", id},
                   {"name", r.id},
                   {"shortDescription", {{"text", r.title}}},
                   {"defaultConfiguration", {{"level", SarifDefaultLevel(r.severity)}}},
                   {"properties",
                    {{"pack", p.name},
                     {"standard", p.standard},
                     {"check", r.check},
                     {"severity", std::string(SeverityName(r.severity))},
                     {"controls", r.controls}}}};
      if (!r.remediation.empty()) rule["help"] = {{"text", r.remediation}};
      rules.push_back(std::move(rule));
    }
  }
  json results = json::array();
  for (const auto& f : findings) {
    const std::string id = f.pack + "/" + f.rule_id;
    json res = {
        {"ruleId", id},
        {"kind", SarifKind(f.verdict)},
        {"level", SarifLevel(f)},
        {"message", {{"text", f.target + ": " + f.message}}},
        {"locations", json::array({{{"logicalLocations",
                                     json::array({{{"name", f.target},
                                                   {"fullyQualifiedName", "target/" + f.target},
                                                   {"kind", "resource"}}})}}})},
        {"properties",
         {{"verdict", std::string(VerdictName(f.verdict))},
          {"evidence", EvidenceJson(f)},
          {"evidenceAgeSeconds",
           f.evidence_age_ms < 0 ? json() : json(f.evidence_age_ms / 1000)}}}};
    auto it = index.find(id);
    if (it != index.end()) res["ruleIndex"] = it->second;
    results.push_back(std::move(res));
  }
  json run = {{"tool",
               {{"driver",
                 {{"name", "sextant"},
                  {"version", tool_version},
                  {"informationUri", "https://github.com/sextant"},
                  {"rules", rules}}}}},
              {"invocations",
               json::array({{{"executionSuccessful", true}, {"endTimeUtc", FormatRfc3339(now)}}})},
              {"results", results}};
  return {{"$schema", "https://json.schemastore.org/sarif-2.1.0.json"},
          {"version", "2.1.0"},
          {"runs", json::array({run})}};
}

json FindingsToOcsf(const std::vector<Finding>& findings, const std::string& product_version,
                    console::TimeMs now) {
  json events = json::array();
  for (const auto& f : findings) {
    const int sev = OcsfSeverityId(f.severity);
    const int status = OcsfComplianceStatusId(f.verdict);
    static const char* kStatus[] = {"Unknown", "Pass", "Warning", "Fail"};
    json compliance = {{"standards", json::array({f.standard})},
                       {"control", f.rule_id},
                       {"requirements", f.controls},
                       {"status_id", status},
                       {"status", kStatus[status]},
                       {"status_detail", f.message}};
    json event = {
        {"activity_id", 1},
        {"activity_name", "Create"},
        {"category_uid", 2},
        {"category_name", "Findings"},
        {"class_uid", 2003},
        {"class_name", "Compliance Finding"},
        {"type_uid", 200301},
        {"type_name", "Compliance Finding: Create"},
        {"severity_id", sev},
        {"severity", OcsfSeverityName(sev)},
        {"status_id", 1},
        {"status", "New"},
        {"time", now},
        {"message", f.target + ": " + f.rule_title + ": " + std::string(VerdictName(f.verdict))},
        {"metadata",
         {{"version", "1.1.0"},
          {"product",
           {{"name", "Sextant"}, {"vendor_name", "Sextant"}, {"version", product_version}}},
          {"profiles", json::array()}}},
        {"finding_info",
         {{"uid", f.pack + "/" + f.rule_id + "/" + f.target},
          {"title", f.rule_title},
          {"desc", f.message},
          {"types", json::array({f.pack})},
          {"created_time", now}}},
        {"compliance", compliance},
        {"resources",
         json::array({{{"uid", f.target}, {"name", f.target}, {"type", "Sextant Target"}}})},
        {"unmapped",
         {{"evidence", EvidenceJson(f)},
          {"evidence_age_s", f.evidence_age_ms < 0 ? json() : json(f.evidence_age_ms / 1000)}}}};
    events.push_back(std::move(event));
  }
  return events;
}

}  // namespace sextant::console
