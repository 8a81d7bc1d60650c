// `sextant tui` in a real terminal: tmux runs it in an 80x24 window, send-keys types, and
// capture-pane reads the screen. The agents are real `sextant-agent` processes on 127.0.0.1
// (mutual TLS with certificates from `sextant-agent certs init`), registered as targets with
// `sextant targets add`. Skipped, saying why, where tmux is not installed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/command.h"

namespace sextant::programs {
namespace {

namespace fs = std::filesystem;
using sextant::testing::RunCommand;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

std::string Slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::vector<std::string> Lines(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string line;
  while (std::getline(ss, line)) out.push_back(line);
  return out;
}

// One `sextant-agent serve` process with its own config and state.
class AgentProcess {
 public:
  explicit AgentProcess(fs::path dir) : dir_(std::move(dir)) {}
  ~AgentProcess() { Kill(); }

  void Start() {
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      const int fd = ::open((dir_ / "agent.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      const std::string config = (dir_ / "agent.yaml").string();
      ::execl(SEXTANT_AGENT_BIN, SEXTANT_AGENT_BIN, "serve", "--config", config.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  std::string WaitForAddress() {
    const auto end = Clock::now() + milliseconds(15000);
    while (Clock::now() < end) {
      std::string addr = Slurp(dir_ / "state" / "grpc.addr");
      if (!addr.empty() && addr.back() == '\n') {
        addr.pop_back();
        return addr;
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    ADD_FAILURE() << "agent did not listen in time: " << Slurp(dir_ / "agent.log");
    return "";
  }
  void Kill() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

 private:
  fs::path dir_;
  pid_t pid_ = -1;
};

class TuiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (RunCommand("command -v tmux").exit_code != 0) {
      GTEST_SKIP() << "tmux is not installed (apt-get install tmux): the terminal UI is tested "
                      "in a real terminal through tmux";
    }
    dir_ = fs::temp_directory_path() /
           ("sextant-tui-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    socket_ = "sextant-tui-" + std::to_string(::getpid());
    auto r = sextant::testing::MakeTestPki(SEXTANT_CONSOLE_BIN, SEXTANT_AGENT_BIN,
                                           (dir_ / "tls").string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  void TearDown() override {
    if (!socket_.empty()) RunCommand("tmux -L " + socket_ + " kill-server");
    agents_.clear();
    std::error_code ec;  // the UI may still be closing its store as the window goes
    if (!HasFailure() && !dir_.empty()) fs::remove_all(dir_, ec);
  }

  // Starts an agent named `name` in `region` and registers it as a target of the console.
  void AddAgent(const std::string& name, const std::string& provider, const std::string& region) {
    const fs::path d = dir_ / name;
    fs::create_directories(d);
    fs::copy_file(fs::path(SEXTANT_SOURCE_DIR) / "resources/policies/agent-policy.example.yaml",
                  d / "policy.yaml");
    std::ofstream(d / "agent.yaml") << "name: " << name
                                    << "\n"
                                       "grpc:\n"
                                       "  listen: 127.0.0.1:0\n"
                                       "  ca: ../tls/ca.pem\n"
                                       "  cert: ../tls/server.pem\n"
                                       "  key: ../tls/server.key\n"
                                       "http:\n"
                                       "  listen: 127.0.0.1:0\n"
                                       "policy: policy.yaml\n"
                                       "state_dir: state\n"
                                       "cloud:\n"
                                       "  provider: "
                                    << provider << "\n  region: " << region
                                    << "\n"
                                       "limits:\n"
                                       "  shutdown_grace_ms: 500\n";
    auto agent = std::make_unique<AgentProcess>(d);
    agent->Start();
    const std::string addr = agent->WaitForAddress();
    ASSERT_FALSE(addr.empty());
    agents_.push_back(std::move(agent));
    const fs::path tls = dir_ / "tls";
    auto r = RunCommand(std::string(SEXTANT_CONSOLE_BIN) + " targets add " + name + " --endpoint " +
                        addr + " --ca " + (tls / "ca.pem").string() + " --cert " +
                        (tls / "vendor-operator.pem").string() + " --key " +
                        (tls / "vendor-operator.key").string() + " --state " + State());
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }

  std::string State() const { return (dir_ / "console").string(); }

  std::string Tmux(const std::string& args) {
    return RunCommand("tmux -L " + socket_ + " " + args).output;
  }

  // A shell in an 80x24 tmux window, with `sextant tui` started in it.
  void StartTui(const std::string& extra = "") {
    std::ofstream(dir_ / "shell.rc") << "PS1='$ '\n";
    Tmux("new-session -d -x 80 -y 24 -s tui " +
         Quote("env -i PATH=/usr/bin:/bin HOME=" + dir_.string() +
               " TERM=screen bash --noprofile --rcfile " + (dir_ / "shell.rc").string() + " -i"));
    const std::string cmd = std::string(SEXTANT_CONSOLE_BIN) + " tui --state " + State() +
                            " --stale-after 3 --interval-ms 500 --refresh-ms 250" + extra +
                            "; echo exit-status=$?";
    Keys(Quote(cmd) + " Enter");
  }

  void Keys(const std::string& keys) { Tmux("send-keys -t tui " + keys); }
  // Literal text (no key names).
  void Type(const std::string& text) { Tmux("send-keys -t tui -l " + Quote(text)); }

  std::string Screen() { return Tmux("capture-pane -p -t tui"); }

  // Waits until `pred` holds for the screen; returns the last screen seen.
  std::string WaitFor(const std::function<bool(const std::string&)>& pred, milliseconds timeout,
                      bool* ok = nullptr) {
    const auto end = Clock::now() + timeout;
    std::string s;
    while (Clock::now() < end) {
      s = Screen();
      if (pred(s)) {
        if (ok) *ok = true;
        return s;
      }
      std::this_thread::sleep_for(milliseconds(100));
    }
    if (ok) *ok = false;
    return s;
  }
  std::string WaitForText(const std::string& text, milliseconds timeout, bool* ok) {
    return WaitFor([&](const std::string& s) { return s.find(text) != std::string::npos; }, timeout,
                   ok);
  }

  fs::path dir_;
  std::string socket_;
  std::vector<std::unique_ptr<AgentProcess>> agents_;
};

bool HasRowFor(const std::string& screen, const std::string& target) {
  for (const auto& l : Lines(screen)) {
    if (l.rfind(" " + target + " ", 0) == 0) return true;
  }
  return false;
}

TEST_F(TuiTest, FleetViewListsTheAgentsUnderAnUncutHeaderAt80x24) {
  AddAgent("alpha", "aws", "eu-west-1");
  AddAgent("beta", "gcp", "us-central1");
  AddAgent("gamma", "on-prem", "dc1");
  StartTui();
  bool ok = false;
  std::string s = WaitForText("targets 3/3 connected", milliseconds(20000), &ok);
  ASSERT_TRUE(ok) << s;
  s = WaitFor(
      [](const std::string& x) {
        return HasRowFor(x, "alpha") && HasRowFor(x, "beta") && HasRowFor(x, "gamma") &&
               x.find("aws/eu-west-1") != std::string::npos;
      },
      milliseconds(10000), &ok);
  ASSERT_TRUE(ok) << s;
  const auto lines = Lines(s);
  ASSERT_GE(lines.size(), 4u) << s;
  // The header names the console as the agents see it, and says how fresh the data is; neither
  // line is cut at 80 columns.
  EXPECT_EQ(lines[0].rfind(" Sextant  spiffe://example.org/vendor/", 0), 0u) << s;
  EXPECT_NE(lines[0].find("(vendor-operator)"), std::string::npos) << s;
  EXPECT_TRUE(std::regex_search(
      lines[1],
      std::regex("^ targets 3/3 connected  alerts [0-9]+  updated [0-9]{2}:[0-9]{2}:[0-9]{2}Z")))
      << s;
  for (const auto& l : lines) EXPECT_LE(l.size(), 80u) << l;
  EXPECT_NE(lines[2].find("fleet [3]"), std::string::npos) << s;
  EXPECT_NE(s.find("gcp/us-central1"), std::string::npos) << s;
  for (const char* t : {"alpha", "beta", "gamma"}) {
    for (const auto& l : lines) {
      if (l.rfind(std::string(" ") + t + " ", 0) == 0) {
        EXPECT_NE(l.find("connected"), std::string::npos) << l;
      }
    }
  }

  // A larger window: the same rows, laid out again.
  Tmux("resize-window -t tui -x 140 -y 40");
  s = WaitFor([](const std::string& x) { return Lines(x).size() >= 39 && HasRowFor(x, "gamma"); },
              milliseconds(5000), &ok);
  EXPECT_TRUE(ok) << s;
  Tmux("resize-window -t tui -x 80 -y 24");
  s = WaitFor([](const std::string& x) { return Lines(x).size() <= 24 && HasRowFor(x, "gamma"); },
              milliseconds(5000), &ok);
  EXPECT_TRUE(ok) << s;

  // Enter opens the target; Esc comes back.
  Keys("Enter");
  s = WaitForText("target alpha", milliseconds(5000), &ok);
  EXPECT_TRUE(ok) << s;
  EXPECT_NE(s.find("fleet > target"), std::string::npos) << s;
  Keys("Escape");
  s = WaitForText("fleet [3]", milliseconds(5000), &ok);
  EXPECT_TRUE(ok) << s;
}

TEST_F(TuiTest, SlashFiltersTheCurrentView) {
  AddAgent("alpha", "aws", "eu-west-1");
  AddAgent("beta", "gcp", "us-central1");
  AddAgent("gamma", "on-prem", "dc1");
  StartTui();
  bool ok = false;
  std::string s = WaitFor(
      [](const std::string& x) {
        return HasRowFor(x, "alpha") && HasRowFor(x, "beta") && HasRowFor(x, "gamma");
      },
      milliseconds(20000), &ok);
  ASSERT_TRUE(ok) << s;
  Keys("/");
  Type("central");
  s = WaitFor([](const std::string& x) { return !HasRowFor(x, "alpha"); }, milliseconds(5000), &ok);
  EXPECT_TRUE(ok) << s;
  Keys("Enter");
  s = WaitForText("fleet [1/3]  /central", milliseconds(5000), &ok);
  EXPECT_TRUE(ok) << s;
  EXPECT_TRUE(HasRowFor(s, "beta")) << s;
  EXPECT_FALSE(HasRowFor(s, "alpha")) << s;
  EXPECT_FALSE(HasRowFor(s, "gamma")) << s;
  // A filter that matches nothing says so; Esc clears it.
  Keys("/");
  Type("zzz");
  Keys("Enter");
  s = WaitForText("no row matches /zzz", milliseconds(5000), &ok);
  EXPECT_TRUE(ok) << s;
  Keys("Escape");
  s = WaitFor(
      [](const std::string& x) {
        return HasRowFor(x, "alpha") && HasRowFor(x, "beta") && HasRowFor(x, "gamma");
      },
      milliseconds(5000), &ok);
  EXPECT_TRUE(ok) << s;
}

TEST_F(TuiTest, KillingAnAgentRaisesAnAlertWithinItsDeadline) {
  AddAgent("alpha", "aws", "eu-west-1");
  AddAgent("beta", "gcp", "us-central1");
  StartTui(" --view alerts");
  bool ok = false;
  std::string s = WaitForText("targets 2/2 connected", milliseconds(20000), &ok);
  ASSERT_TRUE(ok) << s;
  EXPECT_EQ(s.find("unreachable"), std::string::npos) << s;
  const auto killed_at = Clock::now();
  agents_[1]->Kill();
  // The stream breaks at once (unreachable); at the latest the target goes stale after 3 s.
  s = WaitFor(
      [](const std::string& x) {
        for (const auto& l : Lines(x)) {
          if (std::regex_search(l,
                                std::regex("^ (critical|warning) +(unreachable|stale) +beta "))) {
            return x.find("targets 1/2 connected") != std::string::npos;
          }
        }
        return false;
      },
      milliseconds(10000), &ok);
  const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - killed_at).count();
  ASSERT_TRUE(ok) << "no alert for the killed agent after " << took << " ms:\n" << s;
  std::cout << "alert raised " << took << " ms after the agent was killed\n";
  // The alert says since when.
  EXPECT_TRUE(std::regex_search(s, std::regex("beta +[0-9]{2}:[0-9]{2}:[0-9]{2}Z"))) << s;
  EXPECT_FALSE(std::regex_search(s, std::regex("(unreachable|stale) +alpha"))) << s;
}

TEST_F(TuiTest, QuitExitsCleanlyAndRestoresTheTerminal) {
  AddAgent("alpha", "aws", "eu-west-1");
  StartTui(" --readonly");
  bool ok = false;
  std::string s = WaitForText("targets 1/1 connected", milliseconds(20000), &ok);
  ASSERT_TRUE(ok) << s;
  EXPECT_NE(s.find("[read-only]"), std::string::npos) << s;
  // Keys, views, an unknown command.
  Keys("?");
  s = WaitForText(":fleet :deploy :alerts", milliseconds(5000), &ok);
  EXPECT_TRUE(ok) << s;
  Keys("x");
  Keys(":");
  Type("deploy");
  Keys("Enter");
  s = WaitForText("deploy [0]", milliseconds(5000), &ok);
  EXPECT_TRUE(ok) << s;
  Keys(":");
  Type("nonsense");
  Keys("Enter");
  s = WaitForText("unknown command :nonsense", milliseconds(5000), &ok);
  EXPECT_TRUE(ok) << s;
  for (const char* v : {"audit", "cost", "alerts", "fleet"}) {
    Keys(":");
    Type(v);
    Keys("Enter");
    s = WaitForText(std::string(" ") + v + " [", milliseconds(5000), &ok);
    EXPECT_TRUE(ok) << v << "\n" << s;
  }

  Keys(":");
  Type("quit");
  Keys("Enter");
  // The typed command line holds "exit-status=$?"; the shell's answer is a line of its own.
  s = WaitFor(
      [](const std::string& x) { return std::regex_search(x, std::regex("\nexit-status=[0-9]")); },
      milliseconds(10000), &ok);
  ASSERT_TRUE(ok) << s;
  EXPECT_TRUE(std::regex_search(s, std::regex("\nexit-status=0\n"))) << s;
  // The shell is back on the normal screen, echoing and in canonical mode.
  EXPECT_EQ(s.find("targets 1/1"), std::string::npos) << s;
  Type("stty -a | tr ' ;' '\\n\\n' | grep -E '^-?(echo|icanon)$' | tr '\\n' ' '; echo :stty");
  Keys("Enter");
  s = WaitFor(
      [](const std::string& x) {
        return std::regex_search(x, std::regex("(^|\\s)-?icanon -?echo :stty"));
      },
      milliseconds(5000), &ok);
  EXPECT_TRUE(std::regex_search(s, std::regex("(^|\\s)icanon echo :stty"))) << s;
}

}  // namespace
}  // namespace sextant::programs
