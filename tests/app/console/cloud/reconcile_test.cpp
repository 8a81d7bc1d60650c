#include "app/console/cloud/reconcile.h"

#include <gtest/gtest.h>

namespace sextant::console::cloud {
namespace {

CloudInstance Inst(const std::string& id, const std::string& region,
                   const std::string& state = "running") {
  CloudInstance i;
  i.instance_id = id;
  i.region = region;
  i.state = state;
  i.instance_type = "g5.xlarge";
  i.gpu_count = 1;
  return i;
}

TEST(Reconcile, UnmanagedInstancesAndUnlistedAgents) {
  std::vector<CloudInstance> instances = {Inst("i-a", "us-east-1"), Inst("i-b", "us-east-1"),
                                          Inst("i-c", "us-west-2", "stopped"),
                                          Inst("i-d", "us-west-2")};
  std::vector<AgentPlacement> agents = {
      {"edge-1", "aws", "123", "us-east-1", "i-a"},
      {"ghost", "aws", "123", "us-east-1", "i-gone"},     // region listed: unlisted
      {"far", "aws", "123", "eu-west-1", "i-far"},        // region not listed: unchecked
      {"noid", "aws", "123", "us-west-2", ""},            // no instance id: unchecked
      {"noacct", "aws", "", "us-east-1", "i-elsewhere"},  // no account id: unchecked
      {"other", "aws", "999", "us-east-1", "i-x"},        // another account: left out
      {"gcp", "gcp", "123", "us-east-1", "i-b"},          // another provider: left out
  };
  auto r = Reconcile("aws", "123", instances, {"us-east-1", "us-west-2"}, agents);
  ASSERT_EQ(r.matched.size(), 1u);
  EXPECT_EQ(r.matched[0].target, "edge-1");
  EXPECT_EQ(r.matched[0].instance.instance_id, "i-a");
  ASSERT_EQ(r.unmanaged.size(), 2u);  // i-c is stopped: no GPU spend
  EXPECT_EQ(r.unmanaged[0].instance_id, "i-b");
  EXPECT_EQ(r.unmanaged[1].instance_id, "i-d");
  ASSERT_EQ(r.unlisted.size(), 1u);
  EXPECT_EQ(r.unlisted[0].target, "ghost");
  ASSERT_EQ(r.unchecked.size(), 3u);
  EXPECT_EQ(r.unchecked[0].target, "far");
  EXPECT_EQ(r.unchecked[1].target, "noid");
  EXPECT_EQ(r.unchecked[2].target, "noacct");
  EXPECT_EQ(r.unchecked[0].note, "region eu-west-1 not listed");
  EXPECT_EQ(r.unchecked[1].note, "no instance id reported");
  EXPECT_EQ(r.unchecked[2].note, "no account id reported");
}

TEST(Reconcile, TwoAgentsClaimingOneInstanceMatchNeither) {
  // A second agent claiming i-a must not make it look managed twice, nor hide which is real:
  // the instance stays unmanaged and both agents are unchecked, saying why.
  auto r = Reconcile(
      "aws", "123", {Inst("i-a", "us-east-1")}, {"us-east-1"},
      {{"edge", "aws", "123", "us-east-1", "i-a"}, {"impostor", "aws", "123", "us-east-1", "i-a"}});
  EXPECT_TRUE(r.matched.empty());
  ASSERT_EQ(r.unmanaged.size(), 1u);
  EXPECT_EQ(r.unmanaged[0].instance_id, "i-a");
  ASSERT_EQ(r.unchecked.size(), 2u);
  EXPECT_EQ(r.unchecked[0].note, "instance i-a is claimed by 2 agents");
  EXPECT_EQ(r.unchecked[1].target, "impostor");
}

TEST(Reconcile, AClaimInAnotherRegionThanTheListingDoesNotMatch) {
  auto r = Reconcile("aws", "123", {Inst("i-a", "us-west-2")}, {"us-east-1", "us-west-2"},
                     {{"edge", "aws", "123", "us-east-1", "i-a"}});
  EXPECT_TRUE(r.matched.empty());
  EXPECT_EQ(r.unmanaged.size(), 1u);
  ASSERT_EQ(r.unchecked.size(), 1u);
  EXPECT_EQ(r.unchecked[0].note, "reports region us-east-1 but the account lists i-a in us-west-2");
}

TEST(Reconcile, PlacementFromFactsDropsMalformedIds) {
  auto good = PlacementFromFacts("edge", {{"cloud.provider", "aws"},
                                          {"cloud.account", "123456789012"},
                                          {"cloud.region", "eu-west-1"},
                                          {"cloud.instance_id", "i-0123456789abcdef0"}});
  EXPECT_EQ(good.target, "edge");
  EXPECT_EQ(good.provider, "aws");
  EXPECT_EQ(good.account_id, "123456789012");
  EXPECT_EQ(good.region, "eu-west-1");
  EXPECT_EQ(good.instance_id, "i-0123456789abcdef0");
  EXPECT_EQ(good.note, "");

  // An agent is a caller on the network: what it says is checked for shape before it is
  // looked up, and a malformed id is dropped (the agent becomes unchecked), never matched.
  auto bad = PlacementFromFacts("edge", {{"cloud.provider", "aws"},
                                         {"cloud.account", "123456789012' OR 1=1"},
                                         {"cloud.region", "eu-west-1"},
                                         {"cloud.instance_id", "i-a"}});
  EXPECT_EQ(bad.account_id, "");
  EXPECT_EQ(bad.instance_id, "");
  EXPECT_NE(bad.note.find("reported account id '123456789012' OR 1=1' is malformed for aws"),
            std::string::npos)
      << bad.note;
  EXPECT_NE(bad.note.find("reported instance id 'i-a' is malformed for aws"), std::string::npos)
      << bad.note;
  auto r = Reconcile("aws", "123456789012", {Inst("i-a", "eu-west-1")}, {"eu-west-1"}, {bad});
  EXPECT_TRUE(r.matched.empty());
  ASSERT_EQ(r.unchecked.size(), 1u);
  EXPECT_NE(r.unchecked[0].note.find("no instance id reported"), std::string::npos);

  auto none = PlacementFromFacts("bare", {});
  EXPECT_EQ(none.provider, "");
  EXPECT_EQ(none.instance_id, "");
}

TEST(Reconcile, AnAgentWithoutAccountStillMatchesItsInstance) {
  auto r = Reconcile("aws", "123", {Inst("i-a", "us-east-1")}, {"us-east-1"},
                     {{"edge", "aws", "", "us-east-1", "i-a"}});
  EXPECT_EQ(r.matched.size(), 1u);
  EXPECT_TRUE(r.unmanaged.empty());
}

}  // namespace
}  // namespace sextant::console::cloud
