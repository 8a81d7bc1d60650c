#include "app/console/compliance/pack.h"

#include "engine/base/time.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <set>
#include <sstream>

#include "app/common/fact_keys.h"
#include "engine/base/time.h"

namespace sextant::console {
namespace {

using nlohmann::json;

std::string At(const std::string& name, const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  if (m.line < 0) return name;
  return name + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

Status YamlError(const std::string& name, const YAML::Node& n, const std::string& what) {
  return Status::InvalidArgument(At(name, n) + ": " + what);
}

Result<std::string> ScalarString(const std::string& name, const YAML::Node& n,
                                 const std::string& field) {
  if (!n.IsScalar()) return YamlError(name, n, field + " must be a string");
  return n.Scalar();
}

Result<json> YamlToJson(const std::string& name, const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
      return json();
    case YAML::NodeType::Scalar:
      return json(n.Scalar());
    case YAML::NodeType::Sequence: {
      json arr = json::array();
      for (const auto& e : n) {
        SEXTANT_ASSIGN_OR_RETURN(json v, YamlToJson(name, e));
        arr.push_back(std::move(v));
      }
      return arr;
    }
    case YAML::NodeType::Map: {
      json obj = json::object();
      for (const auto& kv : n) {
        SEXTANT_ASSIGN_OR_RETURN(json v, YamlToJson(name, kv.second));
        obj[kv.first.Scalar()] = std::move(v);
      }
      return obj;
    }
    case YAML::NodeType::Undefined:
      break;
  }
  return YamlError(name, n, "undefined node");
}

struct CheckSpec {
  const char* name;
  std::vector<const char*> list_params;    // must be non-empty lists of strings
  std::vector<const char*> string_params;  // must be strings
  std::vector<const char*> required;
};

const std::vector<CheckSpec>& Checks() {
  static const std::vector<CheckSpec> checks = {
      {"region_in", {"allowed"}, {}, {"allowed"}},
      {"tls", {}, {"min_version"}, {"min_version"}},
      {"cert_validity", {}, {"min_days", "warn_days"}, {"min_days"}},
      {"encryption_at_rest", {"stores"}, {}, {"stores"}},
      {"egress_declared", {"allowed"}, {}, {}},
      {"console_keys", {}, {"min_keys", "when_none"}, {}},
      {"vendor_scope", {"baseline", "payload_rpcs"}, {"role"}, {"role", "baseline"}},
      {"audit_chain", {}, {"max_head_age"}, {"max_head_age"}},
      {"deployment_digests", {}, {}, {}},
  };
  return checks;
}

Status ValidateParams(const std::string& name, const YAML::Node& params_node,
                      const std::string& check, const json& params) {
  const CheckSpec* spec = nullptr;
  for (const auto& c : Checks()) {
    if (check == c.name) spec = &c;
  }
  if (spec == nullptr) return Status::InvalidArgument("unknown check '" + check + "'");
  for (auto& [k, v] : params.items()) {
    const std::string& key = k;  // clang 14 lambdas cannot capture structured bindings
    const bool is_list = std::any_of(spec->list_params.begin(), spec->list_params.end(),
                                     [&](const char* p) { return key == p; });
    const bool is_string = std::any_of(spec->string_params.begin(), spec->string_params.end(),
                                       [&](const char* p) { return key == p; });
    if (!is_list && !is_string) {
      return YamlError(name, params_node[k], "check " + check + " has no parameter '" + k + "'");
    }
    if (is_list) {
      if (!v.is_array() || v.empty() ||
          !std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_string(); })) {
        return YamlError(name, params_node[k], k + " must be a non-empty list of strings");
      }
    }
    if (is_string && !v.is_string()) {
      return YamlError(name, params_node[k], k + " must be a scalar");
    }
  }
  for (const char* r : spec->required) {
    if (!params.contains(r)) {
      return YamlError(name, params_node, "check " + check + " needs parameter '" + r + "'");
    }
  }
  if (params.contains("when_none")) {
    const std::string v = params["when_none"].get<std::string>();
    if (v != "warn" && v != "fail") {
      return YamlError(name, params_node["when_none"], "when_none must be warn or fail");
    }
  }
  for (const char* p : {"min_days", "warn_days", "min_keys"}) {
    if (params.contains(p)) {
      const std::string s = params[p].get<std::string>();
      char* end = nullptr;
      long n = std::strtol(s.c_str(), &end, 10);
      if (s.empty() || *end != '\0' || n < 0) {
        return YamlError(name, params_node[p], std::string(p) + " must be a whole number");
      }
    }
  }
  if (params.contains("max_head_age")) {
    auto d = ParseDuration(params["max_head_age"].get<std::string>());
    if (!d.ok()) return YamlError(name, params_node["max_head_age"], d.status().message());
  }
  if (params.contains("min_version")) {
    const std::string v = params["min_version"].get<std::string>();
    if (v != "1.0" && v != "1.1" && v != "1.2" && v != "1.3") {
      return YamlError(name, params_node["min_version"], "min_version must be 1.0 .. 1.3");
    }
  }
  return Status();
}

Result<Severity> ParseSeverity(const std::string& s) {
  if (s == "low") return Severity::kLow;
  if (s == "medium") return Severity::kMedium;
  if (s == "high") return Severity::kHigh;
  if (s == "critical") return Severity::kCritical;
  return Status::InvalidArgument("severity '" + s + "' is not low, medium, high or critical");
}

Result<Rule> ParseRule(const std::string& name, const YAML::Node& n) {
  if (!n.IsMap()) return YamlError(name, n, "a rule must be a mapping");
  Rule r;
  for (const auto& kv : n) {
    const std::string key = kv.first.Scalar();
    const YAML::Node& v = kv.second;
    if (key == "id") {
      SEXTANT_ASSIGN_OR_RETURN(r.id, ScalarString(name, v, key));
    } else if (key == "title") {
      SEXTANT_ASSIGN_OR_RETURN(r.title, ScalarString(name, v, key));
    } else if (key == "check") {
      SEXTANT_ASSIGN_OR_RETURN(r.check, ScalarString(name, v, key));
    } else if (key == "remediation") {
      SEXTANT_ASSIGN_OR_RETURN(r.remediation, ScalarString(name, v, key));
    } else if (key == "severity") {
      SEXTANT_ASSIGN_OR_RETURN(std::string s, ScalarString(name, v, key));
      auto sev = ParseSeverity(s);
      if (!sev.ok()) return YamlError(name, v, sev.status().message());
      r.severity = *sev;
    } else if (key == "controls") {
      if (!v.IsSequence()) return YamlError(name, v, "controls must be a list");
      for (const auto& c : v) {
        SEXTANT_ASSIGN_OR_RETURN(std::string s, ScalarString(name, c, "control"));
        r.controls.push_back(s);
      }
    } else if (key == "params") {
      if (!v.IsMap()) return YamlError(name, v, "params must be a mapping");
      SEXTANT_ASSIGN_OR_RETURN(r.params, YamlToJson(name, v));
    } else {
      return YamlError(name, kv.first, "unknown rule key '" + key + "'");
    }
  }
  if (r.id.empty()) return YamlError(name, n, "rule has no id");
  if (r.title.empty()) return YamlError(name, n, "rule " + r.id + " has no title");
  if (r.check.empty()) return YamlError(name, n, "rule " + r.id + " has no check");
  Status s = ValidateParams(name, n["params"], r.check, r.params);
  if (!s.ok()) {
    if (s.message().rfind(name, 0) == 0) return s;
    return YamlError(name, n["check"], "rule " + r.id + ": " + s.message());
  }
  return r;
}

using FactMap = std::map<std::string, const console::Fact*, std::less<>>;

FactMap FactsOf(const std::vector<console::Fact>& facts, const std::string& target) {
  FactMap out;
  for (const auto& f : facts) {
    if (f.target == target) out[f.key] = &f;
  }
  return out;
}

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t b = item.find_first_not_of(" \t");
    size_t e = item.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
  }
  return out;
}

bool Truthy(const std::string& v) { return v == "true" || v == "1" || v == "yes"; }

// Builds a finding while the check looks at facts.
class Check {
 public:
  Check(Finding* f, const FactMap& facts) : f_(f), facts_(facts) {}
  // The fact's value, recorded as evidence; nullptr when missing or when the agent reported it
  // as "unknown" (it could not measure it): a rule never passes on a fact nobody established.
  const std::string* Get(std::string_view key) {
    auto it = facts_.find(key);
    if (it == facts_.end()) return nullptr;
    f_->evidence.push_back({std::string(key), it->second->value, it->second->observed_at});
    if (it->second->value.rfind("unknown", 0) == 0) {
      unknown_.emplace_back(key);
      return nullptr;
    }
    return &it->second->value;
  }
  // After the check: a verdict that rests on an unknown fact is unknown, unless a known fact
  // already failed it.
  void SettleUnknowns() {
    if (unknown_.empty() || f_->verdict == Verdict::kFail) return;
    f_->verdict = Verdict::kUnknown;
    std::string keys;
    for (const auto& k : unknown_) keys += (keys.empty() ? "" : ", ") + k;
    f_->message = "the agent could not establish " + keys +
                  " (reported \"unknown\"; its compliance facts say why)";
  }
  std::vector<std::string> KeysWithPrefix(std::string_view prefix) const {
    std::vector<std::string> out;
    for (auto it = facts_.lower_bound(prefix); it != facts_.end(); ++it) {
      if (it->first.compare(0, prefix.size(), prefix) != 0) break;
      out.push_back(it->first);
    }
    return out;
  }
  void Set(Verdict v, std::string msg) {
    f_->verdict = v;
    f_->message = std::move(msg);
  }
  void Missing(std::string_view key) {
    Set(Verdict::kUnknown, "no fact " + std::string(key) + " reported");
  }

 private:
  Finding* f_;
  const FactMap& facts_;
  std::vector<std::string> unknown_;
};

int TlsRank(const std::string& v) {
  static const char* kOrder[] = {"1.0", "1.1", "1.2", "1.3"};
  for (int i = 0; i < 4; ++i) {
    if (v == kOrder[i] || v == std::string("TLSv") + kOrder[i] ||
        v == std::string("TLS") + kOrder[i]) {
      return i;
    }
  }
  return -1;
}

std::string JoinStrings(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

void RunCheck(const Rule& rule, Check& c, const EvaluationInput& in) {
  const json& p = rule.params;
  if (rule.check == "region_in") {
    const std::string* region = c.Get(facts::kCloudRegion);
    if (!region) return c.Missing(facts::kCloudRegion);
    for (const auto& a : p["allowed"]) {
      if (a.get<std::string>() == *region)
        return c.Set(Verdict::kPass, "region " + *region + " is allowed");
    }
    return c.Set(Verdict::kFail, "region " + *region + " is outside the allowed set");
  }
  if (rule.check == "tls") {
    const std::string* mtls = c.Get(facts::kTlsMtlsEnforced);
    const std::string* ver = c.Get(facts::kTlsMinVersion);
    // A known failure fails the rule even when the other fact is unknown.
    if (mtls && !Truthy(*mtls)) return c.Set(Verdict::kFail, "mutual TLS is not enforced");
    if (!mtls) return c.Missing(facts::kTlsMtlsEnforced);
    if (!ver) return c.Missing(facts::kTlsMinVersion);
    const std::string want = p["min_version"].get<std::string>();
    const int have = TlsRank(*ver);
    if (have < 0) return c.Set(Verdict::kUnknown, "unrecognized TLS version '" + *ver + "'");
    if (have < TlsRank(want)) {
      return c.Set(Verdict::kFail, "minimum TLS version " + *ver + " is below " + want);
    }
    return c.Set(Verdict::kPass, "mutual TLS enforced, TLS >= " + *ver);
  }
  if (rule.check == "cert_validity") {
    // The agent reports its server certificate's notAfter as tls.cert_expires_at; other
    // certificates may come as tls.cert_not_after.<which>.
    auto keys = c.KeysWithPrefix(facts::kTlsCertNotAfterPrefix);
    for (const auto& k : c.KeysWithPrefix(facts::kTlsCertExpiresAt)) keys.push_back(k);
    if (keys.empty()) return c.Missing(facts::kTlsCertExpiresAt);
    const int64_t min_days = std::atol(p["min_days"].get<std::string>().c_str());
    const int64_t warn_days =
        p.contains("warn_days") ? std::atol(p["warn_days"].get<std::string>().c_str()) : min_days;
    double worst_days = 1e18;
    std::string worst;
    for (const auto& k : keys) {
      const std::string* v = c.Get(k);
      if (v == nullptr) continue;  // reported "unknown": settled after the check
      auto t = ParseTimeFact(*v);
      if (!t.ok()) return c.Set(Verdict::kUnknown, k + ": " + t.status().message());
      const double days = static_cast<double>(*t - in.now) / 86'400'000.0;
      if (days < worst_days) {
        worst_days = days;
        worst = k;
      }
    }
    if (worst.empty()) return c.Set(Verdict::kUnknown, "no certificate expiry is known");
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.1f", worst_days);
    if (worst_days <= 0) {
      std::snprintf(buf, sizeof(buf), "%.1f", -worst_days);
      return c.Set(Verdict::kFail, worst + ": expired " + buf + " days ago");
    }
    if (worst_days < static_cast<double>(min_days)) {
      return c.Set(Verdict::kFail, worst + " expires in " + buf + " days (minimum " +
                                       std::to_string(min_days) + ")");
    }
    if (worst_days < static_cast<double>(warn_days)) {
      return c.Set(Verdict::kWarn, worst + " expires in " + buf + " days");
    }
    return c.Set(Verdict::kPass, "certificates valid for " + std::string(buf) + " more days");
  }
  if (rule.check == "encryption_at_rest") {
    std::vector<std::string> plain;
    for (const auto& s : p["stores"]) {
      // storage.<store>.encrypted, or the agent's own <store>.encrypted (model_store.encrypted).
      const std::string key = facts::StoreEncrypted(s.get<std::string>());
      const std::string own = facts::OwnStoreEncrypted(s.get<std::string>());
      const std::string* v = c.Get(key);
      if (!v) v = c.Get(own);
      if (!v) return c.Missing(s.get<std::string>() == facts::kModelStore ? own : key);
      if (!Truthy(*v)) plain.push_back(s.get<std::string>());
    }
    if (!plain.empty())
      return c.Set(Verdict::kFail, "not encrypted at rest: " + JoinStrings(plain));
    return c.Set(Verdict::kPass, "encryption at rest observed");
  }
  if (rule.check == "egress_declared") {
    // egress.policy names what may leave; agents of older versions said only
    // egress.policy_declared.
    std::vector<std::string> allowed = {"digests-and-figures"};
    if (p.contains("allowed")) allowed = p["allowed"].get<std::vector<std::string>>();
    if (const std::string* policy = c.Get(facts::kEgressPolicy)) {
      if (policy->empty()) return c.Set(Verdict::kFail, "no egress policy declared");
      if (std::find(allowed.begin(), allowed.end(), *policy) == allowed.end()) {
        return c.Set(Verdict::kFail,
                     "egress policy '" + *policy + "' is not one of: " + JoinStrings(allowed));
      }
    } else {
      const std::string* d = c.Get(facts::kEgressPolicyDeclared);
      if (!d) return c.Missing(facts::kEgressPolicy);
      if (!Truthy(*d)) return c.Set(Verdict::kFail, "no egress policy declared");
    }
    if (const std::string* bytes = c.Get(facts::kEgressPayloadBytesToVendor)) {
      if (*bytes != "0") {
        return c.Set(Verdict::kFail, "payload bytes sent to vendor: " + *bytes);
      }
    }
    return c.Set(Verdict::kPass, "egress policy declared");
  }
  if (rule.check == "console_keys") {
    // Trusted console keys: with none, the agent applies specs without a signed report.
    const std::string* n = c.Get(facts::kDeployConsoleKeys);
    if (!n) return c.Missing(facts::kDeployConsoleKeys);
    char* end = nullptr;
    const long keys = std::strtol(n->c_str(), &end, 10);
    if (n->empty() || *end != '\0' || keys < 0) {
      return c.Set(Verdict::kUnknown, "deploy.console_keys: not a count: '" + *n + "'");
    }
    (void)c.Get(facts::kDeployReportRequired);
    const long min_keys =
        p.contains("min_keys") ? std::atol(p["min_keys"].get<std::string>().c_str()) : 1;
    if (keys < std::max(1L, min_keys)) {
      const Verdict v = p.value("when_none", std::string("fail")) == "warn" && keys == 0
                            ? Verdict::kWarn
                            : Verdict::kFail;
      return c.Set(v, keys == 0 ? "no trusted console keys: applies need no signed validation "
                                  "report"
                                : std::to_string(keys) + " trusted console keys, fewer than " +
                                      std::to_string(min_keys));
    }
    return c.Set(Verdict::kPass, std::to_string(keys) +
                                     " trusted console keys: applies need a signed passing "
                                     "validation report");
  }
  if (rule.check == "vendor_scope") {
    const std::string* role = c.Get(facts::kVendorRole);
    const std::string* rpcs = c.Get(facts::kVendorRpcs);
    if (!role) return c.Missing(facts::kVendorRole);
    if (!rpcs) return c.Missing(facts::kVendorRpcs);
    const std::string want_role = p["role"].get<std::string>();
    if (*role != want_role) {
      return c.Set(Verdict::kFail, "vendor identity has role " + *role + ", not " + want_role);
    }
    std::set<std::string> have;
    for (auto& r : SplitList(*rpcs)) have.insert(r);
    std::set<std::string> base;
    for (const auto& r : p["baseline"]) base.insert(r.get<std::string>());
    std::vector<std::string> payload, extra, missing;
    if (p.contains("payload_rpcs")) {
      for (const auto& r : p["payload_rpcs"]) {
        if (have.count(r.get<std::string>())) payload.push_back(r.get<std::string>());
      }
    }
    for (const auto& r : have) {
      if (!base.count(r)) extra.push_back(r);
    }
    for (const auto& r : base) {
      if (!have.count(r)) missing.push_back(r);
    }
    if (!payload.empty()) {
      return c.Set(Verdict::kFail, "vendor reaches payload RPCs: " + JoinStrings(payload));
    }
    if (!extra.empty()) {
      return c.Set(Verdict::kFail, "vendor role exceeds the baseline: " + JoinStrings(extra));
    }
    if (!missing.empty()) {
      return c.Set(Verdict::kWarn, "vendor role lacks baseline RPCs: " + JoinStrings(missing));
    }
    return c.Set(Verdict::kPass, "vendor role equals the baseline");
  }
  if (rule.check == "audit_chain") {
    const std::string* ok = c.Get(facts::kAuditChainVerified);
    if (!ok) return c.Missing(facts::kAuditChainVerified);
    if (!Truthy(*ok)) {
      const std::string* why = c.Get(facts::kAuditFirstBroken);
      return c.Set(Verdict::kFail,
                   "audit chain does not verify" + (why ? ": first broken record " + *why : ""));
    }
    const std::string* head = c.Get(facts::kAuditHeadTime);
    if (!head) return c.Missing(facts::kAuditHeadTime);
    auto t = ParseTimeFact(*head);
    if (!t.ok())
      return c.Set(Verdict::kUnknown,
                   std::string(facts::kAuditHeadTime) + ": " + t.status().message());
    const int64_t max_age = ParseDuration(p["max_head_age"].get<std::string>()).value_or(0);
    const int64_t age = in.now - *t;
    if (age > max_age) {
      return c.Set(Verdict::kWarn, "audit chain verifies but its head is " +
                                       std::to_string(age / 60'000) + " min old");
    }
    return c.Set(Verdict::kPass, "audit chain verifies, head is fresh");
  }
  if (rule.check == "deployment_digests") {
    std::vector<std::string> names;
    for (const auto& k : c.KeysWithPrefix(facts::kDeploymentPrefix)) {
      const std::string rest = k.substr(facts::kDeploymentPrefix.size());
      const size_t dot = rest.rfind('.');
      if (dot != std::string::npos && rest.substr(dot + 1) == facts::kDeploymentSpecDigestField) {
        names.push_back(rest.substr(0, dot));
      }
    }
    if (names.empty()) return c.Set(Verdict::kPass, "no deployments");
    std::vector<std::string> problems;
    for (const auto& d : names) {
      const std::string* spec = c.Get(facts::DeploymentSpecDigest(d));
      const std::string* model = c.Get(facts::DeploymentModelSha256(d));
      const std::string* build = c.Get(facts::DeploymentEngineBuildId(d));
      if (!model) return c.Missing(facts::DeploymentModelSha256(d));
      if (!build) return c.Missing(facts::DeploymentEngineBuildId(d));
      // Agents say "sha256:<hex>", reports may store the bare hex: compare the digests.
      const auto bare = [](std::string_view digest) {
        if (digest.rfind("sha256:", 0) == 0) digest.remove_prefix(7);
        return std::string(digest);
      };
      const ValidationRecord* rep = nullptr;
      for (const auto& r : in.reports) {
        if (bare(r.spec_digest) == bare(*spec) && r.passed) rep = &r;
      }
      if (rep == nullptr) {
        problems.push_back(d + ": no passing validation report for spec " + *spec);
      } else if (bare(rep->model_sha256) != bare(*model)) {
        problems.push_back(d + ": model " + *model + " != validated " + rep->model_sha256);
      } else if (rep->engine_build_id != *build) {
        problems.push_back(d + ": engine " + *build + " != validated " + rep->engine_build_id);
      }
    }
    if (!problems.empty()) return c.Set(Verdict::kFail, JoinStrings(problems));
    return c.Set(Verdict::kPass,
                 std::to_string(names.size()) + " deployment(s) match their validation reports");
  }
  c.Set(Verdict::kUnknown, "unknown check " + rule.check);
}

}  // namespace

std::string_view VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kPass:
      return "pass";
    case Verdict::kFail:
      return "fail";
    case Verdict::kWarn:
      return "warn";
    case Verdict::kUnknown:
      break;
  }
  return "unknown";
}

std::string_view SeverityName(Severity s) {
  switch (s) {
    case Severity::kLow:
      return "low";
    case Severity::kHigh:
      return "high";
    case Severity::kCritical:
      return "critical";
    case Severity::kMedium:
      break;
  }
  return "medium";
}

Result<int64_t> ParseDuration(std::string_view s) {
  if (s.size() < 2)
    return Status::InvalidArgument("duration '" + std::string(s) + "': use 90s, 15m, 1h or 7d");
  int64_t n = 0;
  for (char ch : s.substr(0, s.size() - 1)) {
    if (ch < '0' || ch > '9' || n > 1'000'000'000) {
      return Status::InvalidArgument("duration '" + std::string(s) + "': use 90s, 15m, 1h or 7d");
    }
    n = n * 10 + (ch - '0');
  }
  switch (s.back()) {
    case 's':
      return n * 1000;
    case 'm':
      return n * 60'000;
    case 'h':
      return n * 3'600'000;
    case 'd':
      return n * 86'400'000;
    default:
      return Status::InvalidArgument("duration '" + std::string(s) + "': use 90s, 15m, 1h or 7d");
  }
}

Result<console::TimeMs> ParseTimeFact(std::string_view s) {
  const std::string str(s);
  if (!str.empty() &&
      std::all_of(str.begin(), str.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return static_cast<console::TimeMs>(std::atoll(str.c_str())) * 1000;
  }
  // Facts are UTC: an offset other than +00:00 means the agent's clock context is not ours.
  const bool utc =
      !str.empty() && (str.back() == 'Z' || str.back() == 'z' ||
                       (str.size() > 6 && str.compare(str.size() - 6, 6, "+00:00") == 0));
  if (!utc && ParseRfc3339(str).ok()) {
    return Status::InvalidArgument("time '" + str + "' must be UTC (Z)");
  }
  return ParseRfc3339(str);
}

Result<PolicyPack> ParsePack(std::string_view yaml_text, const std::string& name) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(name + ":" + std::to_string(e.mark.line + 1) + ":" +
                                   std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  if (!root.IsMap()) return Status::InvalidArgument(name + ": a policy pack must be a mapping");
  PolicyPack pack;
  pack.origin = name;
  std::set<std::string> ids;
  try {
    for (const auto& kv : root) {
      const std::string key = kv.first.Scalar();
      const YAML::Node& v = kv.second;
      if (key == "pack") {
        SEXTANT_ASSIGN_OR_RETURN(pack.name, ScalarString(name, v, key));
      } else if (key == "title") {
        SEXTANT_ASSIGN_OR_RETURN(pack.title, ScalarString(name, v, key));
      } else if (key == "version") {
        SEXTANT_ASSIGN_OR_RETURN(pack.version, ScalarString(name, v, key));
      } else if (key == "standard") {
        SEXTANT_ASSIGN_OR_RETURN(pack.standard, ScalarString(name, v, key));
      } else if (key == "description") {
        SEXTANT_ASSIGN_OR_RETURN(std::string unused, ScalarString(name, v, key));
        (void)unused;
      } else if (key == "max_evidence_age") {
        SEXTANT_ASSIGN_OR_RETURN(std::string s, ScalarString(name, v, key));
        auto d = ParseDuration(s);
        if (!d.ok()) return YamlError(name, v, d.status().message());
        pack.max_evidence_age_ms = *d;
      } else if (key == "rules") {
        if (!v.IsSequence() || v.size() == 0) {
          return YamlError(name, v, "rules must be a non-empty list");
        }
        for (const auto& r : v) {
          SEXTANT_ASSIGN_OR_RETURN(Rule rule, ParseRule(name, r));
          if (!ids.insert(rule.id).second) {
            return YamlError(name, r, "duplicate rule id " + rule.id);
          }
          pack.rules.push_back(std::move(rule));
        }
      } else {
        return YamlError(name, kv.first, "unknown key '" + key + "'");
      }
    }
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(name + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  if (pack.name.empty()) return Status::InvalidArgument(name + ": no 'pack' name");
  if (pack.standard.empty()) return Status::InvalidArgument(name + ": no 'standard'");
  if (pack.rules.empty()) return Status::InvalidArgument(name + ": no rules");
  if (pack.title.empty()) pack.title = pack.name;
  return pack;
}

Result<PolicyPack> LoadPack(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return Status::NotFound("cannot read " + file.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ParsePack(ss.str(), file.string());
}

Result<std::vector<PolicyPack>> LoadPacks(const std::filesystem::path& dir) {
  std::error_code ec;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const auto ext = e.path().extension();
    if (ext == ".yaml" || ext == ".yml") files.push_back(e.path());
  }
  if (ec) return Status::NotFound("cannot list " + dir.string() + ": " + ec.message());
  std::sort(files.begin(), files.end());
  std::vector<PolicyPack> packs;
  for (const auto& f : files) {
    // The folder also holds the agent's example role policy (a mapping with "roles"): not a
    // pack. Anything else without "pack" is an error.
    try {
      YAML::Node root = YAML::LoadFile(f.string());
      if (root.IsMap() && !root["pack"] && root["roles"]) continue;
    } catch (const YAML::Exception&) {
      // ParsePack reports it with its position.
    }
    SEXTANT_ASSIGN_OR_RETURN(PolicyPack p, LoadPack(f));
    for (const auto& other : packs) {
      if (other.name == p.name) {
        return Status::InvalidArgument(f.string() + ": pack " + p.name + " also in " +
                                       other.origin);
      }
    }
    packs.push_back(std::move(p));
  }
  if (packs.empty()) return Status::NotFound("no policy packs (*.yaml) in " + dir.string());
  return packs;
}

Result<std::vector<ValidationRecord>> LoadValidationRecords(console::ConsoleDatabase& db) {
  SEXTANT_ASSIGN_OR_RETURN(std::vector<StoredReport> stored, db.reports().List());
  std::vector<ValidationRecord> out;
  out.reserve(stored.size());
  for (auto it = stored.rbegin(); it != stored.rend(); ++it) {  // oldest first
    ValidationRecord r;
    r.spec_digest = it->spec_digest;
    r.model_sha256 = it->model_sha256;
    r.passed = it->passed;
    auto j = json::parse(it->signed_report.report_json, nullptr, false);
    if (j.is_object()) {
      if (j.contains("engineBuildId") && j["engineBuildId"].is_string()) {
        r.engine_build_id = j["engineBuildId"].get<std::string>();
      } else if (j.contains("engine_build_id") && j["engine_build_id"].is_string()) {
        r.engine_build_id = j["engine_build_id"].get<std::string>();
      } else if (j.contains("engine") && j["engine"].is_object() &&
                 j["engine"].contains("build_id") && j["engine"]["build_id"].is_string()) {
        r.engine_build_id = j["engine"]["build_id"].get<std::string>();
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<Finding> Evaluate(const PolicyPack& pack, const EvaluationInput& input) {
  std::vector<Finding> out;
  for (const auto& target : input.targets) {
    const auto facts = FactsOf(input.facts, target);
    for (const auto& rule : pack.rules) {
      Finding f;
      f.pack = pack.name;
      f.standard = pack.standard;
      f.rule_id = rule.id;
      f.rule_title = rule.title;
      f.controls = rule.controls;
      f.severity = rule.severity;
      f.target = target;
      Check c(&f, facts);
      RunCheck(rule, c, input);
      c.SettleUnknowns();
      console::TimeMs oldest = 0;
      for (const auto& e : f.evidence) {
        if (oldest == 0 || e.observed_at < oldest) oldest = e.observed_at;
      }
      if (!f.evidence.empty()) f.evidence_age_ms = std::max<int64_t>(0, input.now - oldest);
      if (f.verdict == Verdict::kPass && f.evidence_age_ms > pack.max_evidence_age_ms) {
        f.verdict = Verdict::kWarn;
        f.message += " (evidence is " + std::to_string(f.evidence_age_ms / 60'000) + " min old)";
      }
      out.push_back(std::move(f));
    }
  }
  return out;
}

}  // namespace sextant::console
