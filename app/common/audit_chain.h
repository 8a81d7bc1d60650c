// The audit chain's record format, shared by the agent that writes it (app/agent/audit) and the
// console that checks what an agent sends: each record holds
//   hash = hex(sha256(prev_hash || canonical))
// where canonical is the JSON object {identity, outcome, role, rpc, seq, target, time} with
// sorted keys and no whitespace, and prev_hash of seq 1 is 64 zeros. Two keys join the object
// only when set, so records written before they existed keep their hashes:
//   detail_digest  hex(sha256(detail_salt || detail)): the record's detail (what only the
//                  customer may read: why a model was not available, a policy's parse error)
//                  is bound to the chain by this digest, salted with 16 random bytes so that a
//                  reader who sees only the digest cannot test guesses of the detail against it;
//   intent_seq     an outcome record: the seq of the record that admitted the call.
//
// Every field stored from a caller is capped (kAuditFieldCaps); a capped value keeps its first
// bytes and says so: "<prefix>…[capped: <N> bytes, sha256 <first 16 hex>]".
//
// Checkpoints: the agent signs the chain head (Ed25519, a key only it holds) after every append
// and keeps the signatures outside the audit database too, so that a log cut short or re-chained
// (every hash after a rewritten record recomputed) no longer matches a checkpoint.
//
// Thread-safety: values and a verifier used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "engine/base/status.h"

namespace sextant::report {
class SigningKey;
class VerifyingKey;
}  // namespace sextant::report

namespace sextant::audit {

struct AuditEntry {
  std::string identity;
  std::string role;
  std::string rpc;
  std::string target;
  std::string outcome;  // "allowed", "denied", "unauthenticated", "ok", "error: CODE", ...
  // Last: positional initializers of the fields above stay valid.
  std::string detail;      // for the customer's readers only (see above); "" when none
  int64_t intent_seq = 0;  // outcome records: the seq of the record that admitted the call
};

// The most bytes each field keeps (see CapAuditField).
struct AuditFieldCaps {
  size_t identity = 512;
  size_t role = 128;
  size_t rpc = 128;
  size_t target = 256;
  size_t outcome = 512;
  size_t detail = 4096;
};
inline constexpr AuditFieldCaps kAuditFieldCaps{};

// `value` when it fits in `cap` bytes; else its first bytes (cut at a UTF-8 character boundary)
// followed by "…[capped: N bytes, sha256 XXXXXXXXXXXXXXXX]", at most `cap` bytes in all.
std::string CapAuditField(std::string_view value, size_t cap);
// Every field of `entry` capped by kAuditFieldCaps.
AuditEntry CapAuditEntry(AuditEntry entry);

// hex(sha256(salt_hex || detail)).
std::string DetailDigest(std::string_view salt_hex, std::string_view detail);

struct AuditRecord {
  int64_t seq = 0;
  std::string time;  // RFC 3339 UTC with milliseconds
  AuditEntry entry;
  std::string prev_hash;
  std::string hash;
  std::string detail_salt;    // 32 hex digits; "" when there is no detail or it was withheld
  std::string detail_digest;  // DetailDigest(detail_salt, entry.detail); "" when no detail
  // The exact bytes the hash covers (after prev_hash).
  std::string Canonical() const;
  // Removes the detail and its salt (for a reader who may not see it); the record still
  // verifies, through detail_digest.
  void WithholdDetail();
};

struct ChainVerification {
  bool intact = true;
  int64_t records = 0;
  int64_t head_seq = 0;
  std::string head_hash;         // of the last record (64 zeros when empty)
  int64_t first_broken_seq = 0;  // 0 when intact; the seq (or position) of the first bad record
  std::string reason;            // what is wrong with it
  // Signed checkpoints (filled where they were checked: the agent's log and `audit verify`).
  int64_t checkpoints = 0;  // checked and found consistent with the records
  int64_t newest_checkpoint_seq = 0;
  std::string checkpoint_key_id;  // the agent's audit key
};

inline constexpr char kGenesisHash[] =
    "0000000000000000000000000000000000000000000000000000000000000000";

// Checks the records of a chain in order, one at a time: AuditLog::Verify runs it over the
// whole file, the console over the records an agent sends. whole_chain: the records are the
// entire log (seq 1, 2, 3 ... each linked to the one before). Otherwise they are a filtered view
// (a caller's own records): each record must hash to its stated hash from its prev_hash and
// contents, seqs must increase, seq 1 must start from the genesis hash, and consecutive seqs
// must link. A record that carries its detail must match its detail_digest. Not thread-safe (one
// per check).
class AuditChainVerifier {
 public:
  explicit AuditChainVerifier(bool whole_chain = true) : whole_chain_(whole_chain) {
    v_.head_hash = kGenesisHash;
  }
  // Continues a whole chain already verified up to (seq, hash).
  AuditChainVerifier(int64_t verified_seq, std::string verified_hash);
  // Adds the next record; false once the chain is broken (result() says where and why).
  bool Add(const AuditRecord& record);
  const ChainVerification& result() const { return v_; }

 private:
  bool whole_chain_;
  ChainVerification v_;
  int64_t last_seq_ = 0;
  std::string last_hash_ = kGenesisHash;
};

// A signed statement of the agent: "the head of my audit chain was record `seq` with `hash`
// at `time`". The signature is Ed25519 over SignedMessage(), by the agent's audit key.
struct AuditCheckpoint {
  int64_t seq = 0;
  std::string hash;
  std::string time;       // RFC 3339 UTC with milliseconds, when it was signed
  std::string key_id;     // sha256 of the raw public key, hex
  std::string signature;  // 128 hex digits

  std::string SignedMessage() const;
  // {"seq":..,"hash":..,"time":..,"keyId":..,"signature":..}
  nlohmann::json ToJson() const;
  // INVALID_ARGUMENT naming the field that is missing or malformed.
  static Result<AuditCheckpoint> FromJson(const nlohmann::json& j);
};

Result<AuditCheckpoint> SignCheckpoint(int64_t seq, const std::string& hash,
                                       const std::string& time, const report::SigningKey& key);
// OK when the checkpoint names this key and its signature verifies; UNAUTHENTICATED otherwise.
Status VerifyCheckpoint(const AuditCheckpoint& checkpoint, const report::VerifyingKey& key);

// The current time as RFC 3339 UTC with milliseconds ("2026-11-29T01:02:03.456Z").
std::string NowRfc3339Ms();

}  // namespace sextant::audit
