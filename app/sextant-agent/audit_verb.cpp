// `sextant-agent audit verify --state DIR`: recomputes the audit log's hash chain, checks every
// checkpoint the agent signed (audit-checkpoints.jsonl and the newest one in audit.db) against
// it, and names where it breaks: a record that does not hash, a log cut short (records after
// its end were signed), a log re-chained (a signed hash differs). Exit status: 0 intact, 1
// broken or unreadable, 2 usage.
#include <CLI/CLI.hpp>

#include <iostream>
#include <nlohmann/json.hpp>

#include "app/agent/audit/audit_log.h"
#include "app/agent/config/agent_config.h"
#include "app/cli/verb.h"

namespace sextant::cli {
namespace {

void SetupAudit(CLI::App& root, VerbContext& ctx) {
  CLI::App* audit = root.add_subcommand("audit", "Inspect the agent's audit log");
  audit->require_subcommand(1);
  auto state = std::make_shared<std::string>(agent::kDefaultAgentStateDir);
  auto json = std::make_shared<bool>(false);
  CLI::App* verify = audit->add_subcommand(
      "verify",
      "Check the hash chain of <state>/audit.db and the agent's signed checkpoints; name where "
      "it is broken, cut short or re-chained");
  verify->add_option("--state", *state, "The agent's state directory")->capture_default_str();
  verify->add_flag("--json", *json, "Print the result as JSON");
  verify->callback([state, json, &ctx] {
    auto v = agent::VerifyAuditFile(*state);
    if (!v.ok()) {
      std::cerr << "audit verify: " << v.status().ToString() << "\n";
      ctx.exit_code = 1;
      return;
    }
    if (*json) {
      nlohmann::json j = {{"intact", v->intact},
                          {"records", v->records},
                          {"head_seq", v->head_seq},
                          {"head_hash", v->head_hash},
                          {"first_broken_seq", v->first_broken_seq},
                          {"reason", v->reason},
                          {"checkpoints", v->checkpoints},
                          {"newest_checkpoint_seq", v->newest_checkpoint_seq},
                          {"checkpoint_key_id", v->checkpoint_key_id}};
      std::cout << j.dump(2) << "\n";
    } else if (v->intact) {
      std::cout << "audit chain intact: " << v->records << " records, head seq " << v->head_seq
                << " hash " << v->head_hash << "; " << v->checkpoints
                << " signed checkpoints agree (newest seq " << v->newest_checkpoint_seq << ", key "
                << v->checkpoint_key_id.substr(0, 16) << ")\n";
    } else {
      std::cout << "audit chain BROKEN at record " << v->first_broken_seq << ": " << v->reason
                << " (" << v->records << " records read)\n";
    }
    ctx.exit_code = v->intact ? 0 : 1;
  });
}

}  // namespace

SEXTANT_REGISTER_VERB(audit, SetupAudit);

}  // namespace sextant::cli
