// Admission: the customer's own rule for which deployment specs may run on this agent,
// independent of anything the vendor signs. An apply is admitted when, and only when, one of:
//   - an approval of its spec digest, signed by one of the customer's approval keys, is in the
//     approvals file (app/common/approval.h; read on every apply, so a new approval needs no
//     restart) and has not expired;
//   - its spec digest is on the allow-list (admission.allow_specs in agent.yaml);
//   - its model's sha256 is on the allow-list (admission.allow_models: any spec of that model,
//     rescaled or re-tuned by the vendor, is admitted).
// With none of these configured every apply is refused, and the refusal says how to configure
// one. The vendor's signed validation report is checked after this, never instead of it.
//
// Thread-safety: Admit and Describe are safe from any thread (the configuration is immutable;
// the approvals file is read under a lock).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "app/common/signing.h"
#include "engine/base/status.h"

namespace sextant::agent {

struct AdmissionConfig {
  std::vector<std::string> approval_keys_pem;  // Ed25519 public keys of customer approvers
  std::filesystem::path approvals_file;        // JSON lines of signed approvals
  std::set<std::string> allowed_spec_digests;  // "sha256:<hex>" (bare hex accepted)
  std::set<std::string> allowed_model_sha256;  // hex ("sha256:" prefix accepted)
};

struct AdmissionResult {
  std::string rule;  // how it was admitted, in words (for the audit record)
};

class Admission {
 public:
  // INVALID_ARGUMENT naming the key (1-based) that does not parse, or a digest that is not
  // 64 hex digits.
  static Result<std::unique_ptr<Admission>> Create(const AdmissionConfig& config);

  // OK with the rule that admits the spec; PERMISSION_DENIED "spec sha256:... is not admitted
  // by this agent's owner: ..." naming what is configured and how to admit it; UNAVAILABLE when
  // the approvals file exists but cannot be read. `detail` (optional) receives what the
  // customer's log should keep (approvals that failed to verify, expired ones).
  Result<AdmissionResult> Admit(const std::string& spec_digest, const std::string& model_sha256,
                                std::string* detail = nullptr) const;

  // True when some rule can admit anything at all.
  bool configured() const;
  // One line for the compliance facts: what is configured.
  std::string Describe() const;
  size_t approval_keys() const { return keys_.size(); }

 private:
  Admission() = default;

  std::vector<report::VerifyingKey> keys_;
  std::filesystem::path approvals_file_;
  std::set<std::string> specs_;   // "sha256:<lowercase hex>"
  std::set<std::string> models_;  // lowercase hex
  mutable std::mutex mu_;         // one reader of the approvals file at a time
};

// How to configure admission, for error messages and logs.
inline constexpr char kAdmissionHowTo[] =
    "configure admission in agent.yaml: admission.approval_keys (your approvers' public keys, "
    "`sextant-agent approve keygen`) and admission.approvals (the file `sextant-agent approve "
    "SPEC --key KEY` appends to), or list the spec digest under admission.allow_specs or its "
    "model's sha256 under admission.allow_models (docs/security.md)";

}  // namespace sextant::agent
