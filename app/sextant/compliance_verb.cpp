// `sextant compliance`: the policy packs (resources/policies) evaluated on the facts agents
// reported (run `sextant fleet` to refresh them), a verdict per target and rule with its
// evidence and age; as a table, JSON, SARIF 2.1.0 or OCSF Compliance Findings (class 2003).
// Exit code 1 when any rule fails.
#include <CLI/CLI.hpp>

#include <iostream>
#include <string>

#include "app/cli/output.h"
#include "app/cli/verb.h"
#include "app/console/compliance/pack.h"
#include "app/console/compliance/report_formats.h"
#include "app/sextant/console_common.h"
#include "engine/base/build_info.h"

namespace sextant::cli {
namespace {

struct ComplianceArgs {
  std::string state;
  std::string output = "table";
  std::string pack;
  std::string policies;
  std::string target;
};

std::string Age(int64_t ms) {
  if (ms < 0) return "-";
  if (ms < 120'000) return std::to_string(ms / 1000) + "s";
  if (ms < 7'200'000) return std::to_string(ms / 60'000) + "m";
  if (ms < 172'800'000) return std::to_string(ms / 3'600'000) + "h";
  return std::to_string(ms / 86'400'000) + "d";
}

int Run(const ComplianceArgs& a) {
  const std::string& o = a.output;
  if (o != "table" && o != "json" && o != "csv" && o != "sarif" && o != "ocsf") {
    return UsageError("compliance", "unknown output format '" + o +
                                        "' (expected table, json, csv, sarif or ocsf)");
  }
  std::filesystem::path dir = a.policies;
  if (dir.empty()) {
    auto found = FindResourceDir("policies");
    if (!found.ok()) return ReportError("compliance", found.status());
    dir = *found;
  }
  auto packs = console::LoadPacks(dir);
  if (!packs.ok()) return ReportError("compliance", packs.status());
  std::vector<console::PolicyPack> chosen;
  for (const auto& p : *packs) {
    if (a.pack.empty() || p.name == a.pack) chosen.push_back(p);
  }
  if (chosen.empty()) {
    std::string names;
    for (const auto& p : *packs) names += (names.empty() ? "" : ", ") + p.name;
    return UsageError("compliance", "no pack named '" + a.pack + "' (have " + names + ")");
  }
  auto st = OpenConsoleDatabase(a.state);
  if (!st.ok()) return ReportError("compliance", st.status());
  console::EvaluationInput in;
  in.now = console::NowMs();
  auto targets = (*st)->targets().List();
  if (!targets.ok()) return ReportError("compliance", targets.status());
  for (const auto& t : *targets) {
    if (a.target.empty() || t.name == a.target) in.targets.push_back(t.name);
  }
  if (!a.target.empty() && in.targets.empty()) {
    return ReportError("compliance", Status::NotFound("no target named " + a.target));
  }
  auto facts = (*st)->facts().List();
  if (!facts.ok()) return ReportError("compliance", facts.status());
  in.facts = std::move(facts).value();
  auto reports = console::LoadValidationRecords(**st);
  if (!reports.ok()) return ReportError("compliance", reports.status());
  in.reports = std::move(reports).value();

  std::vector<console::Finding> findings;
  for (const auto& p : chosen) {
    auto f = console::Evaluate(p, in);
    findings.insert(findings.end(), f.begin(), f.end());
  }
  bool failed = false;
  for (const auto& f : findings) failed |= f.verdict == console::Verdict::kFail;
  const std::string version = GetBuildInfo().version;
  if (o == "sarif") {
    std::cout << console::FindingsToSarif(chosen, findings, version, in.now).dump(2) << "\n";
  } else if (o == "ocsf") {
    std::cout << console::FindingsToOcsf(findings, version, in.now).dump(2) << "\n";
  } else if (o == "json") {
    std::cout << console::FindingsToJson(findings).dump(2) << "\n";
  } else {
    OutputTable t;
    t.columns = {"target", "pack", "rule", "severity", "verdict", "evidence_age", "message"};
    for (const auto& f : findings) {
      const auto v = f.verdict;
      t.AddRow({f.target, f.pack, f.rule_id, std::string(console::SeverityName(f.severity)),
                std::string(console::VerdictName(v)), Age(f.evidence_age_ms), f.message},
               v == console::Verdict::kPass   ? Tone::kGood
               : v == console::Verdict::kFail ? Tone::kBad
               : v == console::Verdict::kWarn ? Tone::kWarn
                                              : Tone::kDim);
    }
    PrintTable(t, o == "csv" ? OutputFormat::kCsv : OutputFormat::kTable, std::cout,
               ColourWanted(stdout));
  }
  return failed ? 1 : 0;
}

void SetupCompliance(CLI::App& root, VerbContext& ctx) {
  auto args = std::make_shared<ComplianceArgs>();
  auto* cmd = root.add_subcommand(
      "compliance", "Policy packs evaluated on the facts agents report (exit 1 on a failure)");
  cmd->add_option("--pack", args->pack, "Only this pack (eu-data-residency, soc2-baseline, ...)");
  cmd->add_option("-o,--output", args->output, "table, json, csv, sarif or ocsf");
  cmd->add_option("--target", args->target, "Only this target");
  cmd->add_option("--policies", args->policies,
                  "Folder of policy packs (default: resources/policies)");
  cmd->add_option("--state", args->state, "Console state directory (default: XDG data dir)");
  cmd->callback([args, &ctx] { ctx.exit_code = Run(*args); });
}

}  // namespace

SEXTANT_REGISTER_VERB(compliance, SetupCompliance);

}  // namespace sextant::cli
