// `sextant-agent apikeys add|list|revoke`: the API keys of the applications that call the
// agent's inference API (app/agent/state/api_keys.h). Works on the state directory named by the
// agent's configuration, while the agent runs or not; a running agent sees the change within
// a fraction of a second. Every change is written to the agent's audit log before it is made.
//
//   sextant-agent apikeys add NAME --config agent.yaml [--deployment D]   # prints the key, once
//   sextant-agent apikeys list --config agent.yaml [-o table|json|csv]
//   sextant-agent apikeys revoke NAME --config agent.yaml
//
// `add` prints the key alone on one line of standard output (and nothing else there), so
// `KEY=$(sextant-agent apikeys add app --config agent.yaml)` captures it. Exit status: 0 done,
// 1 refused or failed (the reason on standard error), 2 usage.
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <ctime>
#include <iostream>

#include "app/agent/audit/audit_log.h"
#include "app/agent/config/agent_config.h"
#include "app/agent/state/api_keys.h"
#include "app/cli/output.h"
#include "app/cli/verb.h"
#include "app/common/paths.h"

namespace sextant::cli {
namespace {

constexpr const char* kLocalRole = "local-admin";

// "local:<user>": who ran the command, for the audit log.
std::string LocalIdentity() {
  const struct passwd* pw = ::getpwuid(::geteuid());
  return std::string("local:") +
         (pw != nullptr ? pw->pw_name : "uid" + std::to_string(::geteuid()));
}

std::string TimeText(int64_t unix_ms) {
  const std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

struct KeyState {
  std::unique_ptr<agent::AuditLog> audit;
  std::unique_ptr<agent::ApiKeyStore> keys;
};

// Opens the state directory the configuration names. The files must stay the agent's: when the
// directory belongs to another user (the agent's service user), the command must run as that
// user, or the agent could no longer open files this command created.
Result<KeyState> OpenState(const std::string& config_path) {
  SEXTANT_ASSIGN_OR_RETURN(agent::AgentConfig config, agent::AgentConfig::LoadFile(config_path));
  struct stat st {};
  if (::stat(config.state_dir.c_str(), &st) == 0 && st.st_uid != ::geteuid()) {
    const struct passwd* owner = ::getpwuid(st.st_uid);
    const std::string name = owner != nullptr ? owner->pw_name : std::to_string(st.st_uid);
    return Status::PermissionDenied("the state directory " + config.state_dir.string() +
                                    " belongs to " + name + "; run this as that user (sudo -u " +
                                    name + " sextant-agent apikeys ...)");
  }
  SEXTANT_RETURN_IF_ERROR(EnsurePrivateDir(config.state_dir));
  KeyState s;
  SEXTANT_ASSIGN_OR_RETURN(s.audit, agent::AuditLog::Open(config.state_dir));
  SEXTANT_ASSIGN_OR_RETURN(s.keys, agent::ApiKeyStore::Open(config.state_dir));
  return s;
}

int Fail(const std::string& verb, const Status& s) {
  std::cerr << "apikeys " << verb << ": " << s.message() << "\n";
  return 1;
}

// The audit record before the change, the change, then its outcome.
int Audited(KeyState& s, const char* rpc, const std::string& target, const std::string& verb,
            const std::function<Status()>& change) {
  const std::string who = LocalIdentity();
  auto before = s.audit->Append({who, kLocalRole, rpc, target, "allowed"});
  if (!before.ok()) {
    return Fail(verb,
                Status::Unavailable("nothing changed: the audit record could not be written: " +
                                    before.status().message()));
  }
  const Status result = change();
  auto after = s.audit->Append(
      {who, kLocalRole, rpc, target,
       result.ok() ? std::string("ok") : "error: " + std::string(StatusCodeName(result.code()))});
  if (!after.ok()) {
    std::cerr << "apikeys " << verb
              << ": warning: the outcome's audit record could not be written: "
              << after.status().message() << "\n";
  }
  return result.ok() ? 0 : Fail(verb, result);
}

void SetupApiKeys(CLI::App& root, VerbContext& ctx) {
  CLI::App* cmd = root.add_subcommand(
      "apikeys", "API keys of the applications that call the inference API (HTTP)");
  cmd->require_subcommand(1);
  auto config = std::make_shared<std::string>(agent::kDefaultAgentConfigPath);
  auto name = std::make_shared<std::string>();
  auto deployment = std::make_shared<std::string>();
  auto format = std::make_shared<std::string>("table");

  CLI::App* add = cmd->add_subcommand(
      "add", "Create a key and print it (once: only its hash is kept) alone on standard output");
  add->add_option("name", *name, "The key's name (the caller's name in the audit log)")->required();
  add->add_option("--deployment", *deployment,
                  "Allow this deployment only (default: every deployment)");
  add->add_option("--config", *config, "Agent configuration file")->capture_default_str();
  add->callback([config, name, deployment, &ctx] {
    auto state = OpenState(*config);
    if (!state.ok()) {
      ctx.exit_code = Fail("add", state.status());
      return;
    }
    std::string key;
    const std::string target = deployment->empty() ? *name : *name + "@" + *deployment;
    ctx.exit_code = Audited(*state, "ApiKeys.Add", target, "add", [&]() -> Status {
      auto created = state->keys->Add(*name, *deployment, LocalIdentity());
      if (!created.ok()) return created.status();
      key = std::move(created).value();
      return Status();
    });
    if (ctx.exit_code != 0) return;
    std::cout << key << "\n" << std::flush;
    std::cerr << "apikeys add: created '" << *name << "' for "
              << (deployment->empty() ? std::string("every deployment")
                                      : "deployment " + *deployment)
              << "; this is the only time the key is shown. Callers send it as "
                 "'Authorization: Bearer KEY'.\n";
  });

  CLI::App* list = cmd->add_subcommand("list", "List the keys (names, scope, state; never keys)");
  list->add_option("--config", *config, "Agent configuration file")->capture_default_str();
  list->add_option("-o,--output", *format, "table, json or csv")->capture_default_str();
  list->callback([config, format, &ctx] {
    auto fmt = ParseOutputFormat(*format);
    if (!fmt.ok()) {
      ctx.exit_code = Fail("list", fmt.status());
      return;
    }
    auto state = OpenState(*config);
    if (!state.ok()) {
      ctx.exit_code = Fail("list", state.status());
      return;
    }
    auto keys = state->keys->List();
    if (!keys.ok()) {
      ctx.exit_code = Fail("list", keys.status());
      return;
    }
    OutputTable t;
    t.columns = {"name", "deployment", "prefix", "created", "created_by", "revoked"};
    for (const agent::ApiKeyInfo& k : *keys) {
      t.AddRow({k.name, k.deployment.empty() ? "*" : k.deployment, k.prefix,
                TimeText(k.created_at_unix_ms), k.created_by,
                k.revoked_at_unix_ms ? nlohmann::json(TimeText(*k.revoked_at_unix_ms))
                                     : nlohmann::json(nullptr)},
               k.revoked_at_unix_ms ? Tone::kDim : Tone::kNormal);
    }
    PrintTable(t, *fmt, std::cout, ColourWanted(stdout));
    ctx.exit_code = 0;
  });

  auto revoke_name = std::make_shared<std::string>();
  CLI::App* revoke = cmd->add_subcommand("revoke", "Revoke a key: it stops working at once");
  revoke->add_option("name", *revoke_name, "The key's name")->required();
  revoke->add_option("--config", *config, "Agent configuration file")->capture_default_str();
  revoke->callback([config, revoke_name, &ctx] {
    auto state = OpenState(*config);
    if (!state.ok()) {
      ctx.exit_code = Fail("revoke", state.status());
      return;
    }
    ctx.exit_code = Audited(*state, "ApiKeys.Revoke", *revoke_name, "revoke",
                            [&] { return state->keys->Revoke(*revoke_name); });
    if (ctx.exit_code == 0) std::cerr << "apikeys revoke: '" << *revoke_name << "' revoked\n";
  });
}

}  // namespace

SEXTANT_REGISTER_VERB(apikeys, SetupApiKeys);

}  // namespace sextant::cli
