// `sextant-agent approve SPEC|DIGEST --key KEY --approvals FILE`: the customer admits one
// deployment spec to its agents (app/common/approval.h): an Ed25519 signature over the spec's
// digest with a key the customer holds, appended as one line to the approvals file that the
// agents' config names (admission.approvals). `sextant-agent approve keygen --out DIR` makes an
// approver key pair: approver.key (keep it; mode 0600) and approver.pem (the public half, listed
// under admission.approval_keys). Exit status: 0 done, 1 failure, 2 usage.
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "app/agent/config/agent_config.h"
#include "app/cli/verb.h"
#include "app/common/approval.h"
#include "app/common/deployment_spec.h"
#include "app/common/signing.h"

namespace sextant::cli {
namespace {

namespace fs = std::filesystem;

struct ApproveArgs {
  std::string what;  // a spec file, or sha256:<hex>
  std::string key;
  std::string approvals;
  std::string config;
  std::string by;
  std::string expires;  // "30d", "12h", or an RFC 3339 time
  std::string keygen_out;
};

Result<int64_t> ParseExpiry(const std::string& s, int64_t now) {
  if (s.empty()) return int64_t{0};
  if (s.find('T') != std::string::npos) return approval::ParseRfc3339(s);
  char unit = s.back();
  int64_t n = 0;
  try {
    n = std::stoll(s.substr(0, s.size() - 1));
  } catch (...) {
    n = -1;
  }
  const int64_t mult = unit == 'd' ? 86400 : unit == 'h' ? 3600 : unit == 'm' ? 60 : 0;
  if (n <= 0 || mult == 0) {
    return Status::InvalidArgument("--expires '" + s +
                                   "': expected a duration (30d, 12h, 90m) or an RFC 3339 time");
  }
  return now + n * mult;
}

Status AppendLine(const fs::path& file, const std::string& line) {
  std::error_code ec;
  if (file.has_parent_path()) fs::create_directories(file.parent_path(), ec);
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    return Status::Unavailable("cannot open " + file.string() + ": " + std::strerror(errno));
  }
  const std::string text = line + "\n";
  const ssize_t n = ::write(fd, text.data(), text.size());
  const bool ok = n == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return Status::Unavailable("cannot append to " + file.string());
  return Status();
}

int Approve(const ApproveArgs& a) {
  auto fail = [](const Status& s) {
    std::cerr << "approve: " << s.message() << "\n";
    return 1;
  };
  if (a.what.empty()) {
    std::cerr << "approve: name a spec file or a digest (sha256:...)\n";
    return 2;
  }
  if (a.key.empty()) {
    std::cerr << "approve: --key (the approver's private key, `sextant-agent approve keygen`) "
                 "is required\n";
    return 2;
  }
  fs::path approvals = a.approvals;
  if (approvals.empty() && !a.config.empty()) {
    auto cfg = agent::AgentConfig::LoadFile(a.config);
    if (!cfg.ok()) return fail(cfg.status());
    approvals = cfg->admission.approvals;
  }
  if (approvals.empty()) {
    std::cerr << "approve: give --approvals FILE, or --config agent.yaml whose "
                 "admission.approvals names it\n";
    return 2;
  }
  approval::Approval ap;
  std::error_code ec;
  if (fs::is_regular_file(a.what, ec)) {
    auto spec = spec::LoadDeploymentSpec(a.what);
    if (!spec.ok()) return fail(spec.status());
    ap.spec_digest = "sha256:" + spec::SpecDigest(*spec);
    ap.name = spec->name;
    ap.model_sha256 = spec->model.sha256;
  } else {
    ap.spec_digest = a.what;
  }
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  auto expires = ParseExpiry(a.expires, now);
  if (!expires.ok()) return fail(expires.status());
  ap.approved_at = approval::FormatRfc3339(now);
  if (*expires > 0) ap.expires_at = approval::FormatRfc3339(*expires);
  ap.approved_by = a.by;
  auto key = report::SigningKey::Load(a.key);
  if (!key.ok()) return fail(key.status());
  auto signed_approval = approval::SignApproval(ap, *key);
  if (!signed_approval.ok()) return fail(signed_approval.status());
  const std::string line = approval::SignedApprovalToJson(*signed_approval).dump();
  if (Status s = AppendLine(approvals, line); !s.ok()) return fail(s);
  auto verified = approval::VerifyApproval(*signed_approval, key->public_key());
  std::cout << "approved " << (verified.ok() ? verified->spec_digest : ap.spec_digest)
            << (ap.name.empty() ? "" : " (" + ap.name + ")") << " with key "
            << key->key_id().substr(0, 16)
            << (ap.expires_at.empty() ? "" : ", until " + ap.expires_at) << "; appended to "
            << approvals.string() << "\n";
  return 0;
}

int Keygen(const std::string& out) {
  if (out.empty()) {
    std::cerr << "approve keygen: --out DIR is required\n";
    return 2;
  }
  std::error_code ec;
  fs::create_directories(out, ec);
  const fs::path priv = fs::path(out) / "approver.key";
  const fs::path pub = fs::path(out) / "approver.pem";
  auto key = report::SigningKey::Generate();
  if (!key.ok()) {
    std::cerr << "approve keygen: " << key.status().message() << "\n";
    return 1;
  }
  if (Status s = key->Save(priv); !s.ok()) {
    std::cerr << "approve keygen: " << s.message() << "\n";
    return 1;
  }
  std::ofstream(pub) << key->public_key().Pem();
  std::cout << priv.string() << "\n"
            << pub.string() << "\n"
            << "key id " << key->key_id() << ": list " << pub.string()
            << " under admission.approval_keys in agent.yaml; keep " << priv.string()
            << " off the agent host\n";
  return 0;
}

void SetupApprove(CLI::App& root, VerbContext& ctx) {
  auto args = std::make_shared<ApproveArgs>();
  CLI::App* cmd = root.add_subcommand(
      "approve",
      "Admit a deployment spec to this customer's agents: sign its digest with an approver key "
      "and append the approval to the approvals file");
  cmd->require_subcommand(0, 1);
  cmd->add_option("spec", args->what, "A deployment spec file, or its digest sha256:<hex>");
  cmd->add_option("--key", args->key, "The approver's private key (PEM)");
  cmd->add_option("--approvals", args->approvals, "The approvals file (admission.approvals)");
  cmd->add_option("--config", args->config,
                  "The agent's config: its admission.approvals names the approvals file");
  cmd->add_option("--by", args->by, "Who approves (recorded in the approval)");
  cmd->add_option("--expires", args->expires,
                  "When the approval ends: a duration (30d, 12h) or an RFC 3339 time; default "
                  "never");
  CLI::App* keygen = cmd->add_subcommand("keygen", "Create an approver key pair");
  keygen->add_option("--out", args->keygen_out, "Directory for approver.key and approver.pem")
      ->required();
  keygen->callback([args, &ctx] { ctx.exit_code = Keygen(args->keygen_out); });
  cmd->callback([cmd, args, &ctx] {
    if (!cmd->get_subcommands().empty()) return;
    ctx.exit_code = Approve(*args);
  });
}

}  // namespace

SEXTANT_REGISTER_VERB(approve, SetupApprove);

}  // namespace sextant::cli
