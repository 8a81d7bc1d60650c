// `sextant certs request --identity vendor/NAME --out DIR`: the vendor's side of the agent's
// mutual TLS. Makes the console's private key (DIR/<kind>-<name>.key, mode 0600: it never leaves
// this machine) and a certificate signing request (DIR/<kind>-<name>.csr) to send to the
// customer, whose CA issues the certificate (`sextant-agent certs init --csr` or `certs issue`)
// and sends back only the certificate. Exit status: 0 done, 1 failure, 2 usage.
#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>

#include "app/cli/verb.h"
#include "connectors/agent/identity_certs.h"

namespace sextant::cli {
namespace {

namespace fs = std::filesystem;

struct RequestArgs {
  std::string identity = "vendor/operator";
  std::string trust_domain = "example.org";
  std::string out;
};

int Request(const RequestArgs& a) {
  const auto slash = a.identity.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == a.identity.size()) {
    std::cerr << "certs request: --identity '" << a.identity << "' must be KIND/NAME\n";
    return 2;
  }
  std::string stem = a.identity;
  for (char& c : stem) {
    if (c == '/') c = '-';
  }
  const fs::path key = fs::path(a.out) / (stem + ".key");
  const fs::path csr = fs::path(a.out) / (stem + ".csr");
  std::error_code ec;
  if (fs::exists(key, ec)) {
    std::cerr << "certs request: " << key.string()
              << " exists; refusing to replace a key (remove it first)\n";
    return 1;
  }
  fs::create_directories(a.out, ec);
  auto made = rpc::CreateKeyAndCsr(a.identity, {"spiffe://" + a.trust_domain + "/" + a.identity});
  Status s = made.ok() ? rpc::WriteTextFile(key, made->key_pem, /*secret=*/true) : made.status();
  if (s.ok()) s = rpc::WriteTextFile(csr, made->csr_pem, false);
  if (!s.ok()) {
    std::cerr << "certs request: " << s.message() << "\n";
    return 1;
  }
  std::cout << key.string() << "\n"
            << csr.string() << "\n"
            << "send " << csr.filename().string()
            << " to the agent's owner; they issue the certificate with `sextant-agent certs "
               "init --csr "
            << a.identity << "=" << csr.filename().string() << "` (or `certs issue`); "
            << key.filename().string() << " stays here\n";
  return 0;
}

void SetupCerts(CLI::App& root, VerbContext& ctx) {
  CLI::App* certs = root.add_subcommand("certs", "The console's identity for agents' mTLS");
  certs->require_subcommand(1);
  auto args = std::make_shared<RequestArgs>();
  CLI::App* request = certs->add_subcommand(
      "request", "Make the console's private key and a certificate signing request for it");
  request->add_option("--identity", args->identity, "KIND/NAME (spiffe://TRUST-DOMAIN/KIND/NAME)")
      ->capture_default_str();
  request->add_option("--trust-domain", args->trust_domain, "SPIFFE trust domain")
      ->capture_default_str();
  request->add_option("--out", args->out, "Directory for the key and the request")->required();
  request->callback([args, &ctx] { ctx.exit_code = Request(*args); });
}

}  // namespace

SEXTANT_REGISTER_VERB(certs, SetupCerts);

}  // namespace sextant::cli
