#include "engine/base/build_info.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace sextant {
namespace {

TEST(BuildInfo, NamesVersionCommitTypeAndBackends) {
  const BuildInfo& info = GetBuildInfo();
  EXPECT_FALSE(info.version.empty());
  EXPECT_FALSE(info.git_commit.empty());
  EXPECT_FALSE(info.build_type.empty());
  ASSERT_FALSE(info.backends.empty());
  EXPECT_EQ(info.backends.front(), "cpu");  // the CPU backend is always compiled in
#if defined(SEXTANT_HAVE_CUDA)
  EXPECT_NE(std::find(info.backends.begin(), info.backends.end(), "cuda"), info.backends.end());
#else
  EXPECT_EQ(std::find(info.backends.begin(), info.backends.end(), "cuda"), info.backends.end());
#endif
#if defined(SEXTANT_HAVE_HIP)
  EXPECT_NE(std::find(info.backends.begin(), info.backends.end(), "hip"), info.backends.end());
#else
  EXPECT_EQ(std::find(info.backends.begin(), info.backends.end(), "hip"), info.backends.end());
#endif
  const std::string line = info.VersionLine("sextant");
  EXPECT_NE(line.find("sextant " + info.version), std::string::npos) << line;
  EXPECT_NE(line.find("commit " + info.git_commit), std::string::npos) << line;
  EXPECT_NE(line.find("backends: cpu"), std::string::npos) << line;
  EXPECT_EQ(info.BuildId(), info.version + "+" + info.git_commit);
}

}  // namespace
}  // namespace sextant
