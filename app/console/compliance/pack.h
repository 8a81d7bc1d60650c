// Compliance policy packs and their evaluation over the facts agents report.
//
// A pack is a YAML file (resources/policies/*.yaml):
//   pack: eu-data-residency          # name, used by --pack
//   title: ...
//   version: "1.0"
//   standard: GDPR                   # the framework its rules serve
//   max_evidence_age: 1h             # older evidence turns a pass into a warning
//   rules:
//     - id: EU-RES-01
//       title: ...
//       check: region_in             # one of the checks below
//       severity: high               # low, medium, high, critical
//       controls: ["GDPR Art. 44"]
//       params: {allowed: [eu-west-1]}
//       remediation: ...
// Unknown keys, unknown checks and bad params are errors naming the file, line and column.
//
// Checks and the facts they read (facts are per target, see console::Fact):
//   region_in            cloud.region in params.allowed
//   tls                  tls.mtls_enforced == true; tls.min_version >= params.min_version
//   cert_validity        tls.cert_expires_at (the agent's server certificate) and every
//                        tls.cert_not_after*: fail when expired or under params.min_days away,
//                        warn under params.warn_days
//   encryption_at_rest   storage.<p>.encrypted (or <p>.encrypted, e.g. model_store.encrypted)
//                        == true for each p in params.stores (agents measure these: true only
//                        where they observe dm-crypt or fscrypt, else unknown)
//   egress_declared      egress.policy in params.allowed (default [digests-and-figures]; older
//                        agents: egress.policy_declared == true); egress.payload_bytes_to_vendor
//                        == 0
//   console_keys         deploy.console_keys (count of trusted console keys) >= params.min_keys
//                        (default 1); with none: params.when_none (fail, or warn)
//   vendor_scope         vendor.role == params.role; vendor.rpcs (comma list) equals
//                        params.baseline, none of them in params.payload_rpcs
//   audit_chain          audit.chain_verified == true; audit.head_time within params.max_head_age
//   deployment_digests   for each deployment.<d>.spec_digest: a passing validation report of
//                        that digest whose model_sha256 and engine build id equal
//                        deployment.<d>.model_sha256 and deployment.<d>.engine_build_id
// A fact that is missing, or that the agent reported as "unknown" (it could not measure it),
// gives the verdict unknown: a rule never passes on a fact nobody established.
//
// Thread-safety: loaded packs are immutable values; Evaluate is a pure function.
#pragma once

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "app/console/store/console_database.h"
#include "engine/base/status.h"

namespace sextant::console {

enum class Verdict { kPass, kFail, kWarn, kUnknown };
std::string_view VerdictName(Verdict v);

enum class Severity { kLow, kMedium, kHigh, kCritical };
std::string_view SeverityName(Severity s);

struct Rule {
  std::string id;
  std::string title;
  std::string check;
  Severity severity = Severity::kMedium;
  std::vector<std::string> controls;
  nlohmann::json params = nlohmann::json::object();
  std::string remediation;
};

struct PolicyPack {
  std::string name;
  std::string title;
  std::string version;
  std::string standard;
  int64_t max_evidence_age_ms = 3'600'000;
  std::vector<Rule> rules;
  std::string origin;  // file it came from
};

Result<PolicyPack> ParsePack(std::string_view yaml_text, const std::string& name);
Result<PolicyPack> LoadPack(const std::filesystem::path& file);
// Every *.yaml / *.yml of dir, in name order; duplicate pack names are an error. Agent role
// policies kept in the same folder (a mapping with "roles" and no "pack") are skipped.
Result<std::vector<PolicyPack>> LoadPacks(const std::filesystem::path& dir);

// A validation report as the compliance engine needs it (from the validation_reports table).
struct ValidationRecord {
  std::string spec_digest;
  std::string model_sha256;
  std::string engine_build_id;
  bool passed = false;
};

// Reads the console database's validation reports (oldest first): the engine build id comes from
// the report JSON ("engineBuildId"; also "engine_build_id" or "engine": {"build_id"}).
Result<std::vector<ValidationRecord>> LoadValidationRecords(console::ConsoleDatabase& store);

struct Evidence {
  std::string key;
  std::string value;
  console::TimeMs observed_at = 0;
};

struct Finding {
  std::string pack;
  std::string standard;
  std::string rule_id;
  std::string rule_title;
  std::vector<std::string> controls;
  Severity severity = Severity::kMedium;
  std::string target;
  Verdict verdict = Verdict::kUnknown;
  std::string message;
  std::vector<Evidence> evidence;
  int64_t evidence_age_ms = -1;  // age of the oldest evidence; -1 when there is none
};

struct EvaluationInput {
  std::vector<std::string> targets;
  std::vector<console::Fact> facts;
  std::vector<ValidationRecord> reports;
  console::TimeMs now = 0;
};

// One finding per target and rule, in target then rule order.
std::vector<Finding> Evaluate(const PolicyPack& pack, const EvaluationInput& input);

// Parses "90s", "15m", "1h", "7d" into milliseconds.
Result<int64_t> ParseDuration(std::string_view s);
// Parses a time fact: Unix seconds, or RFC 3339 UTC "2026-01-02T03:04:05Z".
Result<console::TimeMs> ParseTimeFact(std::string_view s);

}  // namespace sextant::console
