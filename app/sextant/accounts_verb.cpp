// `sextant accounts add|list|rm`: the cloud accounts the console knows (provider, account id,
// regions, and the vendor role reference and external id recorded as facts).
#include <CLI/CLI.hpp>

#include <iostream>
#include <string>
#include <vector>

#include "app/cli/output.h"
#include "app/cli/verb.h"
#include "app/sextant/console_common.h"

namespace sextant::cli {
namespace {

struct AccountsArgs {
  std::string state;
  std::string output = "table";
  console::Account account;
  std::string name;
};

int Add(AccountsArgs& a) {
  auto st = OpenConsoleDatabase(a.state);
  if (!st.ok()) return ReportError("accounts", st.status());
  Status s = (*st)->accounts().Add(a.account);
  if (!s.ok()) return ReportError("accounts", s);
  std::cout << "added account " << a.account.name << "\n";
  return 0;
}

int List(const AccountsArgs& a) {
  auto fmt = ParseOutputFormat(a.output);
  if (!fmt.ok()) return UsageError("accounts", fmt.status().message());
  auto st = OpenConsoleDatabase(a.state);
  if (!st.ok()) return ReportError("accounts", st.status());
  auto accounts = (*st)->accounts().List();
  if (!accounts.ok()) return ReportError("accounts", accounts.status());
  OutputTable t;
  t.columns = {"name", "provider", "account_id", "regions", "role_ref", "external_id"};
  for (const auto& acc : *accounts) {
    std::string regions;
    for (const auto& r : acc.regions) regions += (regions.empty() ? "" : " ") + r;
    t.AddRow({acc.name, acc.provider, acc.account_id, regions, acc.role_ref, acc.external_id});
  }
  PrintTable(t, *fmt, std::cout, ColourWanted(stdout));
  return 0;
}

int Remove(const AccountsArgs& a) {
  auto st = OpenConsoleDatabase(a.state);
  if (!st.ok()) return ReportError("accounts", st.status());
  Status s = (*st)->accounts().Remove(a.name);
  if (!s.ok()) return ReportError("accounts", s);
  std::cout << "removed account " << a.name << "\n";
  return 0;
}

void SetupAccounts(CLI::App& root, VerbContext& ctx) {
  auto args = std::make_shared<AccountsArgs>();
  auto* cmd = root.add_subcommand("accounts", "Cloud accounts: add, list, remove");
  cmd->require_subcommand(1);

  auto* add = cmd->add_subcommand("add", "Record a cloud account");
  add->add_option("name", args->account.name, "Name for the account in the console")->required();
  add->add_option("--provider", args->account.provider,
                  "aws, gcp, azure, lambda, coreweave, on-prem")
      ->required();
  add->add_option("--account-id", args->account.account_id,
                  "Provider account/project/subscription id")
      ->required();
  add->add_option("--region", args->account.regions, "A region used (repeatable)");
  add->add_option("--role-ref", args->account.role_ref, "The vendor role the customer created");
  add->add_option("--external-id", args->account.external_id, "External id recorded with the role");
  add->add_option("--state", args->state, "Console state directory (default: XDG data dir)");
  add->callback([args, &ctx] { ctx.exit_code = Add(*args); });

  auto* list = cmd->add_subcommand("list", "List accounts");
  list->add_option("-o,--output", args->output, "table, json or csv");
  list->add_option("--state", args->state, "Console state directory (default: XDG data dir)");
  list->callback([args, &ctx] { ctx.exit_code = List(*args); });

  auto* rm = cmd->add_subcommand("rm", "Remove an account");
  rm->add_option("name", args->name, "Account name")->required();
  rm->add_option("--state", args->state, "Console state directory (default: XDG data dir)");
  rm->callback([args, &ctx] { ctx.exit_code = Remove(*args); });
}

}  // namespace

SEXTANT_REGISTER_VERB(accounts, SetupAccounts);

}  // namespace sextant::cli
