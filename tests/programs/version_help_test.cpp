// The programs as users run them: --version and --help, exit codes.
#include <gtest/gtest.h>

#include <string>

#include "engine/base/build_info.h"
#include "tests/support/command.h"

namespace {

using sextant::testing::CommandResult;
using sextant::testing::RunCommand;

void ExpectVersionLine(const char* bin, const std::string& program) {
  CommandResult r = RunCommand(std::string(bin) + " --version");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const auto& info = sextant::GetBuildInfo();
  EXPECT_NE(r.output.find(program + " " + info.version), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("commit "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(info.build_type), std::string::npos) << r.output;
  std::string backends;
  for (const auto& b : info.backends) backends += (backends.empty() ? "" : ",") + b;
  EXPECT_NE(r.output.find("backends: " + backends), std::string::npos) << r.output;
}

TEST(Programs, ConsoleVersionNamesBackends) { ExpectVersionLine(SEXTANT_CONSOLE_BIN, "sextant"); }

TEST(Programs, AgentVersionNamesBackends) { ExpectVersionLine(SEXTANT_AGENT_BIN, "sextant-agent"); }

TEST(Programs, HelpExitsZeroAndListsVerbs) {
  CommandResult r = RunCommand(std::string(SEXTANT_CONSOLE_BIN) + " --help");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("--version"), std::string::npos) << r.output;
#if defined(SEXTANT_WITH_GUI)
  EXPECT_NE(r.output.find("gui"), std::string::npos) << r.output;
#endif
  CommandResult a = RunCommand(std::string(SEXTANT_AGENT_BIN) + " --help");
  EXPECT_EQ(a.exit_code, 0) << a.output;
  EXPECT_NE(a.output.find("--version"), std::string::npos) << a.output;
}

TEST(Programs, UnknownOptionIsAUsageError) {
  CommandResult r = RunCommand(std::string(SEXTANT_CONSOLE_BIN) + " --no-such-flag");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  CommandResult a = RunCommand(std::string(SEXTANT_AGENT_BIN) + " --no-such-flag");
  EXPECT_EQ(a.exit_code, 2) << a.output;
}

#if defined(SEXTANT_WITH_GUI)
TEST(Programs, NoDisplayExplainsTheAlternatives) {
  CommandResult r = RunCommand("env -u DISPLAY -u WAYLAND_DISPLAY -u QT_QPA_PLATFORM " +
                               std::string(SEXTANT_CONSOLE_BIN));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("no display"), std::string::npos) << r.output;
}
#endif

}  // namespace
