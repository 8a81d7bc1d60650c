// A policy reload fails closed: a broken file leaves the policy in force, marks the agent
// degraded (health and metrics) and is a record of the audit log with the error; the next good
// file takes effect, clears the condition and is a record too.
#include "app/agent/policy/policy_reload.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "app/agent/metrics/registry.h"

namespace sextant::agent {
namespace {

namespace fs = std::filesystem;

constexpr char kGood[] =
    "version: 1\nroles:\n  customer-admin:\n    rpcs: [WhoAmI]\n    audit_scope: all\n"
    "identities:\n  - match: spiffe://x/customer/admin\n    role: customer-admin\n";

TEST(PolicyReload, ABrokenFileKeepsThePolicyMarksDegradedAndIsRecorded) {
  const fs::path dir = fs::temp_directory_path() / ("sextant-reload-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path file = dir / "policy.yaml";
  std::ofstream(file) << kGood;
  const std::set<std::string> rpcs = {"WhoAmI", "ApplyDeployment"};
  auto first = AgentPolicy::LoadFile(file, rpcs);
  ASSERT_TRUE(first.ok());
  PolicyHolder holder(*first);
  auto audit = AuditLog::Open(dir);
  ASSERT_TRUE(audit.ok());
  Registry registry;
  AgentHealth health(&registry);

  // A revocation with a typo: an unknown key. Refused; the old policy stays.
  std::ofstream(file) << "version: 1\nroles:\n  customer-admin:\n    rpcz: [WhoAmI]\n";
  Status s = ReloadPolicy(file, rpcs, holder, **audit, health);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(holder.Get()->digest(), (*first)->digest());
  EXPECT_TRUE(health.degraded());
  ASSERT_EQ(health.Conditions().size(), 1u);
  EXPECT_EQ(health.Conditions()[0].name, kPolicyReloadCondition);
  EXPECT_NE(health.Conditions()[0].reason.find("policy.yaml:4:5"), std::string::npos)
      << health.Conditions()[0].reason;
  auto metrics = ParseText(registry.RenderText());
  ASSERT_TRUE(metrics.ok());
  EXPECT_EQ(metrics->Sum("sextant_agent_degraded"), 1);
  EXPECT_EQ(metrics->Sum("sextant_agent_degraded_condition", {{"condition", "policy_reload"}}), 1);
  auto recs = (*audit)->Query({.rpc = "ReloadPolicy"});
  ASSERT_TRUE(recs.ok());
  ASSERT_EQ(recs->size(), 1u);
  EXPECT_EQ((*recs)[0].entry.outcome, "refused");
  EXPECT_EQ((*recs)[0].entry.identity, "agent:sighup");
  EXPECT_NE((*recs)[0].entry.detail.find("unknown key 'rpcz'"), std::string::npos);

  // Fixed: in force, condition cleared, recorded.
  std::ofstream(file) << kGood << "# fixed\n";
  ASSERT_TRUE(ReloadPolicy(file, rpcs, holder, **audit, health).ok());
  EXPECT_NE(holder.Get()->digest(), (*first)->digest());
  EXPECT_FALSE(health.degraded());
  metrics = ParseText(registry.RenderText());
  ASSERT_TRUE(metrics.ok());
  EXPECT_EQ(metrics->Sum("sextant_agent_degraded"), 0);
  recs = (*audit)->Query({.rpc = "ReloadPolicy"});
  ASSERT_TRUE(recs.ok());
  ASSERT_EQ(recs->size(), 2u);
  EXPECT_EQ((*recs)[1].entry.outcome, "ok");
  EXPECT_NE((*recs)[1].entry.detail.find("sha256:" + holder.Get()->digest()), std::string::npos);
  auto v = (*audit)->VerifyFull();
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->intact) << v->reason;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sextant::agent
