// `sextant audit --target T [--verify]`: the agent's audit log as the console may read it (all
// records for a customer role, the console's own for a vendor role), paged through
// ListAuditLog. --verify checks the hash chain here, from the records, reports the agent's own
// verification, checks the agent's signature over its head, and that the log still extends
// the newest signed head this console recorded for the target (a log cut back or re-chained
// since does not); it then records the new head. Anything broken exits 1.
#include <CLI/CLI.hpp>

#include <iostream>
#include <string>

#include "app/cli/output.h"
#include "app/cli/verb.h"
#include "app/sextant/console_common.h"
#include "connectors/console/fleet_connector.h"

namespace sextant::cli {
namespace {

struct AuditArgs {
  std::string state;
  std::string target;
  std::string output = "table";
  std::string identity;
  std::string rpc;
  bool verify = false;
  int timeout_ms = 10000;
};

nlohmann::json VerificationJson(const rpc::AuditReadout& r) {
  return {{"intact", r.intact},
          {"verdict", r.verdict},
          {"console",
           {{"intact", r.console.intact},
            {"whole_chain", r.whole_chain},
            {"records", r.console.records},
            {"head_seq", r.console.head_seq},
            {"head_hash", r.console.head_hash},
            {"first_broken_seq", r.console.first_broken_seq},
            {"reason", r.console.reason}}},
          {"agent",
           {{"verified", r.agent_verified},
            {"head_seq", r.agent_head_seq},
            {"head_hash", r.agent_head_hash},
            {"first_broken_seq", r.agent_first_broken_seq},
            {"reason", r.agent_broken_reason}}},
          {"signed_head",
           {{"present", r.has_signed_head},
            {"verifies", r.signed_head_verifies},
            {"problem", r.signed_head_problem},
            {"seq", r.next_head.seq},
            {"hash", r.next_head.hash},
            {"signed_at", r.next_head.signed_at},
            {"key_id", r.next_head.key_id}}},
          {"extends_recorded_head", r.extends_recorded},
          {"recorded_head_problem", r.recorded_problem}};
}

int Run(const AuditArgs& a) {
  auto fmt = ParseOutputFormat(a.output);
  if (!fmt.ok()) return UsageError("audit", fmt.status().message());
  if (a.target.empty()) return UsageError("audit", "--target is required");
  auto st = OpenConsoleDatabase(a.state);
  if (!st.ok()) return ReportError("audit", st.status());
  auto target = (*st)->targets().Get(a.target);
  if (!target.ok()) return ReportError("audit", target.status());
  rpc::AuditReadOptions o;
  o.call_deadline = std::chrono::milliseconds(a.timeout_ms);
  o.identity = a.identity;
  o.rpc = a.rpc;
  console::AuditHeadRepository& heads = (*st)->audit_heads();
  auto recorded = heads.Get(a.target);
  if (!recorded.ok()) return ReportError("audit", recorded.status());
  o.recorded = *recorded;
  auto read = rpc::ReadAuditLog(*target, o);
  if (!read.ok()) {
    std::cerr << "sextant audit: target " << a.target << ": " << read.status().message() << "\n";
    return 1;
  }
  const auto& r = *read;
  // The newest signed head this console verified, for the next read to be checked against.
  if (a.verify && r.intact && r.has_signed_head &&
      (!*recorded || r.next_head.seq >= (*recorded)->seq)) {
    if (auto s = heads.Record(r.next_head); !s.ok()) return ReportError("audit", s);
  }
  OutputTable t;
  t.columns = {"seq", "time", "identity", "role", "rpc", "target", "outcome", "hash"};
  for (const auto& rec : r.records) {
    const bool broken = a.verify && !r.console.intact && rec.seq == r.console.first_broken_seq;
    const Tone tone = broken                                      ? Tone::kBad
                      : rec.entry.outcome.rfind("denied", 0) == 0 ? Tone::kWarn
                                                                  : Tone::kNormal;
    t.AddRow(
        {rec.seq, rec.time, rec.entry.identity, rec.entry.role, rec.entry.rpc, rec.entry.target,
         rec.entry.outcome, *fmt == OutputFormat::kTable ? rec.hash.substr(0, 12) : rec.hash},
        tone);
  }
  if (*fmt == OutputFormat::kJson) {
    nlohmann::json records = nlohmann::json::array();
    for (size_t i = 0; i < r.records.size(); ++i) {
      nlohmann::json row;
      for (size_t c = 0; c < t.columns.size(); ++c) row[t.columns[c]] = t.rows[i][c];
      row["prev_hash"] = r.records[i].prev_hash;
      records.push_back(std::move(row));
    }
    nlohmann::json out = {{"target", a.target}, {"scope", r.scope}, {"records", records}};
    if (a.verify) out["verification"] = VerificationJson(r);
    std::cout << out.dump(2) << "\n";
  } else {
    PrintTable(t, *fmt, std::cout, ColourWanted(stdout));
    if (a.verify) {
      // Tables keep stdout for people; CSV keeps stdout for the records alone.
      std::ostream& os = *fmt == OutputFormat::kCsv ? std::cerr : std::cout;
      os << "scope: " << r.scope << "\n"
         << "chain: " << r.verdict << "\n";
    }
  }
  if (a.verify && !r.intact) {
    std::cerr << "sextant audit: target " << a.target << ": audit chain " << r.verdict << "\n";
    return 1;
  }
  return 0;
}

void SetupAudit(CLI::App& root, VerbContext& ctx) {
  auto args = std::make_shared<AuditArgs>();
  auto* cmd = root.add_subcommand(
      "audit", "A target's audit log; --verify checks its hash chain on the console side");
  cmd->add_option("--target", args->target, "Target name (see `sextant targets list`)")->required();
  cmd->add_flag("--verify", args->verify,
                "Verify the hash chain from the records, the agent's signed head, and that the "
                "log extends the head recorded before (then record the new one); exit 1 when "
                "broken");
  cmd->add_option("-o,--output", args->output, "table, json or csv");
  cmd->add_option("--identity", args->identity, "Only records of this identity");
  cmd->add_option("--rpc", args->rpc, "Only records of this RPC (e.g. ApplyDeployment)");
  cmd->add_option("--state", args->state, "Console state directory (default: XDG data dir)");
  cmd->add_option("--timeout-ms", args->timeout_ms, "Deadline of each call to the agent (10000)");
  cmd->callback([args, &ctx] { ctx.exit_code = Run(*args); });
}

}  // namespace

SEXTANT_REGISTER_VERB(audit, SetupAudit);

}  // namespace sextant::cli
