// AgentPolicy: the customer-owned policy file of an agent (YAML). It maps caller identities
// (URI SANs of client certificates) to roles, and roles to the RPCs they may call. Default deny:
// an identity with no role, or a role with no rule for an RPC, is refused.
//
//   version: 1
//   roles:
//     vendor-operator:
//       rpcs: [WhoAmI, GetAgentInfo, ApplyDeployment, ...]   # method names of AgentService
//       audit_scope: own          # "own": reads audit records of its own calls; "all"
//   identities:
//     - match: spiffe://example.org/vendor/        # a prefix when it ends with "/" or "*"
//       role: vendor-operator
//     - match: spiffe://example.org/customer/admin # exact otherwise
//       role: customer-admin
//
// Matching: exact matches win over prefixes; among prefixes, the longest wins. A malformed file
// is rejected with line and column; unknown keys are errors (a typo must not widen access).
//
// Thread-safety: an AgentPolicy is immutable after Parse; share it as shared_ptr<const>.
// PolicyHolder swaps the policy in force atomically (SIGHUP reload) and is thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/base/status.h"

namespace sextant::agent {

struct RoleRule {
  std::string name;
  std::set<std::string> rpcs;
  std::string audit_scope = "own";  // "own" or "all"
};

struct IdentityRule {
  std::string match;
  bool prefix = false;  // match is a prefix (given with a trailing "/" or "*")
  std::string role;
  int line = 0;  // 1-based line in the policy file
};

struct Decision {
  bool allowed = false;
  std::string role;     // "" when the identity has no role
  std::string message;  // why, for PERMISSION_DENIED (names the role and the RPC)
};

class AgentPolicy {
 public:
  // Parses YAML text; source names the file in error messages ("policy.yaml:12:5: ...").
  // known_rpcs, when non-empty, is the set of RPC names that exist: a rule naming another is an
  // error (catches typos).
  static Result<std::shared_ptr<const AgentPolicy>> Parse(
      const std::string& text, const std::string& source,
      const std::set<std::string>& known_rpcs = {});
  static Result<std::shared_ptr<const AgentPolicy>> LoadFile(
      const std::filesystem::path& path, const std::set<std::string>& known_rpcs = {});

  // The role of an identity, or nullopt.
  std::optional<std::string> RoleOf(const std::string& identity) const;
  // Whether identity may call rpc (a method name such as "ApplyDeployment").
  Decision Decide(const std::string& identity, const std::string& rpc) const;
  const RoleRule* Role(const std::string& name) const;

  const std::map<std::string, RoleRule>& roles() const { return roles_; }
  const std::vector<IdentityRule>& identities() const { return identities_; }
  // sha256 hex of the text it was parsed from.
  const std::string& digest() const { return digest_; }
  const std::string& source() const { return source_; }

 private:
  std::map<std::string, RoleRule> roles_;
  std::vector<IdentityRule> identities_;
  std::string digest_;
  std::string source_;
};

class PolicyHolder {
 public:
  explicit PolicyHolder(std::shared_ptr<const AgentPolicy> policy);
  std::shared_ptr<const AgentPolicy> Get() const;
  void Set(std::shared_ptr<const AgentPolicy> policy);
  int64_t loaded_at_unix_ms() const;

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const AgentPolicy> policy_;  // GUARDED_BY(mu_)
  int64_t loaded_at_unix_ms_ = 0;              // GUARDED_BY(mu_)
};

}  // namespace sextant::agent
