// `sextant-agent certs init --out DIR --trust-domain example.org`: a CA, the agent's server
// certificate and client identities (spiffe://TRUST-DOMAIN/KIND/NAME) for a local trial.
#include <CLI/CLI.hpp>

#include <iostream>

#include "app/cli/verb.h"
#include "connectors/agent/identity_certs.h"

namespace sextant::cli {
namespace {

void SetupCerts(CLI::App& root, VerbContext& ctx) {
  CLI::App* certs = root.add_subcommand("certs", "Create certificates for a local trial");
  certs->require_subcommand(1);
  auto opts = std::make_shared<rpc::CertsInitOptions>();
  auto out = std::make_shared<std::string>();
  CLI::App* init = certs->add_subcommand(
      "init",
      "Create a CA (ECDSA P-256), the agent's server certificate (127.0.0.1, localhost) "
      "and client identities with spiffe:// URI SANs");
  init->add_option("--out", *out, "Directory to write ca.pem, server.pem, <kind>-<name>.pem/.key")
      ->required();
  init->add_option("--trust-domain", opts->trust_domain, "SPIFFE trust domain")
      ->capture_default_str();
  init->add_option("--server-name", opts->extra_server_names,
                   "Extra DNS name or IP address for the server certificate (repeatable)");
  init->add_option("--identity", opts->identities,
                   "Client identity KIND/NAME (repeatable; default: vendor/operator, "
                   "customer/admin, customer/auditor, customer/app)");
  init->add_option("--days", opts->valid_days, "Validity in days")->capture_default_str();
  init->callback([opts, out, &ctx] {
    opts->out_dir = *out;
    auto written = rpc::CertsInit(*opts);
    if (!written.ok()) {
      std::cerr << "certs init: " << written.status().ToString() << "\n";
      ctx.exit_code = 1;
      return;
    }
    for (const auto& p : *written) std::cout << p.string() << "\n";
    ctx.exit_code = 0;
  });
}

}  // namespace

SEXTANT_REGISTER_VERB(certs, SetupCerts);

}  // namespace sextant::cli
