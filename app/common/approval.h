// Customer approvals: the second party of a deployment. A vendor's console can sign any
// validation report (it holds that key), so a report alone never lets a deployment in; the
// customer admits each spec itself, with a key the vendor never sees: an Ed25519 signature
// over the spec's digest, made by `sextant-agent approve SPEC|DIGEST --key KEY`, kept one per
// line in an approvals file (JSON lines) that the agent reads on every apply.
//
// The signed bytes are "sextant-customer-approval/v1\n" followed by the approval's canonical
// JSON (sorted keys, no whitespace), so no signature made for anything else (a validation
// report, an audit checkpoint) can ever pass as an approval, even under the same key.
//
// Thread-safety: values and pure functions.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "app/common/signing.h"
#include "engine/base/status.h"

namespace sextant::approval {

struct Approval {
  std::string spec_digest;   // "sha256:<64 lowercase hex>": what is admitted
  std::string name;          // the spec's name, for people ("" when approved by digest only)
  std::string model_sha256;  // the spec's model, for people ("" when approved by digest only)
  std::string approved_by;   // who approved, free text ("security@example.com")
  std::string approved_at;   // RFC 3339 UTC
  std::string expires_at;    // RFC 3339 UTC; "" never expires

  // Sorted keys, no whitespace: {"approvedAt", "approvedBy", "expiresAt", "modelSha256",
  // "name", "specDigest"}.
  std::string CanonicalJson() const;
};

struct SignedApproval {
  std::string approval_json;  // Approval::CanonicalJson(): the signed bytes after the prefix
  std::string signature;      // Ed25519, hex
  std::string key_id;         // sha256 of the signer's raw public key, hex
};

// INVALID_ARGUMENT for a spec digest that is not "sha256:<64 hex>" (bare hex is accepted and
// normalized) or a time that is not RFC 3339.
Result<SignedApproval> SignApproval(Approval approval, const report::SigningKey& key);
// The approval when the signature verifies under `key`, the JSON is canonical and well formed;
// UNAUTHENTICATED for another key or a bad signature, INVALID_ARGUMENT for malformed JSON.
// Expiry is the caller's to check (see Expired).
Result<Approval> VerifyApproval(const SignedApproval& signed_approval,
                                const report::VerifyingKey& key);
// True when expires_at is set and at or before now_unix_s.
bool Expired(const Approval& approval, int64_t now_unix_s);

// {"approval": {...}, "signature": "...", "keyId": "..."}: one line of an approvals file.
nlohmann::json SignedApprovalToJson(const SignedApproval& signed_approval);
Result<SignedApproval> SignedApprovalFromJson(const nlohmann::json& json);

// RFC 3339 UTC ("2026-01-02T03:04:05Z", fractions allowed) to Unix seconds.
Result<int64_t> ParseRfc3339(const std::string& text);
std::string FormatRfc3339(int64_t unix_seconds);

}  // namespace sextant::approval
