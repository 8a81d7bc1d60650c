// The customer-owned agent policy: identity matching, default deny, strict parsing with
// line:column, and the shipped example policy.
#include "app/agent/policy/access_policy.h"

#include <gtest/gtest.h>

#include <fstream>

namespace sextant::agent {
namespace {

const char* kPolicy = R"(version: 1
roles:
  vendor-operator:
    rpcs: [WhoAmI, ApplyDeployment]
    audit_scope: own
  customer-admin:
    rpcs: [WhoAmI, ApplyDeployment, ListAuditLog]
    audit_scope: all
  special:
    rpcs: [ListAuditLog]
identities:
  - match: spiffe://example.org/vendor/
    role: vendor-operator
  - match: spiffe://example.org/vendor/special-*
    role: special
  - match: spiffe://example.org/customer/admin
    role: customer-admin
)";

TEST(AgentPolicy, MatchesExactAndPrefixLongestWins) {
  auto p = AgentPolicy::Parse(kPolicy, "policy.yaml");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ((*p)->RoleOf("spiffe://example.org/vendor/operator"), "vendor-operator");
  EXPECT_EQ((*p)->RoleOf("spiffe://example.org/vendor/special-1"), "special");
  EXPECT_EQ((*p)->RoleOf("spiffe://example.org/customer/admin"), "customer-admin");
  // Exact means exact: no prefix semantics for a rule without a trailing "/" or "*".
  EXPECT_EQ((*p)->RoleOf("spiffe://example.org/customer/admin2"), std::nullopt);
  EXPECT_EQ((*p)->RoleOf("spiffe://other.org/vendor/operator"), std::nullopt);
  // A prefix does not match itself alone (an empty name).
  EXPECT_EQ((*p)->RoleOf("spiffe://example.org/vendor/"), std::nullopt);
}

TEST(AgentPolicy, DefaultDenyNamesRoleAndRpc) {
  auto p = AgentPolicy::Parse(kPolicy, "policy.yaml");
  ASSERT_TRUE(p.ok());
  Decision d = (*p)->Decide("spiffe://example.org/vendor/operator", "ListAuditLog");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.role, "vendor-operator");
  EXPECT_NE(d.message.find("vendor-operator"), std::string::npos) << d.message;
  EXPECT_NE(d.message.find("ListAuditLog"), std::string::npos) << d.message;
  EXPECT_TRUE((*p)->Decide("spiffe://example.org/vendor/operator", "ApplyDeployment").allowed);
  Decision unknown = (*p)->Decide("spiffe://example.org/stranger", "WhoAmI");
  EXPECT_FALSE(unknown.allowed);
  EXPECT_EQ(unknown.role, "");
  EXPECT_NE(unknown.message.find("no role"), std::string::npos);
  EXPECT_FALSE((*p)->Decide("spiffe://example.org/vendor/operator", "NoSuchRpc").allowed);
}

void ExpectError(const std::string& text, const std::string& where, const std::string& what,
                 const std::set<std::string>& known = {}) {
  auto p = AgentPolicy::Parse(text, "p.yaml", known);
  ASSERT_FALSE(p.ok()) << text;
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(p.status().message().find(where), std::string::npos) << p.status().message();
  EXPECT_NE(p.status().message().find(what), std::string::npos) << p.status().message();
}

TEST(AgentPolicy, MalformedIsRejectedWithLineAndColumn) {
  ExpectError("version: 1\nroles: {a: {rpcs: [X]\nidentities: []\n", "p.yaml:", "malformed YAML");
  ExpectError("version: 1\nroles:\n  r:\n    rpc: [WhoAmI]\nidentities: []\n", "p.yaml:4:5",
              "unknown key 'rpc'");
  ExpectError(
      "version: 1\nroles:\n  r:\n    rpcs: [WhoAmI]\nidentities:\n  - match: x\n    role: r\n",
      "p.yaml:6:12", "spiffe://");
  ExpectError(
      "version: 1\nroles:\n  r:\n    rpcs: [WhoAmI]\nidentities:\n"
      "  - match: spiffe://a/b\n    role: nobody\n",
      "p.yaml:7:11", "unknown role 'nobody'");
  ExpectError("version: 2\nroles: {}\nidentities: []\n", "p.yaml:1:10", "unsupported version");
  ExpectError("version: 1\nroles:\n  r:\n    rpcs: [WhoAmI, Aply]\nidentities: []\n", "p.yaml:4:20",
              "unknown RPC 'Aply'", {"WhoAmI", "ApplyDeployment"});
  ExpectError("version: 1\nroles:\n  r:\n    audit_scope: some\nidentities: []\n", "p.yaml:4:18",
              "audit_scope");
}

TEST(AgentPolicy, HolderSwapsAtomically) {
  auto a = AgentPolicy::Parse(kPolicy, "a.yaml");
  ASSERT_TRUE(a.ok());
  PolicyHolder holder(*a);
  auto before = holder.Get();
  auto b = AgentPolicy::Parse("version: 1\nroles: {}\nidentities: []\n", "b.yaml");
  ASSERT_TRUE(b.ok());
  holder.Set(*b);
  EXPECT_EQ(holder.Get()->source(), "b.yaml");
  EXPECT_EQ(before->source(), "a.yaml");  // a reader keeps the policy it started with
  EXPECT_NE(before->digest(), holder.Get()->digest());
}

TEST(AgentPolicy, ShippedExamplePolicyHasTheFourRoles) {
  auto p = AgentPolicy::LoadFile(std::string(SEXTANT_SOURCE_DIR) +
                                 "/resources/policies/agent-policy.example.yaml");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  for (const char* role :
       {"vendor-operator", "customer-admin", "customer-auditor", "customer-app"}) {
    EXPECT_NE((*p)->Role(role), nullptr) << role;
  }
  EXPECT_TRUE((*p)->Decide("spiffe://example.org/vendor/operator", "ApplyDeployment").allowed);
  EXPECT_FALSE((*p)->Decide("spiffe://example.org/vendor/operator", "GetEgressLedger").allowed);
  EXPECT_EQ((*p)->Role("vendor-operator")->audit_scope, "own");
  EXPECT_FALSE((*p)->Decide("spiffe://example.org/customer/auditor", "ApplyDeployment").allowed);
  EXPECT_TRUE((*p)->Decide("spiffe://example.org/customer/auditor", "ListAuditLog").allowed);
  EXPECT_FALSE((*p)->Decide("spiffe://example.org/customer/app", "WhoAmI").allowed);
}

}  // namespace
}  // namespace sextant::agent
