// Compliance rules over the facts the agent reports about itself: its server certificate's
// expiry (tls.cert_expires_at), the model store's encryption (model_store.encrypted), what may
// leave (egress.policy) and the console keys it trusts (deploy.console_keys). Fact names and
// formats are the agent's (connectors/agent/agent_server.cpp, GetComplianceFacts). An absent
// fact is "unknown", never a pass.
#include <gtest/gtest.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <map>
#include <string>

#include "app/console/compliance/pack.h"

namespace sextant::console {
namespace {

constexpr console::TimeMs kNow = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
constexpr int64_t kDay = 86'400'000;

const char* kPack = R"yaml(
pack: agent-facts
title: Agent facts
version: "1"
standard: test
rules:
  - id: CERT
    title: Server certificate not expired
    check: cert_validity
    severity: high
    params: {min_days: "0", warn_days: "30"}
  - id: ENC
    title: Model store and state encrypted
    check: encryption_at_rest
    severity: high
    params: {stores: [model_store, state_dir]}
  - id: EGRESS
    title: Egress policy
    check: egress_declared
    severity: critical
    params: {allowed: [digests-and-figures]}
  - id: KEYS
    title: Trusted console keys
    check: console_keys
    severity: high
    params: {min_keys: "1", when_none: fail}
  - id: KEYS-SOFT
    title: Trusted console keys (advisory)
    check: console_keys
    severity: low
    params: {when_none: warn}
)yaml";

// The agent writes times as strftime("%Y-%m-%dT%H:%M:%SZ") of Unix seconds.
std::string AgentTime(console::TimeMs ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

using FactMap = std::map<std::string, std::string>;

FactMap AgentFacts() {
  return {{"tls.cert_expires_at", AgentTime(kNow + 200 * kDay)},
          {"tls.cert_days_left", "200"},
          {"model_store.encrypted", "true"},
          {"storage.state_dir.encrypted", "true"},
          {"egress.policy", "digests-and-figures"},
          {"egress.payload_bytes_to_vendor", "0"},
          {"deploy.console_keys", "2"},
          {"deploy.report_required", "true"}};
}

Finding Judge(const std::string& rule, const FactMap& facts) {
  auto pack = ParsePack(kPack, "agent-facts.yaml");
  EXPECT_TRUE(pack.ok()) << pack.status().ToString();
  EvaluationInput in;
  in.targets = {"t1"};
  in.now = kNow;
  for (const auto& [k, v] : facts) in.facts.push_back({"t1", k, v, kNow - 1000});
  for (auto& f : Evaluate(*pack, in)) {
    if (f.rule_id == rule) return f;
  }
  ADD_FAILURE() << "no finding for " << rule;
  return {};
}

FactMap With(FactMap m, const std::string& key, const std::string& value) {
  m[key] = value;
  return m;
}

FactMap Without(FactMap m, const std::string& key) {
  m.erase(key);
  return m;
}

TEST(AgentFactRules, EveryRulePassesOnAHealthyAgentsFacts) {
  for (const char* rule : {"CERT", "ENC", "EGRESS", "KEYS", "KEYS-SOFT"}) {
    Finding f = Judge(rule, AgentFacts());
    EXPECT_EQ(f.verdict, Verdict::kPass) << rule << ": " << f.message;
    EXPECT_FALSE(f.evidence.empty()) << rule;
  }
}

TEST(AgentFactRules, CertificateExpiryWarnsUnderThirtyDaysAndFailsWhenExpired) {
  Finding f = Judge("CERT", With(AgentFacts(), "tls.cert_expires_at", AgentTime(kNow + 12 * kDay)));
  EXPECT_EQ(f.verdict, Verdict::kWarn) << f.message;
  EXPECT_NE(f.message.find("12.0 days"), std::string::npos) << f.message;

  f = Judge("CERT", With(AgentFacts(), "tls.cert_expires_at", AgentTime(kNow + 31 * kDay)));
  EXPECT_EQ(f.verdict, Verdict::kPass) << f.message;

  f = Judge("CERT", With(AgentFacts(), "tls.cert_expires_at", AgentTime(kNow - 2 * kDay)));
  EXPECT_EQ(f.verdict, Verdict::kFail) << f.message;
  EXPECT_NE(f.message.find("expired 2.0 days ago"), std::string::npos) << f.message;

  // Expiring this very second is expired.
  f = Judge("CERT", With(AgentFacts(), "tls.cert_expires_at", AgentTime(kNow)));
  EXPECT_EQ(f.verdict, Verdict::kFail) << f.message;

  f = Judge("CERT", Without(AgentFacts(), "tls.cert_expires_at"));
  EXPECT_EQ(f.verdict, Verdict::kUnknown) << f.message;
  EXPECT_NE(f.message.find("tls.cert_expires_at"), std::string::npos) << f.message;

  f = Judge("CERT", With(AgentFacts(), "tls.cert_expires_at", "next tuesday"));
  EXPECT_EQ(f.verdict, Verdict::kUnknown) << f.message;
}

TEST(AgentFactRules, TheShortestLivedCertificateDecides) {
  auto facts = AgentFacts();
  facts["tls.cert_not_after.client"] = AgentTime(kNow - kDay);
  Finding f = Judge("CERT", facts);
  EXPECT_EQ(f.verdict, Verdict::kFail) << f.message;
  EXPECT_NE(f.message.find("tls.cert_not_after.client"), std::string::npos) << f.message;
}

TEST(AgentFactRules, ModelStoreEncryption) {
  Finding f = Judge("ENC", With(AgentFacts(), "model_store.encrypted", "false"));
  EXPECT_EQ(f.verdict, Verdict::kFail) << f.message;
  EXPECT_NE(f.message.find("model_store"), std::string::npos) << f.message;

  f = Judge("ENC", Without(AgentFacts(), "model_store.encrypted"));
  EXPECT_EQ(f.verdict, Verdict::kUnknown) << f.message;
  EXPECT_NE(f.message.find("model_store.encrypted"), std::string::npos) << f.message;

  // The console's own name for it wins when both are present.
  f = Judge("ENC", With(With(AgentFacts(), "model_store.encrypted", "false"),
                        "storage.model_store.encrypted", "true"));
  EXPECT_EQ(f.verdict, Verdict::kPass) << f.message;
}

TEST(AgentFactRules, EgressPolicy) {
  Finding f = Judge("EGRESS", With(AgentFacts(), "egress.policy", "prompts-and-outputs"));
  EXPECT_EQ(f.verdict, Verdict::kFail) << f.message;
  EXPECT_NE(f.message.find("prompts-and-outputs"), std::string::npos) << f.message;

  f = Judge("EGRESS", With(AgentFacts(), "egress.policy", ""));
  EXPECT_EQ(f.verdict, Verdict::kFail) << f.message;

  f = Judge("EGRESS", With(AgentFacts(), "egress.payload_bytes_to_vendor", "512"));
  EXPECT_EQ(f.verdict, Verdict::kFail) << f.message;

  f = Judge("EGRESS", Without(AgentFacts(), "egress.policy"));
  EXPECT_EQ(f.verdict, Verdict::kUnknown) << f.message;
  EXPECT_NE(f.message.find("egress.policy"), std::string::npos) << f.message;
}

TEST(AgentFactRules, ConsoleKeys) {
  Finding f = Judge("KEYS", With(AgentFacts(), "deploy.console_keys", "0"));
  EXPECT_EQ(f.verdict, Verdict::kFail) << f.message;
  EXPECT_NE(f.message.find("no trusted console keys"), std::string::npos) << f.message;

  f = Judge("KEYS-SOFT", With(AgentFacts(), "deploy.console_keys", "0"));
  EXPECT_EQ(f.verdict, Verdict::kWarn) << f.message;

  f = Judge("KEYS", Without(AgentFacts(), "deploy.console_keys"));
  EXPECT_EQ(f.verdict, Verdict::kUnknown) << f.message;

  f = Judge("KEYS", With(AgentFacts(), "deploy.console_keys", "two"));
  EXPECT_EQ(f.verdict, Verdict::kUnknown) << f.message;

  f = Judge("KEYS", With(AgentFacts(), "deploy.console_keys", "1"));
  EXPECT_EQ(f.verdict, Verdict::kPass) << f.message;
}

TEST(AgentFactRules, AnAgentReportingNothingIsUnknownEverywhere) {
  for (const char* rule : {"CERT", "ENC", "EGRESS", "KEYS", "KEYS-SOFT"}) {
    Finding f = Judge(rule, {});
    EXPECT_EQ(f.verdict, Verdict::kUnknown) << rule << ": " << f.message;
  }
}

TEST(AgentFactRules, BadParametersNameTheLine) {
  std::string bad = kPack;
  bad.replace(bad.find("when_none: fail"), 15, "when_none: maybe");
  auto p = ParsePack(bad, "bad.yaml");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("bad.yaml:"), std::string::npos) << p.status().message();
  EXPECT_NE(p.status().message().find("when_none"), std::string::npos) << p.status().message();
}

TEST(AgentFactRules, ShippedPacksJudgeTheAgentsFacts) {
  auto packs = LoadPacks(std::filesystem::path(SEXTANT_SOURCE_DIR) / "resources/policies");
  ASSERT_TRUE(packs.ok()) << packs.status().ToString();
  EvaluationInput in;
  in.targets = {"t1"};
  in.now = kNow;
  for (const auto& [k, v] : With(AgentFacts(), "deploy.console_keys", "0")) {
    in.facts.push_back({"t1", k, v, kNow - 1000});
  }
  int keys_rules = 0, cert_rules = 0, enc_rules = 0, egress_rules = 0;
  for (const auto& pack : *packs) {
    for (const auto& f : Evaluate(pack, in)) {
      const auto& rule = *std::find_if(pack.rules.begin(), pack.rules.end(),
                                       [&](const Rule& r) { return r.id == f.rule_id; });
      if (rule.check == "console_keys") {
        ++keys_rules;
        EXPECT_EQ(f.verdict, Verdict::kFail) << pack.name << " " << f.rule_id << ": " << f.message;
      } else if (rule.check == "cert_validity") {
        ++cert_rules;
        EXPECT_EQ(f.verdict, Verdict::kPass) << pack.name << " " << f.rule_id << ": " << f.message;
      } else if (rule.check == "encryption_at_rest") {
        ++enc_rules;
        EXPECT_EQ(f.verdict, Verdict::kPass) << pack.name << " " << f.rule_id << ": " << f.message;
      } else if (rule.check == "egress_declared") {
        ++egress_rules;
        EXPECT_EQ(f.verdict, Verdict::kPass) << pack.name << " " << f.rule_id << ": " << f.message;
      }
    }
  }
  EXPECT_GE(keys_rules, 2);  // soc2-baseline, hipaa-baseline
  EXPECT_GE(cert_rules, 3);
  EXPECT_GE(enc_rules, 2);
  EXPECT_GE(egress_rules, 3);
}

}  // namespace
}  // namespace sextant::console
