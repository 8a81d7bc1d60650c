#include "app/console/compliance/pack.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

namespace sextant::console {
namespace {

constexpr console::TimeMs kNow = 1767225600000;  // 2026-01-01T00:00:00Z
constexpr int64_t kDay = 86'400'000;

const char* kPack = R"yaml(
pack: test-pack
title: Every check once
version: "1"
standard: TEST
max_evidence_age: 1h
rules:
  - id: R-REGION
    title: EU region
    check: region_in
    severity: critical
    params: {allowed: [eu-west-1, europe-west4]}
  - id: R-TLS
    title: mTLS and TLS 1.2
    check: tls
    severity: high
    params: {min_version: "1.2"}
  - id: R-CERT
    title: Certificates valid
    check: cert_validity
    severity: medium
    params: {min_days: "7", warn_days: "30"}
  - id: R-ENC
    title: Encryption at rest
    check: encryption_at_rest
    severity: high
    params: {stores: [model_store, state_dir]}
  - id: R-EGRESS
    title: Egress declared
    check: egress_declared
    severity: high
  - id: R-VENDOR
    title: Vendor scope
    check: vendor_scope
    severity: critical
    params:
      role: vendor-operator
      baseline: [GetAgentInfo, WatchMetrics, ApplyDeployment]
      payload_rpcs: [Generate]
  - id: R-AUDIT
    title: Audit chain
    check: audit_chain
    severity: high
    params: {max_head_age: 15m}
  - id: R-DIGEST
    title: Digests
    check: deployment_digests
    severity: high
)yaml";

using FactMap = std::map<std::string, std::string>;

FactMap GoodFacts() {
  return {{"cloud.region", "eu-west-1"},
          {"tls.mtls_enforced", "true"},
          {"tls.min_version", "TLS1.2"},
          {"tls.cert_not_after.server", std::to_string((kNow + 90 * kDay) / 1000)},
          {"storage.model_store.encrypted", "true"},
          {"storage.state_dir.encrypted", "true"},
          {"egress.policy_declared", "true"},
          {"egress.payload_bytes_to_vendor", "0"},
          {"vendor.role", "vendor-operator"},
          {"vendor.rpcs", "ApplyDeployment,GetAgentInfo,WatchMetrics"},
          {"audit.chain_verified", "true"},
          {"audit.head_time", "2025-12-31T23:55:00Z"},
          {"deployment.chat.spec_digest", "sha256:spec1"},
          {"deployment.chat.model_sha256", "m1"},
          {"deployment.chat.engine_build_id", "0.1.0+abc"}};
}

std::vector<ValidationRecord> Reports() { return {{"sha256:spec1", "m1", "0.1.0+abc", true}}; }

PolicyPack Pack() {
  auto p = ParsePack(kPack, "test.yaml");
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return *p;
}

// The verdict of one rule on one target with the given facts.
Finding Judge(const std::string& rule, const FactMap& facts,
              console::TimeMs observed = kNow - 60'000,
              std::vector<ValidationRecord> reports = Reports()) {
  EvaluationInput in;
  in.targets = {"t1"};
  in.now = kNow;
  in.reports = std::move(reports);
  for (const auto& [k, v] : facts) in.facts.push_back({"t1", k, v, observed});
  for (auto& f : Evaluate(Pack(), in)) {
    if (f.rule_id == rule) return f;
  }
  ADD_FAILURE() << "no finding for " << rule;
  return {};
}

TEST(Compliance, EveryRulePassesOnGoodFacts) {
  for (const auto& rule : Pack().rules) {
    Finding f = Judge(rule.id, GoodFacts());
    EXPECT_EQ(f.verdict, Verdict::kPass) << rule.id << ": " << f.message;
    EXPECT_FALSE(f.evidence.empty()) << rule.id;
    EXPECT_EQ(f.evidence_age_ms, 60'000) << rule.id;
  }
}

struct Breach {
  std::string rule;
  std::string key;
  std::string value;  // "" removes the fact
  Verdict expect;
  std::string message;
};

TEST(Compliance, EveryRuleFailsOnPurposeMadeFacts) {
  const std::vector<Breach> breaches = {
      {"R-REGION", "cloud.region", "us-east-1", Verdict::kFail, "outside the allowed set"},
      {"R-REGION", "cloud.region", "", Verdict::kUnknown, "no fact cloud.region"},
      {"R-TLS", "tls.mtls_enforced", "false", Verdict::kFail, "not enforced"},
      {"R-TLS", "tls.min_version", "TLS1.1", Verdict::kFail, "below 1.2"},
      {"R-CERT", "tls.cert_not_after.server", std::to_string((kNow + 3 * kDay) / 1000),
       Verdict::kFail, "expires in 3.0 days"},
      {"R-CERT", "tls.cert_not_after.server", "2026-01-20T00:00:00Z", Verdict::kWarn,
       "expires in 19.0 days"},
      {"R-ENC", "storage.state_dir.encrypted", "false", Verdict::kFail, "state_dir"},
      {"R-ENC", "storage.model_store.encrypted", "", Verdict::kUnknown, "no fact"},
      {"R-EGRESS", "egress.policy_declared", "false", Verdict::kFail, "no egress policy"},
      {"R-EGRESS", "egress.payload_bytes_to_vendor", "512", Verdict::kFail, "payload bytes"},
      {"R-VENDOR", "vendor.rpcs", "ApplyDeployment,GetAgentInfo,WatchMetrics,ListAuditLog",
       Verdict::kFail, "exceeds the baseline: ListAuditLog"},
      {"R-VENDOR", "vendor.rpcs", "ApplyDeployment,GetAgentInfo,WatchMetrics,Generate",
       Verdict::kFail, "payload RPCs: Generate"},
      {"R-VENDOR", "vendor.rpcs", "GetAgentInfo", Verdict::kWarn, "lacks baseline RPCs"},
      {"R-VENDOR", "vendor.role", "customer-admin", Verdict::kFail, "role customer-admin"},
      {"R-AUDIT", "audit.chain_verified", "false", Verdict::kFail, "does not verify"},
      {"R-AUDIT", "audit.head_time", "2025-12-31T20:00:00Z", Verdict::kWarn, "240 min old"},
      {"R-DIGEST", "deployment.chat.model_sha256", "m2", Verdict::kFail,
       "model m2 != validated m1"},
      {"R-DIGEST", "deployment.chat.engine_build_id", "0.2.0", Verdict::kFail,
       "engine 0.2.0 != validated 0.1.0+abc"},
      {"R-DIGEST", "deployment.chat.spec_digest", "sha256:other", Verdict::kFail,
       "no passing validation report"},
  };
  for (const auto& b : breaches) {
    FactMap facts = GoodFacts();
    if (b.value.empty()) {
      facts.erase(b.key);
    } else {
      facts[b.key] = b.value;
    }
    Finding f = Judge(b.rule, facts);
    EXPECT_EQ(f.verdict, b.expect)
        << b.rule << " with " << b.key << "=" << b.value << ": " << f.message;
    EXPECT_NE(f.message.find(b.message), std::string::npos)
        << b.rule << ": '" << f.message << "' lacks '" << b.message << "'";
  }
}

// A fact the agent reports as "unknown" (it could not measure it) never lets a rule pass: the
// rule is unknown, whatever else holds; a known fact that fails still fails it.
TEST(Compliance, ARuleOnAnUnknownFactIsUnknownNotPass) {
  struct Case {
    std::string rule, key;
  };
  for (const Case& c : std::vector<Case>{{"R-ENC", "storage.model_store.encrypted"},
                                         {"R-ENC", "storage.state_dir.encrypted"},
                                         {"R-TLS", "tls.mtls_enforced"},
                                         {"R-TLS", "tls.min_version"},
                                         {"R-EGRESS", "egress.payload_bytes_to_vendor"}}) {
    FactMap facts = GoodFacts();
    facts[c.key] = "unknown";
    Finding f = Judge(c.rule, facts);
    EXPECT_EQ(f.verdict, Verdict::kUnknown) << c.rule << " " << c.key << ": " << f.message;
    EXPECT_NE(f.message.find(c.key), std::string::npos) << f.message;
  }
  FactMap facts = GoodFacts();
  facts["tls.min_version"] = "unknown";
  facts["tls.mtls_enforced"] = "false";
  EXPECT_EQ(Judge("R-TLS", facts).verdict, Verdict::kFail);
}

TEST(Compliance, FailedValidationReportDoesNotCount) {
  Finding f =
      Judge("R-DIGEST", GoodFacts(), kNow - 1000, {{"sha256:spec1", "m1", "0.1.0+abc", false}});
  EXPECT_EQ(f.verdict, Verdict::kFail);
}

// Agents report "sha256:<hex>"; the console's report store keeps the bare hex digest.
TEST(Compliance, ReportDigestsMatchWithOrWithoutTheirPrefix) {
  Finding f = Judge("R-DIGEST", GoodFacts(), kNow - 1000, {{"spec1", "m1", "0.1.0+abc", true}});
  EXPECT_EQ(f.verdict, Verdict::kPass) << f.message;
  f = Judge("R-DIGEST", GoodFacts(), kNow - 1000, {{"spec2", "m1", "0.1.0+abc", true}});
  EXPECT_EQ(f.verdict, Verdict::kFail);
}

TEST(Compliance, OldEvidenceTurnsAPassIntoAWarning) {
  Finding f = Judge("R-REGION", GoodFacts(), kNow - 2 * 3'600'000);
  EXPECT_EQ(f.verdict, Verdict::kWarn);
  EXPECT_EQ(f.evidence_age_ms, 2 * 3'600'000);
  EXPECT_NE(f.message.find("120 min old"), std::string::npos) << f.message;
}

TEST(Compliance, MalformedPacksNameLineAndColumn) {
  struct Case {
    std::string yaml;
    std::string expect;
  };
  const std::string head = "pack: p\nstandard: S\nrules:\n";
  for (const Case& c : {
           Case{head + "  - id: A\n    title: t\n    check: nosuch\n",
                "p.yaml:6:12: rule A: unknown check 'nosuch'"},
           Case{head + "  - id: A\n    title: t\n    check: region_in\n    params: {allowed: []}\n",
                "p.yaml:7:23: allowed must be a non-empty list"},
           Case{head + "  - id: A\n    title: t\n    check: tls\n    params: {min_version: "
                       "\"1.2\", x: 1}\n",
                "no parameter 'x'"},
           Case{head + "  - id: A\n    title: t\n    check: tls\n    severity: huge\n",
                "p.yaml:7:15: severity 'huge'"},
           Case{head + "  - id: A\n    titel: t\n", "p.yaml:5:5: unknown rule key 'titel'"},
           Case{"pack: p\nstandard: S\nrulez: []\n", "p.yaml:3:1: unknown key 'rulez'"},
           Case{"pack: p\nrules: [\n", "p.yaml:"},
           Case{head + "  - id: A\n    title: t\n    check: audit_chain\n    params: "
                       "{max_head_age: 5x}\n",
                "p.yaml:7:28: duration '5x'"},
       }) {
    auto p = ParsePack(c.yaml, "p.yaml");
    ASSERT_FALSE(p.ok()) << c.yaml;
    EXPECT_NE(p.status().message().find(c.expect), std::string::npos)
        << p.status().message() << " / wanted " << c.expect;
  }
}

TEST(Compliance, ShippedPacksLoad) {
  auto packs = LoadPacks(std::filesystem::path(SEXTANT_SOURCE_DIR) / "resources/policies");
  ASSERT_TRUE(packs.ok()) << packs.status().ToString();
  std::set<std::string> names;
  for (const auto& p : *packs) names.insert(p.name);
  for (const char* n : {"eu-data-residency", "soc2-baseline", "hipaa-baseline"}) {
    EXPECT_TRUE(names.count(n)) << n;
  }
}

TEST(Compliance, TimeFacts) {
  EXPECT_EQ(*ParseTimeFact("2026-01-01T00:00:00Z"), kNow);
  // The fraction is kept to the millisecond (engine/base/time.h), and "+00:00" is UTC too.
  EXPECT_EQ(*ParseTimeFact("2026-01-01T00:00:00.250Z"), kNow + 250);
  EXPECT_EQ(*ParseTimeFact("2026-01-01T00:00:00+00:00"), kNow);
  EXPECT_EQ(*ParseTimeFact("1767225600"), kNow);
  EXPECT_FALSE(ParseTimeFact("2026-01-01T00:00:00+02:00").ok());
  EXPECT_FALSE(ParseTimeFact("yesterday").ok());
  EXPECT_FALSE(ParseTimeFact("2026-01-01T00:00:00").ok());  // no zone: not a UTC time
}

}  // namespace
}  // namespace sextant::console
