#include "app/agent/replicas/placement.h"

#include <gtest/gtest.h>

namespace sextant::agent {
namespace {

agent::InventoryInfo Inventory() {
  agent::InventoryInfo inv;
  inv.devices.push_back({.id = "cpu", .kind = "cpu", .model = "Some CPU", .cores = 8});
  inv.devices.push_back({.id = "gpu1", .kind = "cuda", .model = "NVIDIA H100 80GB HBM3"});
  inv.devices.push_back({.id = "gpu0", .kind = "cuda", .model = "NVIDIA H100 80GB HBM3"});
  inv.devices.push_back({.id = "gpu2", .kind = "rocm", .model = "AMD Instinct MI300X"});
  return inv;
}

TEST(Placement, CpuReplicasGetThreads) {
  auto share = PlaceReplica(Inventory(), {.gpu_count = 0, .cpu_threads = 4}, {});
  ASSERT_TRUE(share.ok());
  EXPECT_TRUE(share->gpus.empty());
  EXPECT_EQ(share->Describe(), "cpu x4 threads");
}

TEST(Placement, GpusAreTakenWholeLowestIdFirstAndNeverShared) {
  auto a = PlaceReplica(Inventory(), {.gpu_count = 1}, {});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->gpus, std::vector<std::string>{"gpu0"});
  auto b = PlaceReplica(Inventory(), {.gpu_count = 1}, {"gpu0"});
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->Describe(), "gpu1");
  auto c = PlaceReplica(Inventory(), {.gpu_count = 1}, {"gpu0", "gpu1", "gpu2"});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(c.status().message(),
            "needs 1 GPU; the agent has 3 such GPUs, 3 in use by other replicas");
}

TEST(Placement, AReplicasGpusAreOfOneVendor) {
  // gpu1 (NVIDIA) and gpu2 (AMD) are free, but one engine cannot span both.
  auto mixed = PlaceReplica(Inventory(), {.gpu_count = 2}, {"gpu0"});
  ASSERT_FALSE(mixed.ok());
  EXPECT_EQ(mixed.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(mixed.status().message(),
            "needs 2 GPUs; the agent has 3 such GPUs, 1 in use by other replicas, and no vendor "
            "has 2 free (a replica's GPUs are of one vendor): 1 cuda, 1 rocm");
  // With both NVIDIA GPUs free, the pair is NVIDIA; with one, two AMD GPUs are taken instead.
  agent::InventoryInfo inv = Inventory();
  inv.devices.push_back({.id = "gpu3", .kind = "rocm", .model = "AMD Instinct MI300X"});
  EXPECT_EQ(PlaceReplica(inv, {.gpu_count = 2}, {})->Describe(), "gpu0,gpu1");
  EXPECT_EQ(PlaceReplica(inv, {.gpu_count = 2}, {"gpu1"})->Describe(), "gpu2,gpu3");
}

TEST(Placement, DeviceNumbersAreOrderedAsNumbers) {
  agent::InventoryInfo inv;
  for (const char* id : {"gpu10", "gpu9", "gpu2", "gpu11", "gpu1"}) {
    inv.devices.push_back({.id = id, .kind = "cuda", .model = "NVIDIA H200"});
  }
  EXPECT_EQ(PlaceReplica(inv, {.gpu_count = 3}, {})->Describe(), "gpu1,gpu2,gpu9");
  EXPECT_EQ(PlaceReplica(inv, {.gpu_count = 2}, {"gpu1", "gpu2", "gpu9"})->Describe(),
            "gpu10,gpu11");
}

TEST(Placement, TheGpuModelOfTheSpecIsRespected) {
  auto h100 = PlaceReplica(Inventory(), {.gpu_count = 2, .gpu_model = "NVIDIA H100 80GB HBM3"}, {});
  ASSERT_TRUE(h100.ok());
  EXPECT_EQ(h100->Describe(), "gpu0,gpu1");
  auto mi = PlaceReplica(Inventory(), {.gpu_count = 2, .gpu_model = "AMD Instinct MI300X"}, {});
  ASSERT_FALSE(mi.ok());
  EXPECT_EQ(mi.status().message(),
            "needs 2 GPUs of model AMD Instinct MI300X; the agent has 1 such GPU, 0 in use by "
            "other replicas");
  auto none = PlaceReplica(agent::InventoryInfo{}, {.gpu_count = 1}, {});
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("the agent has 0 such GPUs"), std::string::npos);
}

TEST(Placement, DeviceOrdinalIsTheVendorsIndexOfTheGpu) {
  // As the agent's inventory lists them: NVIDIA devices (NVML index), then ROCm ones numbered
  // after them.
  agent::InventoryInfo inv;
  inv.devices.push_back({.id = "gpu0", .kind = "cuda"});
  inv.devices.push_back({.id = "gpu1", .kind = "cuda"});
  inv.devices.push_back({.id = "gpu2", .kind = "rocm"});
  inv.devices.push_back({.id = "gpu3", .kind = "rocm"});
  EXPECT_EQ(DeviceOrdinal(inv, "gpu0").value(), 0);
  EXPECT_EQ(DeviceOrdinal(inv, "gpu1").value(), 1);
  EXPECT_EQ(DeviceOrdinal(inv, "gpu2").value(), 0);
  EXPECT_EQ(DeviceOrdinal(inv, "gpu3").value(), 1);
  // A device NVML could not read is not listed; the others keep their index.
  agent::InventoryInfo gap;
  gap.devices.push_back({.id = "gpu1", .kind = "cuda"});
  EXPECT_EQ(DeviceOrdinal(gap, "gpu1").value(), 1);
  EXPECT_EQ(DeviceOrdinal(agent::InventoryInfo{}, "gpu12").value(), 12);
  for (const char* bad : {"cpu", "gpu", "", "gpu99999999999"}) {
    Result<int> ordinal = DeviceOrdinal(inv, bad);
    ASSERT_FALSE(ordinal.ok()) << bad;
    EXPECT_EQ(ordinal.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(ordinal.status().message().find("'" + std::string(bad) + "'"), std::string::npos);
  }
}

}  // namespace
}  // namespace sextant::agent
