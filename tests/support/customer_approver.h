// The customer's side of two-party deployments, for tests that run agents and apply to them:
// an approver key (the customer's, never the vendor's) and the approvals file its agents read.
// Approve() appends a signed approval exactly as `sextant-agent approve` does, so a test that
// pushes acts as the customer too, the way a customer would.
// Thread-safety: use from one thread.
#pragma once

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "app/agent/policy/admission.h"
#include "app/common/approval.h"
#include "app/common/signing.h"
#include "engine/base/status.h"

namespace sextant::test_agents {

class CustomerApprover {
 public:
  // Makes the key; approvals go to dir/approvals.jsonl (dir must exist).
  Status Init(const std::filesystem::path& dir) {
    SEXTANT_ASSIGN_OR_RETURN(auto key, report::SigningKey::Generate());
    key_ = std::make_unique<report::SigningKey>(std::move(key));
    approvals_ = dir / "approvals.jsonl";
    return Status();
  }

  // What an agent of this customer is configured with (admission.approval_keys / approvals).
  agent::AdmissionConfig Admission() const {
    agent::AdmissionConfig c;
    c.approval_keys_pem = {key_->public_key().Pem()};
    c.approvals_file = approvals_;
    return c;
  }

  // Admits a spec digest ("sha256:<hex>" or hex), optionally until `expires_at` (RFC 3339).
  Status Approve(const std::string& spec_digest, const std::string& expires_at = "") {
    approval::Approval a;
    a.spec_digest = spec_digest.rfind("sha256:", 0) == 0 ? spec_digest : "sha256:" + spec_digest;
    a.approved_by = "security@customer.example";
    a.approved_at = "2026-01-01T00:00:00Z";
    a.expires_at = expires_at;
    SEXTANT_ASSIGN_OR_RETURN(auto s, approval::SignApproval(a, *key_));
    std::ofstream out(approvals_, std::ios::app);
    out << approval::SignedApprovalToJson(s).dump() << "\n";
    out.flush();
    if (!out) return Status::Unavailable("cannot append to " + approvals_.string());
    return Status();
  }

  const report::SigningKey& key() const { return *key_; }
  const std::filesystem::path& approvals() const { return approvals_; }

 private:
  std::unique_ptr<report::SigningKey> key_;
  std::filesystem::path approvals_;
};

}  // namespace sextant::test_agents
