#include "app/common/audit_chain.h"

#include <nlohmann/json.hpp>

#include <utility>

#include "app/common/sha256.h"

namespace sextant::audit {

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
  return j.dump(-1, ' ', /*ensure_ascii=*/true);
}

}  // namespace sextant::audit
