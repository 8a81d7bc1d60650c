#include "app/audit/egress_ledger.h"

#include <algorithm>
#include <chrono>

namespace sextant::agent {

EgressLedger::EgressLedger()
    : since_unix_ms_(std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count()) {}

bool EgressLedger::Record(const std::string& identity, const std::string& role,
                          const std::string& rpc, const std::string& kind, int64_t bytes) {
  if (kind == "payload" ||
      std::find(kEgressKinds.begin(), kEgressKinds.end(), kind) == kEgressKinds.end()) {
    return false;
  }
  std::lock_guard<std::mutex> lock(mu_);
  EgressRow& row = rows_[{identity, rpc, kind}];
  row.identity = identity;
  row.role = role;
  row.rpc = rpc;
  row.kind = kind;
  row.messages += 1;
  row.bytes += bytes;
  return true;
}

std::vector<EgressRow> EgressLedger::Rows() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<EgressRow> out;
  out.reserve(rows_.size());
  for (const auto& [key, row] : rows_) out.push_back(row);
  return out;
}

std::map<std::string, int64_t> EgressLedger::VendorBytesByKind() const {
  std::map<std::string, int64_t> out;
  for (const auto& k : kEgressKinds) out[k] = 0;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [key, row] : rows_) {
    if (row.role.rfind("vendor", 0) == 0) out[row.kind] += row.bytes;
  }
  return out;
}

}  // namespace sextant::agent
