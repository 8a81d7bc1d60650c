#include "engine/backends/registry.h"

#include <gtest/gtest.h>

namespace sextant {
namespace {

TEST(BackendRegistry, CpuIsAlwaysAvailable) {
  Result<BackendChoice> c = ChooseBackend("cpu");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->kind, BackendKind::kCpu);
  EXPECT_EQ(BackendName(c->kind), "cpu");
}

TEST(BackendRegistry, AutoAlwaysResolvesAndExplainsACpuFallback) {
  Result<BackendChoice> c = ChooseBackend("auto");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  if (c->kind == BackendKind::kCpu) {
    EXPECT_NE(c->note.find("using the CPU"), std::string::npos) << c->note;
  }
}

TEST(BackendRegistry, UnknownNameIsAnInvalidArgument) {
  Result<BackendChoice> c = ChooseBackend("tpu");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("auto, cpu, cuda or hip"), std::string::npos);
}

TEST(BackendRegistry, ExplicitGpuWithoutDeviceIsAnError) {
  for (const char* name : {"cuda", "hip"}) {
    Result<BackendChoice> c = ChooseBackend(name);
    if (c.ok()) continue;  // a machine with that GPU
    EXPECT_TRUE(c.status().code() == StatusCode::kFailedPrecondition ||
                c.status().code() == StatusCode::kUnavailable)
        << c.status().ToString();
  }
}

}  // namespace
}  // namespace sextant
