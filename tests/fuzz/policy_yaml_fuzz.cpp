// The agent's access policy (YAML) on any text: an error, or a policy that answers every
// question with a decision (and denies what it does not name).
#include <cstdint>
#include <set>
#include <string>

#include "app/agent/policy/access_policy.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::set<std::string> kRpcs = {"WhoAmI", "GetAgentInfo", "ApplyDeployment",
                                              "ListAuditLog", "DeleteDeployment"};
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto policy = sextant::agent::AgentPolicy::Parse(text, "policy.yaml", kRpcs);
  if (!policy.ok()) {
    SEXTANT_FUZZ_CHECK(!policy.status().message().empty());
    return 0;
  }
  for (const char* who : {"spiffe://example.org/vendor/op", "spiffe://example.org/customer/admin",
                          "", "spiffe://other/x"}) {
    for (const char* rpc : {"WhoAmI", "ApplyDeployment", "NotAnRpc"}) {
      const auto d = (*policy)->Decide(who, rpc);
      if (std::string(rpc) == "NotAnRpc") SEXTANT_FUZZ_CHECK(!d.allowed);
      if (!d.allowed) SEXTANT_FUZZ_CHECK(!d.message.empty());
    }
  }
  return 0;
}
