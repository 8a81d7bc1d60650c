// The audit chain's record format, shared by the agent that writes it (app/agent/audit) and the
// console that checks what an agent sends: each record holds
//   hash = hex(sha256(prev_hash || canonical))
// where canonical is the JSON object {identity, outcome, role, rpc, seq, target, time} with
// sorted keys and no whitespace, and prev_hash of seq 1 is 64 zeros.
//
// Thread-safety: values and a verifier used by one thread at a time.
#pragma once

#include <cstdint>
#include <string>

namespace sextant::audit {

struct AuditEntry {
  std::string identity;
  std::string role;
  std::string rpc;
  std::string target;
  std::string outcome;  // "allowed", "denied", "unauthenticated", "ok", "error: CODE"
};

struct AuditRecord {
  int64_t seq = 0;
  std::string time;  // RFC 3339 UTC with milliseconds
  AuditEntry entry;
  std::string prev_hash;
  std::string hash;
  // The exact bytes the hash covers (after prev_hash).
  std::string Canonical() const;
};

struct ChainVerification {
  bool intact = true;
  int64_t records = 0;
  int64_t head_seq = 0;
  std::string head_hash;         // of the last record (64 zeros when empty)
  int64_t first_broken_seq = 0;  // 0 when intact; the seq (or position) of the first bad record
  std::string reason;            // what is wrong with it
};

inline constexpr char kGenesisHash[] =
    "0000000000000000000000000000000000000000000000000000000000000000";

// Checks the records of a chain in order, one at a time: AuditLog::Verify runs it over the
// whole file, the console over the records an agent sends. whole_chain: the records are the
// entire log (seq 1, 2, 3 ... each linked to the one before). Otherwise they are a filtered view
// (a caller's own records): each record must hash to its stated hash from its prev_hash and
// contents, seqs must increase, seq 1 must start from the genesis hash, and consecutive seqs
// must link. Not thread-safe (one per check).
class AuditChainVerifier {
 public:
  explicit AuditChainVerifier(bool whole_chain = true) : whole_chain_(whole_chain) {
    v_.head_hash = kGenesisHash;
  }
  // Adds the next record; false once the chain is broken (result() says where and why).
  bool Add(const AuditRecord& record);
  const ChainVerification& result() const { return v_; }

 private:
  bool whole_chain_;
  ChainVerification v_;
  int64_t last_seq_ = 0;
  std::string last_hash_ = kGenesisHash;
};

}  // namespace sextant::audit
