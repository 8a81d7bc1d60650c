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
}

TEST(Reconcile, AnAgentWithoutAccountStillMatchesItsInstance) {
  auto r = Reconcile("aws", "123", {Inst("i-a", "us-east-1")}, {"us-east-1"},
                     {{"edge", "aws", "", "us-east-1", "i-a"}});
  EXPECT_EQ(r.matched.size(), 1u);
  EXPECT_TRUE(r.unmanaged.empty());
}

}  // namespace
}  // namespace sextant::console::cloud
