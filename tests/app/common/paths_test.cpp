#include "app/common/paths.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

namespace sextant {
namespace {

// Sets an environment variable for the scope of the object and restores it afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(Paths, XdgDataHomeWins) {
  ScopedEnv xdg("XDG_DATA_HOME", "/srv/data");
  ScopedEnv home("HOME", "/home/ops");
  EXPECT_EQ(DefaultConsoleStateDir().value(), std::filesystem::path("/srv/data/sextant"));
}

TEST(Paths, FallsBackToHomeAndRejectsRelativeXdg) {
  ScopedEnv xdg("XDG_DATA_HOME", "relative/dir");  // the spec says: ignore relative paths
  ScopedEnv home("HOME", "/home/ops");
  EXPECT_EQ(DefaultConsoleStateDir().value(),
            std::filesystem::path("/home/ops/.local/share/sextant"));
}

TEST(Paths, NoHomeIsAClearError) {
  ScopedEnv xdg("XDG_DATA_HOME", nullptr);
  ScopedEnv home("HOME", nullptr);
  Result<std::filesystem::path> dir = DefaultConsoleStateDir();
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.status().message().find("--state"), std::string::npos);
}

TEST(Paths, EnsurePrivateDirCreatesMode0700) {
  const auto base = std::filesystem::path(::testing::TempDir()) / "sextant-paths-test";
  std::filesystem::remove_all(base);
  const auto dir = base / "a" / "b";
  ASSERT_TRUE(EnsurePrivateDir(dir).ok());
  struct stat st {};
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_TRUE(EnsurePrivateDir(dir).ok());  // idempotent
  std::filesystem::remove_all(base);
}

}  // namespace
}  // namespace sextant
