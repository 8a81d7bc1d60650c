// The SARIF and OCSF documents are checked against the shapes their specifications publish:
// SARIF 2.1.0 (OASIS Standard, sarif-schema-2.1.0.json) and the OCSF 1.1.0 Compliance Finding
// class (class_uid 2003, category Findings). The checks below encode the required properties,
// their types and enumerations from those documents.
#include "app/console/compliance/report_formats.h"

#include <gtest/gtest.h>

#include <set>

namespace sextant::console {
namespace {

using nlohmann::json;

constexpr console::TimeMs kNow = 1767225600000;

std::vector<PolicyPack> Packs() {
  auto p = ParsePack(R"yaml(
pack: p1
standard: SOC 2
rules:
  - id: A
    title: Region
    check: region_in
    severity: high
    controls: [CC6.1]
    params: {allowed: [eu-west-1]}
    remediation: Move it.
  - id: B
    title: TLS
    check: tls
    severity: low
    params: {min_version: "1.2"}
)yaml",
                     "p1.yaml");
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return {*p};
}

std::vector<Finding> Findings() {
  EvaluationInput in;
  in.targets = {"eu", "us", "blank"};
  in.now = kNow;
  in.facts = {{"eu", "cloud.region", "eu-west-1", kNow - 5000},
              {"us", "cloud.region", "us-east-1", kNow - 5000},
              {"eu", "tls.mtls_enforced", "true", kNow},
              {"eu", "tls.min_version", "1.1", kNow},
              {"us", "tls.mtls_enforced", "true", kNow},
              {"us", "tls.min_version", "1.3", kNow}};
  return Evaluate(Packs()[0], in);
}

void ExpectMessage(const json& m) {
  ASSERT_TRUE(m.is_object());
  ASSERT_TRUE(m.contains("text") || m.contains("id"));
  if (m.contains("text")) {
    EXPECT_TRUE(m["text"].is_string());
  }
}

TEST(Sarif, FollowsTheSarif210Shape) {
  const auto findings = Findings();
  json log = FindingsToSarif(Packs(), findings, "0.1.0", kNow);
  // sarifLog: required version (const "2.1.0") and runs (array); $schema a URI string.
  ASSERT_TRUE(log.is_object());
  EXPECT_EQ(log.at("version"), "2.1.0");
  EXPECT_TRUE(log.at("$schema").is_string());
  ASSERT_TRUE(log.at("runs").is_array());
  ASSERT_EQ(log["runs"].size(), 1u);
  const json& run = log["runs"][0];
  // run: required tool; tool: required driver; toolComponent: required name.
  const json& driver = run.at("tool").at("driver");
  EXPECT_TRUE(driver.at("name").is_string());
  EXPECT_TRUE(driver.at("version").is_string());
  const json& rules = driver.at("rules");
  ASSERT_TRUE(rules.is_array());
  ASSERT_EQ(rules.size(), 2u);
  std::set<std::string> ids;
  for (const auto& r : rules) {
    // reportingDescriptor: required id; shortDescription is a multiformatMessageString (text).
    ASSERT_TRUE(r.at("id").is_string());
    EXPECT_TRUE(ids.insert(r["id"].get<std::string>()).second) << "rule ids are unique";
    EXPECT_TRUE(r.at("shortDescription").at("text").is_string());
    const std::string lvl = r.at("defaultConfiguration").at("level");
    EXPECT_TRUE(lvl == "none" || lvl == "note" || lvl == "warning" || lvl == "error");
    EXPECT_TRUE(r.at("properties").is_object());
  }
  // invocation: required executionSuccessful (boolean).
  for (const auto& inv : run.at("invocations")) {
    EXPECT_TRUE(inv.at("executionSuccessful").is_boolean());
  }
  const json& results = run.at("results");
  ASSERT_EQ(results.size(), findings.size());
  const std::set<std::string> kinds = {"notApplicable", "pass", "fail",
                                       "review",        "open", "informational"};
  const std::set<std::string> levels = {"none", "note", "warning", "error"};
  std::map<std::string, int> by_kind;
  for (const auto& r : results) {
    // result: required message; ruleId string; ruleIndex integer >= -1 pointing at that rule.
    ExpectMessage(r.at("message"));
    ASSERT_TRUE(r.at("ruleId").is_string());
    ASSERT_TRUE(r.at("ruleIndex").is_number_integer());
    const int idx = r["ruleIndex"];
    ASSERT_GE(idx, 0);
    ASSERT_LT(idx, static_cast<int>(rules.size()));
    EXPECT_EQ(rules[idx]["id"], r["ruleId"]);
    const std::string kind = r.at("kind");
    const std::string level = r.at("level");
    EXPECT_TRUE(kinds.count(kind)) << kind;
    EXPECT_TRUE(levels.count(level)) << level;
    // 3.27.10: when kind is not "fail", level must be "none".
    if (kind != "fail") {
      EXPECT_EQ(level, "none") << r.dump();
    }
    by_kind[kind]++;
    for (const auto& loc : r.at("locations")) {
      for (const auto& ll : loc.at("logicalLocations")) {
        EXPECT_TRUE(ll.at("name").is_string());
        EXPECT_TRUE(ll.at("kind").is_string());
      }
    }
    EXPECT_TRUE(r.at("properties").is_object());
  }
  // eu: region pass, TLS fail; us: region fail, TLS pass; blank: unknown twice (open).
  EXPECT_EQ(by_kind["pass"], 2);
  EXPECT_EQ(by_kind["fail"], 2);
  EXPECT_EQ(by_kind["open"], 2);
  // A failed high-severity rule is an error, a failed low one a note.
  for (const auto& r : results) {
    if (r["kind"] == "fail" && r["ruleId"] == "p1/A") {
      EXPECT_EQ(r["level"], "error");
    }
    if (r["kind"] == "fail" && r["ruleId"] == "p1/B") {
      EXPECT_EQ(r["level"], "note");
    }
  }
}

TEST(Ocsf, FollowsTheComplianceFindingClass) {
  const auto findings = Findings();
  json events = FindingsToOcsf(findings, "0.1.0", kNow);
  ASSERT_TRUE(events.is_array());
  ASSERT_EQ(events.size(), findings.size());
  const std::set<int> severity_ids = {0, 1, 2, 3, 4, 5, 6, 99};
  const std::set<int> compliance_status_ids = {0, 1, 2, 3, 99};
  std::map<int, int> statuses;
  for (const auto& e : events) {
    // Required attributes of Compliance Finding [2003] in category Findings [2].
    for (const char* k : {"activity_id", "category_uid", "class_uid", "type_uid", "severity_id",
                          "time", "metadata", "finding_info", "compliance"}) {
      ASSERT_TRUE(e.contains(k)) << k << " missing in " << e.dump();
    }
    EXPECT_EQ(e["class_uid"], 2003);
    EXPECT_EQ(e["category_uid"], 2);
    ASSERT_TRUE(e["activity_id"].is_number_integer());
    const int activity = e["activity_id"];
    EXPECT_TRUE(activity == 0 || activity == 1 || activity == 2 || activity == 3 || activity == 99);
    EXPECT_EQ(e["type_uid"].get<int>(), 2003 * 100 + activity);
    EXPECT_TRUE(severity_ids.count(e["severity_id"].get<int>()));
    EXPECT_TRUE(e["time"].is_number_integer());
    EXPECT_EQ(e["time"], kNow);
    // metadata: required product and version; product names its vendor.
    EXPECT_TRUE(e["metadata"].at("version").is_string());
    EXPECT_EQ(e["metadata"]["version"].get<std::string>().substr(0, 2), "1.");
    EXPECT_TRUE(e["metadata"].at("product").at("vendor_name").is_string());
    EXPECT_TRUE(e["metadata"]["product"].at("name").is_string());
    // finding_info: required uid (unique per finding) and title.
    EXPECT_TRUE(e["finding_info"].at("uid").is_string());
    EXPECT_TRUE(e["finding_info"].at("title").is_string());
    // compliance: required standards (string array); status_id from the enumeration.
    const json& c = e["compliance"];
    ASSERT_TRUE(c.at("standards").is_array());
    ASSERT_FALSE(c["standards"].empty());
    for (const auto& s : c["standards"]) EXPECT_TRUE(s.is_string());
    ASSERT_TRUE(c.at("status_id").is_number_integer());
    EXPECT_TRUE(compliance_status_ids.count(c["status_id"].get<int>()));
    statuses[c["status_id"]]++;
    for (const auto& r : e.at("resources")) EXPECT_TRUE(r.at("uid").is_string());
  }
  EXPECT_EQ(statuses[1], 2);  // pass
  EXPECT_EQ(statuses[3], 2);  // fail
  EXPECT_EQ(statuses[0], 2);  // unknown
  std::set<std::string> uids;
  for (const auto& e : events) uids.insert(e["finding_info"]["uid"].get<std::string>());
  EXPECT_EQ(uids.size(), events.size());
}

TEST(FindingsJson, CarriesEvidenceAndItsAge) {
  json arr = FindingsToJson(Findings());
  ASSERT_EQ(arr.size(), 6u);
  EXPECT_EQ(arr[0]["target"], "eu");
  EXPECT_EQ(arr[0]["verdict"], "pass");
  EXPECT_EQ(arr[0]["evidence"][0]["fact"], "cloud.region");
  EXPECT_EQ(arr[0]["evidence_age_s"], 5);
  EXPECT_TRUE(arr[4]["evidence_age_s"].is_null());  // "blank" reported nothing
}

}  // namespace
}  // namespace sextant::console
