// `sextant-agent certs ...`: the customer's side of the agent's mutual TLS.
//   init --out DIR --trust-domain D [--csr vendor/NAME=FILE]...   a CA, the agent's server
//        certificate, the customer's identities, and certificates for the vendor's requests
//        (the vendor's key never exists here: `sextant certs request` makes it on its side)
//   issue --ca-dir DIR --csr FILE --identity KIND/NAME     one certificate from a request
//   revoke --ca-dir DIR --cert FILE...                     adds them to DIR/crl.pem (grpc.crl;
//        the agent reloads it on SIGHUP and refuses those certificates in the handshake)
#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>

#include "app/cli/verb.h"
#include "connectors/agent/identity_certs.h"
#include "connectors/agent/revocation.h"

namespace sextant::cli {
namespace {

namespace fs = std::filesystem;

Result<rpc::CertAndKey> LoadCa(const fs::path& dir) {
  SEXTANT_ASSIGN_OR_RETURN(std::string cert, rpc::ReadTextFile(dir / "ca.pem"));
  SEXTANT_ASSIGN_OR_RETURN(std::string key, rpc::ReadTextFile(dir / "ca.key"));
  return rpc::CertAndKey{cert, key};
}

std::string Stem(std::string id) {
  for (char& c : id) {
    if (c == '/') c = '-';
  }
  return id;
}

int Fail(const char* what, const Status& s) {
  std::cerr << "certs " << what << ": " << s.ToString() << "\n";
  return 1;
}

void SetupCerts(CLI::App& root, VerbContext& ctx) {
  CLI::App* certs = root.add_subcommand("certs", "The CA and certificates of the agent's mTLS");
  certs->require_subcommand(1);

  auto opts = std::make_shared<rpc::CertsInitOptions>();
  auto out = std::make_shared<std::string>();
  auto csrs = std::make_shared<std::vector<std::string>>();
  CLI::App* init = certs->add_subcommand(
      "init",
      "Create a CA (ECDSA P-256), the agent's server certificate (127.0.0.1, localhost), the "
      "customer's client identities, and certificates for the vendor's signing requests");
  init->add_option("--out", *out, "Directory to write ca.pem, server.pem, <kind>-<name>.pem/.key")
      ->required();
  init->add_option("--trust-domain", opts->trust_domain, "SPIFFE trust domain")
      ->capture_default_str();
  init->add_option("--server-name", opts->extra_server_names,
                   "Extra DNS name or IP address for the server certificate (repeatable)");
  init->add_option("--identity", opts->identities,
                   "Customer identity KIND/NAME (repeatable; default: customer/admin, "
                   "customer/auditor, customer/app); vendor identities come as --csr");
  init->add_option("--csr", *csrs,
                   "KIND/NAME=FILE: issue that identity's certificate from the request in FILE "
                   "(the vendor's, made by `sextant certs request`; repeatable)");
  init->add_option("--days", opts->valid_days, "Validity in days")->capture_default_str();
  init->callback([opts, out, csrs, &ctx] {
    opts->out_dir = *out;
    for (const auto& c : *csrs) {
      const auto eq = c.find('=');
      if (eq == std::string::npos) {
        std::cerr << "certs init: --csr " << c << ": expected KIND/NAME=FILE\n";
        ctx.exit_code = 2;
        return;
      }
      auto pem = rpc::ReadTextFile(c.substr(eq + 1));
      if (!pem.ok()) {
        ctx.exit_code = Fail("init", pem.status());
        return;
      }
      opts->csrs.push_back({c.substr(0, eq), *pem});
    }
    auto written = rpc::CertsInit(*opts);
    if (!written.ok()) {
      ctx.exit_code = Fail("init", written.status());
      return;
    }
    for (const auto& p : *written) std::cout << p.string() << "\n";
    ctx.exit_code = 0;
  });

  struct IssueArgs {
    std::string ca_dir, csr, identity, trust_domain = "example.org", out;
    int64_t days = 90;
  };
  auto issue_args = std::make_shared<IssueArgs>();
  CLI::App* issue = certs->add_subcommand(
      "issue", "Issue a client certificate from a certificate signing request (the vendor's)");
  issue->add_option("--ca-dir", issue_args->ca_dir, "Directory with ca.pem and ca.key")->required();
  issue->add_option("--csr", issue_args->csr, "The request (PEM)")->required();
  issue
      ->add_option("--identity", issue_args->identity,
                   "KIND/NAME the certificate names (spiffe://TRUST-DOMAIN/KIND/NAME)")
      ->required();
  issue->add_option("--trust-domain", issue_args->trust_domain, "SPIFFE trust domain")
      ->capture_default_str();
  issue->add_option("--days", issue_args->days, "Validity in days")->capture_default_str();
  issue->add_option("--out", issue_args->out, "Certificate file (default CA-DIR/KIND-NAME.pem)");
  issue->callback([issue_args, &ctx] {
    const IssueArgs& a = *issue_args;
    auto ca = LoadCa(a.ca_dir);
    if (!ca.ok()) {
      ctx.exit_code = Fail("issue", ca.status());
      return;
    }
    auto csr = rpc::ReadTextFile(a.csr);
    if (!csr.ok()) {
      ctx.exit_code = Fail("issue", csr.status());
      return;
    }
    rpc::CertRequest req;
    req.common_name = a.identity;
    req.client = true;
    req.uri_sans = {"spiffe://" + a.trust_domain + "/" + a.identity};
    req.not_after_s = a.days * 86400;
    auto cert = rpc::IssueFromCsr(*ca, *csr, req);
    if (!cert.ok()) {
      ctx.exit_code = Fail("issue", cert.status());
      return;
    }
    const fs::path path =
        a.out.empty() ? fs::path(a.ca_dir) / (Stem(a.identity) + ".pem") : fs::path(a.out);
    if (Status s = rpc::WriteTextFile(path, *cert, false); !s.ok()) {
      ctx.exit_code = Fail("issue", s);
      return;
    }
    std::cout << path.string() << "\n";
    ctx.exit_code = 0;
  });

  struct RevokeArgs {
    std::string ca_dir, crl;
    std::vector<std::string> certs;
    int64_t days = 30;
  };
  auto revoke_args = std::make_shared<RevokeArgs>();
  CLI::App* revoke = certs->add_subcommand(
      "revoke", "Add certificates to the CA's revocation list (the agent's grpc.crl)");
  revoke->add_option("--ca-dir", revoke_args->ca_dir, "Directory with ca.pem and ca.key")
      ->required();
  revoke->add_option("--cert", revoke_args->certs, "Certificate to revoke (PEM; repeatable)")
      ->required();
  revoke->add_option("--crl", revoke_args->crl, "The revocation list (default CA-DIR/crl.pem)");
  revoke->add_option("--days", revoke_args->days, "Days until the list's next update")
      ->capture_default_str();
  revoke->callback([revoke_args, &ctx] {
    const RevokeArgs& a = *revoke_args;
    auto ca = LoadCa(a.ca_dir);
    if (!ca.ok()) {
      ctx.exit_code = Fail("revoke", ca.status());
      return;
    }
    const fs::path crl_path = a.crl.empty() ? fs::path(a.ca_dir) / "crl.pem" : fs::path(a.crl);
    std::string existing;
    std::error_code ec;
    if (fs::exists(crl_path, ec)) {
      auto text = rpc::ReadTextFile(crl_path);
      if (!text.ok()) {
        ctx.exit_code = Fail("revoke", text.status());
        return;
      }
      existing = *text;
    }
    std::vector<std::string> pems;
    for (const auto& c : a.certs) {
      auto pem = rpc::ReadTextFile(c);
      if (!pem.ok()) {
        ctx.exit_code = Fail("revoke", pem.status());
        return;
      }
      pems.push_back(*pem);
    }
    auto crl = rpc::RevokeCertificates(*ca, existing, pems, a.days * 86400);
    if (!crl.ok()) {
      ctx.exit_code = Fail("revoke", crl.status());
      return;
    }
    // Written next to it and renamed: an agent reloading meanwhile reads the old or the new.
    const fs::path tmp = crl_path.string() + ".tmp";
    if (Status s = rpc::WriteTextFile(tmp, *crl, false); !s.ok()) {
      ctx.exit_code = Fail("revoke", s);
      return;
    }
    fs::rename(tmp, crl_path, ec);
    if (ec) {
      ctx.exit_code = Fail("revoke", Status::Unavailable("cannot write " + crl_path.string()));
      return;
    }
    for (const auto& p : pems) {
      auto serial = rpc::SerialOfPem(p);
      std::cout << "revoked serial " << (serial.ok() ? *serial : "?") << "\n";
    }
    std::cout << crl_path.string()
              << " (point grpc.crl at it and `systemctl reload sextant-agent`)\n";
    ctx.exit_code = 0;
  });
}

}  // namespace

SEXTANT_REGISTER_VERB(certs, SetupCerts);

}  // namespace sextant::cli
