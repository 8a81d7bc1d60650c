// The two Debian packages as a platform team receives them: names, versions, dependencies,
// files, maintainer scripts; and the agent's systemd unit as systemd itself reads it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "engine/base/build_info.h"
#include "tests/support/command.h"

namespace {

namespace fs = std::filesystem;
using sextant::testing::RunCommand;

std::string Read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class DebPackages : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (RunCommand("command -v dpkg-deb && command -v dpkg-shlibdeps").exit_code != 0) return;
    out_ = new fs::path(fs::path(::testing::TempDir()) /
                        ("sextant-debs-" + std::to_string(::getpid())));
    fs::remove_all(*out_);
    fs::create_directories(*out_);
    cpack_ = new sextant::testing::CommandResult(RunCommand(
        "cd " + std::string(SEXTANT_BINARY_DIR) + " && cpack -G DEB -B " + out_->string()));
  }
  static void TearDownTestSuite() {
    if (out_) fs::remove_all(*out_);
    delete out_;
    delete cpack_;
    out_ = nullptr;
    cpack_ = nullptr;
  }
  void SetUp() override {
    if (cpack_ == nullptr) GTEST_SKIP() << "dpkg-deb / dpkg-shlibdeps (dpkg-dev) not installed";
    ASSERT_EQ(cpack_->exit_code, 0) << cpack_->output;
  }
  static fs::path Deb(const std::string& name) {
    for (const auto& e : fs::directory_iterator(*out_)) {
      const std::string f = e.path().filename().string();
      if (f.rfind(name + "_", 0) == 0 && e.path().extension() == ".deb") return e.path();
    }
    return {};
  }
  static std::string Field(const fs::path& deb, const std::string& field) {
    return RunCommand("dpkg-deb -f " + deb.string() + " " + field).output;
  }
  static inline fs::path* out_ = nullptr;
  static inline sextant::testing::CommandResult* cpack_ = nullptr;
};

TEST_F(DebPackages, AgentPackageHasItsFilesAndNoQt) {
  const fs::path deb = Deb("sextant-agent");
  ASSERT_FALSE(deb.empty()) << "no sextant-agent .deb in " << out_->string();
  EXPECT_EQ(Field(deb, "Version"), sextant::GetBuildInfo().version + "\n");
  const std::string depends = Field(deb, "Depends");
  EXPECT_EQ(depends.find("qt"), std::string::npos) << depends;
  EXPECT_NE(depends.find("libgrpc++"), std::string::npos) << depends;
  EXPECT_NE(depends.find("libsqlite3"), std::string::npos) << depends;
  EXPECT_NE(depends.find("adduser"), std::string::npos) << depends;
  const std::string files = RunCommand("dpkg-deb -c " + deb.string()).output;
  for (const char* f : {"./usr/bin/sextant-agent", "./usr/lib/systemd/system/sextant-agent.service",
                        "./etc/sextant-agent/agent.yaml", "./etc/sextant-agent/policy.yaml",
                        "./usr/share/doc/sextant-agent/changelog.Debian.gz",
                        "./usr/share/doc/sextant-agent/copyright"}) {
    EXPECT_NE(files.find(f), std::string::npos) << f << " missing:\n" << files;
  }
  EXPECT_EQ(files.find("./usr/bin/sextant\n"), std::string::npos) << "console in agent package";
  const std::string info = RunCommand("dpkg-deb -I " + deb.string()).output;
  for (const char* s : {"conffiles", "postinst", "prerm", "postrm"}) {
    EXPECT_NE(info.find(s), std::string::npos) << s << " missing:\n" << info;
  }
  // `remove` keeps the state dir; only `purge` deletes it.
  const std::string postrm =
      RunCommand("dpkg-deb --ctrl-tarfile " + deb.string() + " | tar -xO ./postrm").output;
  EXPECT_NE(postrm.find("\"$1\" = \"purge\""), std::string::npos) << postrm;
  const auto purge_pos = postrm.find("purge");
  const auto rm_pos = postrm.find("rm -rf /var/lib/sextant-agent");
  EXPECT_NE(rm_pos, std::string::npos);
  EXPECT_GT(rm_pos, purge_pos) << "state is removed only inside the purge branch";
}

TEST_F(DebPackages, ConsolePackageHasTheConsole) {
  const fs::path deb = Deb("sextant");
  ASSERT_FALSE(deb.empty()) << "no sextant .deb in " << out_->string();
  EXPECT_EQ(Field(deb, "Package"), "sextant\n");
  const std::string files = RunCommand("dpkg-deb -c " + deb.string()).output;
  EXPECT_NE(files.find("./usr/bin/sextant\n"), std::string::npos) << files;
  EXPECT_EQ(files.find("sextant-agent"), std::string::npos) << files;
  // The data files `sextant cost`, `compliance` and `demo` read when installed.
  for (const char* f : {"./usr/share/sextant/prices/aws.csv", "./usr/share/sextant/prices/gcp.csv",
                        "./usr/share/sextant/policies/soc2-baseline.yaml",
                        "./usr/share/sextant/examples/stories260k.yaml"}) {
    EXPECT_NE(files.find(f), std::string::npos) << f << " missing:\n" << files;
  }
#if defined(SEXTANT_WITH_GUI)
  EXPECT_NE(Field(deb, "Depends").find("libqt6widgets6"), std::string::npos);
#endif
}

TEST(SystemdUnit, VerifiesCleanlyAndIsHardened) {
  const fs::path unit = fs::path(SEXTANT_SOURCE_DIR) / "packaging/systemd/sextant-agent.service";
  const std::string text = Read(unit);
  for (const char* line :
       {"ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n", "AmbientCapabilities=\n",
        "ReadWritePaths=/var/lib/sextant-agent", "Restart=on-failure", "User=sextant-agent",
        "DevicePolicy=closed", "DeviceAllow=/dev/nvidiactl rw", "DeviceAllow=/dev/kfd rw"}) {
    EXPECT_NE(text.find(line), std::string::npos) << "unit lacks " << line;
  }
  if (RunCommand("command -v systemd-analyze").exit_code != 0) {
    GTEST_SKIP() << "systemd-analyze not installed; hardening lines checked above";
  }
  // systemd-analyze verify needs ExecStart to exist: point it at the binary just built.
  const fs::path copy = fs::path(::testing::TempDir()) / "sextant-agent.service";
  std::string patched = text;
  const std::string from = "/usr/bin/sextant-agent";
  patched.replace(patched.find(from), from.size(), SEXTANT_AGENT_BIN);
  std::ofstream(copy, std::ios::trunc) << patched;
  auto r = RunCommand("systemd-analyze verify --man=no " + copy.string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // verify only warns (exit 0) about unknown keys or bad values: any output is a defect.
  EXPECT_EQ(r.output, "") << r.output;
  fs::remove(copy);
}

}  // namespace
