// `sextant demo` as a new user runs it: three real agents, the example spec validated locally
// and pushed, the same greedy output digest everywhere, and no agent left behind — after a
// normal exit, after Ctrl-C and after the demo itself is killed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/command.h"

namespace sextant {
namespace {

namespace fs = std::filesystem;
using sextant::testing::RunCommand;
using std::chrono::milliseconds;

std::string Slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Processes whose command line mentions `needle` (and runs sextant-agent): their pids.
std::vector<pid_t> AgentProcessesMentioning(const std::string& needle) {
  std::vector<pid_t> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = Slurp(e.path() / "cmdline");
    for (char& c : cmdline) {
      if (c == '\0') c = ' ';
    }
    if (cmdline.find("sextant-agent") != std::string::npos &&
        cmdline.find(needle) != std::string::npos) {
      // A zombie still has its /proc entry but an empty cmdline, so this is a live process.
      found.push_back(static_cast<pid_t>(std::stol(name)));
    }
  }
  return found;
}

bool WaitUntil(const std::function<bool()>& done, milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return true;
}

class DemoProgramTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sextant-demo-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "tmp");
    fs::create_directories(dir_ / "config");
    // The console's report key and temporary state live in the test's folder.
    env_ = "TMPDIR=" + (dir_ / "tmp").string() + " XDG_CONFIG_HOME=" + (dir_ / "config").string() +
           " ";
  }
  void TearDown() override {
    for (pid_t pid : AgentProcessesMentioning(dir_.string())) ::kill(pid, SIGKILL);
    if (!HasFailure()) fs::remove_all(dir_);
  }

  // Starts `sextant demo ARGS` in the background, stdout and stderr to files.
  pid_t StartDemo(const std::vector<std::string>& args) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      const int out = ::open((dir_ / "demo.out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int err = ::open((dir_ / "demo.err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(out, 1);
      ::dup2(err, 2);
      ::setenv("TMPDIR", (dir_ / "tmp").c_str(), 1);
      ::setenv("XDG_CONFIG_HOME", (dir_ / "config").c_str(), 1);
      std::vector<char*> argv = {const_cast<char*>(SEXTANT_CONSOLE_BIN), const_cast<char*>("demo")};
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(SEXTANT_CONSOLE_BIN, argv.data());
      ::_exit(127);
    }
    return pid;
  }

  // Exit status of pid, or -1 when it did not exit normally in time (then it is killed).
  int WaitExit(pid_t pid, milliseconds timeout) {
    int status = 0;
    if (!WaitUntil([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, timeout)) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  fs::path dir_;
  std::string env_;
};

TEST_F(DemoProgramTest, HeadlessJsonShowsIdenticalDigestsOnThreeCloudsAndLeavesNothingRunning) {
  auto r = RunCommand(env_ + "sh -c '" + SEXTANT_CONSOLE_BIN + " demo --headless -o json >" +
                      (dir_ / "demo.json").string() + "'");
  const std::string out = Slurp(dir_ / "demo.json");
  ASSERT_EQ(r.exit_code, 0) << r.output << out;
  auto j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << out;

  // The deployment validated here: its spec digest and the local greedy output digest.
  const auto& d = j["deployment"];
  const std::string local = d.value("output_digest", "");
  EXPECT_EQ(local.size(), 64u) << d.dump();
  EXPECT_EQ(d.value("spec_digest", "").size(), 64u) << d.dump();
  EXPECT_TRUE(d.value("passed", false));

  // Three targets, three cloud contexts, the same output digest everywhere.
  ASSERT_TRUE(j["targets"].is_array());
  ASSERT_EQ(j["targets"].size(), 3u) << j["targets"].dump(2);
  std::set<std::string> clouds;
  for (const auto& t : j["targets"]) {
    clouds.insert(t.value("cloud_context", ""));
    EXPECT_EQ(t.value("output_digest", ""), local) << t.dump(2);
    EXPECT_TRUE(t.value("endpoint", "").starts_with("127.0.0.1:")) << t.dump();
  }
  EXPECT_EQ(clouds, (std::set<std::string>{"aws/eu-west-1", "gcp/us-central1", "on-prem"}));
  EXPECT_TRUE(j.value("identical", false));
  EXPECT_TRUE(j["push"].value("ok", false)) << j["push"].dump();

  // Which model ran: the real stories260K when ../shared has it, else a synthesized one.
  const bool shared_model = fs::exists(fs::path(SEXTANT_SHARED_DIR) / "models/stories260K.gguf");
  EXPECT_EQ(j["model"].value("synthesized", !shared_model), !shared_model) << j["model"].dump();
  EXPECT_EQ(j["model"].value("sha256", "").size(), 64u);

  // Cost and compliance are there, one entry per target.
  ASSERT_TRUE(j["cost"].contains("targets")) << j["cost"].dump();
  EXPECT_EQ(j["cost"]["targets"].size(), 3u);
  ASSERT_TRUE(j["compliance"].contains("targets")) << j["compliance"].dump();
  EXPECT_EQ(j["compliance"]["targets"].size(), 3u);
  for (const auto& t : j["compliance"]["targets"]) {
    EXPECT_TRUE(t["verdict"] == "pass" || t["verdict"] == "fail" || t["verdict"] == "warn" ||
                t["verdict"] == "unknown")
        << t.dump();
    EXPECT_GT(t.value("pass", 0), 0) << t.dump();
  }

  // Nothing left: no agent of this run, and the temporary state is gone.
  EXPECT_TRUE(AgentProcessesMentioning(dir_.string()).empty());
  for (const auto& t : j["targets"]) {
    const pid_t pid = t.value("pid", -1);
    if (pid > 0) {
      EXPECT_EQ(Slurp(fs::path("/proc") / std::to_string(pid) / "cmdline").find("sextant-agent"),
                std::string::npos)
          << "agent " << pid << " still runs";
    }
  }
  EXPECT_FALSE(fs::exists(j.value("state_dir", "/nonexistent-but-set")))
      << j.value("state_dir", "");
}

TEST_F(DemoProgramTest, CtrlCStopsEveryAgent) {
  const fs::path state = dir_ / "state";
  const pid_t demo = StartDemo({"--headless", "--state", state.string()});
  ASSERT_GT(demo, 0);
  // Interrupt as soon as the three agents are up (the demo is then validating or pushing).
  ASSERT_TRUE(WaitUntil([&] { return AgentProcessesMentioning(state.string()).size() == 3; },
                        milliseconds(60000)))
      << Slurp(dir_ / "demo.err");
  ::kill(demo, SIGINT);
  int status = 0;
  ASSERT_TRUE(
      WaitUntil([&] { return ::waitpid(demo, &status, WNOHANG) == demo; }, milliseconds(15000)))
      << Slurp(dir_ / "demo.err");
  EXPECT_TRUE(AgentProcessesMentioning(state.string()).empty()) << Slurp(dir_ / "demo.err");
  EXPECT_TRUE(fs::exists(state / "tls" / "ca.pem"));  // a given state directory is kept
}

TEST_F(DemoProgramTest, AgentsEndWhenTheDemoIsKilled) {
  const fs::path state = dir_ / "state";
  const pid_t demo = StartDemo({"--headless", "--keep", "--state", state.string()});
  ASSERT_GT(demo, 0);
  ASSERT_TRUE(WaitUntil([&] { return AgentProcessesMentioning(state.string()).size() == 3; },
                        milliseconds(60000)))
      << Slurp(dir_ / "demo.err");
  ::kill(demo, SIGKILL);
  ::waitpid(demo, nullptr, 0);
  // The kernel tells each agent that its parent is gone (SIGTERM); they shut down on their own.
  EXPECT_TRUE(WaitUntil([&] { return AgentProcessesMentioning(state.string()).empty(); },
                        milliseconds(15000)))
      << Slurp(dir_ / "demo.err");
}

TEST_F(DemoProgramTest, AMissingAgentProgramIsAClearError) {
  auto r = RunCommand(env_ + SEXTANT_CONSOLE_BIN + " demo --headless --agent-binary " +
                      (dir_ / "no-such-agent").string() + " --state " + (dir_ / "state").string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("no-such-agent"), std::string::npos) << r.output;
  EXPECT_TRUE(AgentProcessesMentioning(dir_.string()).empty());
}

}  // namespace
}  // namespace sextant
