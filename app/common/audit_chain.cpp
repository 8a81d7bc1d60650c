#include "app/common/audit_chain.h"

#include <utility>

#include "app/common/signing.h"
#include "engine/base/sha256.h"
#include "engine/base/time.h"

namespace sextant::audit {

namespace {

constexpr char kCheckpointDomain[] = "sextant-audit-checkpoint/v1";

// The longest prefix of s of at most n bytes that does not end inside a UTF-8 sequence.
std::string_view Utf8Prefix(std::string_view s, size_t n) {
  if (n >= s.size()) return s;
  size_t cut = n;
  // Step back over continuation bytes (10xxxxxx) to the start of the character at `cut`.
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut);
}

}  // namespace

std::string CapAuditField(std::string_view value, size_t cap) {
  if (value.size() <= cap) return std::string(value);
  const std::string marker = "\xE2\x80\xA6[capped: " + std::to_string(value.size()) +
                             " bytes, sha256 " + Sha256Hex(value).substr(0, 16) + "]";
  const size_t room = cap > marker.size() ? cap - marker.size() : 0;
  return std::string(Utf8Prefix(value, room)) + marker;
}

AuditEntry CapAuditEntry(AuditEntry e) {
  const AuditFieldCaps& c = kAuditFieldCaps;
  if (e.identity.size() > c.identity) e.identity = CapAuditField(e.identity, c.identity);
  if (e.role.size() > c.role) e.role = CapAuditField(e.role, c.role);
  if (e.rpc.size() > c.rpc) e.rpc = CapAuditField(e.rpc, c.rpc);
  if (e.target.size() > c.target) e.target = CapAuditField(e.target, c.target);
  if (e.outcome.size() > c.outcome) e.outcome = CapAuditField(e.outcome, c.outcome);
  if (e.detail.size() > c.detail) e.detail = CapAuditField(e.detail, c.detail);
  return e;
}

std::string DetailDigest(std::string_view salt_hex, std::string_view detail) {
  std::string bytes(salt_hex);
  bytes.append(detail);
  return Sha256Hex(bytes);
}

AuditChainVerifier::AuditChainVerifier(int64_t verified_seq, std::string verified_hash)
    : whole_chain_(true), last_seq_(verified_seq), last_hash_(std::move(verified_hash)) {
  v_.records = verified_seq;
  v_.head_seq = verified_seq;
  v_.head_hash = last_hash_;
}

bool AuditChainVerifier::Add(const AuditRecord& r) {
  if (!v_.intact) return false;
  ++v_.records;
  const int64_t expected_seq = last_seq_ + 1;
  auto fail = [&](std::string why) {
    v_.intact = false;
    if (whole_chain_) {
      v_.first_broken_seq = expected_seq;
      v_.reason = "record " + std::to_string(expected_seq) + " (stored seq " +
                  std::to_string(r.seq) + "): " + std::move(why);
    } else {
      v_.first_broken_seq = r.seq;
      v_.reason = "record " + std::to_string(r.seq) + ": " + std::move(why);
    }
    return false;
  };
  if (whole_chain_ && r.seq != expected_seq) {
    return fail("sequence gap or reorder: expected seq " + std::to_string(expected_seq));
  }
  if (!whole_chain_ && r.seq <= last_seq_) {
    return fail("out of order: follows seq " + std::to_string(last_seq_));
  }
  // In a filtered view only neighbours (and the first record of the log) can be linked.
  const bool linked = r.seq == expected_seq;
  if (linked && r.prev_hash != last_hash_) {
    return fail("prev_hash does not match the hash of the record before it");
  }
  if (!r.detail_salt.empty() && DetailDigest(r.detail_salt, r.entry.detail) != r.detail_digest) {
    return fail("its detail does not match the detail digest it was recorded with");
  }
  if (r.detail_digest.empty() && !r.entry.detail.empty()) {
    return fail("it carries a detail that its hash does not cover");
  }
  const std::string want = Sha256Hex(r.prev_hash + r.Canonical());
  if (r.hash != want) {
    return fail("hash does not match its contents (recomputed " + want.substr(0, 16) + "...)");
  }
  last_seq_ = r.seq;
  last_hash_ = r.hash;
  v_.head_seq = r.seq;
  v_.head_hash = r.hash;
  return true;
}

std::string AuditRecord::Canonical() const {
  // nlohmann::json objects keep keys sorted; dump() with no indent has no whitespace.
  nlohmann::json j = {{"identity", entry.identity},
                      {"outcome", entry.outcome},
                      {"role", entry.role},
                      {"rpc", entry.rpc},
                      {"seq", seq},
                      {"target", entry.target},
                      {"time", time}};
  if (!detail_digest.empty()) j["detail_digest"] = detail_digest;
  if (entry.intent_seq != 0) j["intent_seq"] = entry.intent_seq;
  // Bytes that are not UTF-8 (a caller's certificate may carry any) are replaced, the same way
  // on every side, instead of making the record unwritable.
  return j.dump(-1, ' ', /*ensure_ascii=*/true, nlohmann::json::error_handler_t::replace);
}

void AuditRecord::WithholdDetail() {
  entry.detail.clear();
  detail_salt.clear();
}

std::string AuditCheckpoint::SignedMessage() const {
  return std::string(kCheckpointDomain) + "\n" + std::to_string(seq) + "\n" + hash + "\n" + time;
}

nlohmann::json AuditCheckpoint::ToJson() const {
  return {
      {"seq", seq}, {"hash", hash}, {"time", time}, {"keyId", key_id}, {"signature", signature}};
}

Result<AuditCheckpoint> AuditCheckpoint::FromJson(const nlohmann::json& j) {
  if (!j.is_object()) return Status::InvalidArgument("checkpoint: not a JSON object");
  AuditCheckpoint c;
  auto str = [&](const char* key, std::string* out) -> Status {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string() || it->get<std::string>().empty()) {
      return Status::InvalidArgument(std::string("checkpoint: '") + key +
                                     "' is missing or not a string");
    }
    *out = it->get<std::string>();
    return Status();
  };
  auto seq = j.find("seq");
  if (seq == j.end() || !seq->is_number_integer() || seq->get<int64_t>() < 0) {
    return Status::InvalidArgument("checkpoint: 'seq' is missing or not a count");
  }
  c.seq = seq->get<int64_t>();
  SEXTANT_RETURN_IF_ERROR(str("hash", &c.hash));
  SEXTANT_RETURN_IF_ERROR(str("time", &c.time));
  SEXTANT_RETURN_IF_ERROR(str("keyId", &c.key_id));
  SEXTANT_RETURN_IF_ERROR(str("signature", &c.signature));
  if (c.hash.size() != 64)
    return Status::InvalidArgument("checkpoint: 'hash' is not 64 hex digits");
  return c;
}

Result<AuditCheckpoint> SignCheckpoint(int64_t seq, const std::string& hash,
                                       const std::string& time, const report::SigningKey& key) {
  AuditCheckpoint c;
  c.seq = seq;
  c.hash = hash;
  c.time = time;
  c.key_id = key.key_id();
  SEXTANT_ASSIGN_OR_RETURN(c.signature, key.Sign(c.SignedMessage()));
  return c;
}

Status VerifyCheckpoint(const AuditCheckpoint& c, const report::VerifyingKey& key) {
  if (c.key_id != key.key_id()) {
    return Status::Unauthenticated("checkpoint of seq " + std::to_string(c.seq) +
                                   " is signed by key " + c.key_id.substr(0, 16) +
                                   ", not by the agent's audit key " + key.key_id().substr(0, 16));
  }
  Status s = key.Verify(c.SignedMessage(), c.signature);
  if (!s.ok()) {
    return Status::Unauthenticated("checkpoint of seq " + std::to_string(c.seq) +
                                   ": the signature does not verify (" + s.message() + ")");
  }
  return Status();
}

std::string NowRfc3339Ms() { return FormatRfc3339Millis(NowMs()); }

}  // namespace sextant::audit
