// An agent killed (SIGKILL) in the middle of a rollout: three real sextant-agent processes, the
// console pushing to them from this process. Whatever moment the kill lands, the fleet ends
// consistent: the killed agent's durable state holds the previous deployment or the whole new
// one (never a part, never a second generation of the same spec), the others are rolled back,
// and after the agent restarts `rollback` (or a new push) brings every target to one state.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "app/common/deployment_spec.h"
#include "app/common/signing.h"
#include "app/common/validation_runner.h"
#include "app/console/store/console_database.h"
#include "connectors/agent/agent_client.h"
#include "connectors/console/push.h"
#include "engine/base/sha256.h"
#include "tests/support/command.h"

namespace sextant::rpc {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

fs::path TinyModel() { return fs::path(SEXTANT_SHARED_DIR) / "models" / "stories260K.gguf"; }

std::string Slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    return 0;
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// One sextant-agent process with its own config, state dir and model store.
class Agent {
 public:
  ~Agent() { Kill(); }
  void Start() {
    fs::remove(dir / "state" / "grpc.addr");
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open((dir / "agent.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      const std::string config = (dir / "agent.yaml").string();
      ::execl(SEXTANT_AGENT_BIN, SEXTANT_AGENT_BIN, "serve", "--config", config.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  bool WaitListening() {
    const auto end = std::chrono::steady_clock::now() + milliseconds(20000);
    while (std::chrono::steady_clock::now() < end) {
      const std::string addr = Slurp(dir / "state" / "grpc.addr");
      if (!addr.empty() && addr.back() == '\n') return true;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    return false;
  }
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  std::string name;
  fs::path dir;
  int port = 0;

 private:
  pid_t pid_ = -1;
};

class PushKillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(TinyModel())) GTEST_SKIP() << "no " << TinyModel();
    root_ = fs::temp_directory_path() /
            ("sextant-pushkill-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
    auto r = sextant::testing::MakeTestPki(SEXTANT_CONSOLE_BIN, SEXTANT_AGENT_BIN,
                                           (root_ / "tls").string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    auto key = report::SigningKey::Generate();
    ASSERT_TRUE(key.ok());
    key_ = std::make_unique<report::SigningKey>(std::move(*key));
    ASSERT_TRUE(key_->Save(root_ / "console-key.pem").ok());
    std::ofstream(root_ / "console-key.pub.pem") << key_->public_key().Pem();
    // The customer's approver key: the agents admit what it approves.
    r = sextant::testing::RunCommand(std::string(SEXTANT_AGENT_BIN) + " approve keygen --out " +
                                     (root_ / "customer").string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    fs::copy_file(fs::path(SEXTANT_SOURCE_DIR) / "resources/policies/agent-policy.example.yaml",
                  root_ / "policy.yaml");
    auto st = console::ConsoleDatabase::Open(root_ / "console");
    ASSERT_TRUE(st.ok());
    store_ = std::move(*st);
    for (int i = 0; i < 3; ++i) {
      auto a = std::make_unique<Agent>();
      a->name = "agent-" + std::to_string(i);
      a->dir = root_ / a->name;
      a->port = FreePort();
      ASSERT_GT(a->port, 0);
      fs::create_directories(a->dir / "models");
      fs::copy_file(TinyModel(), a->dir / "models" / TinyModel().filename());
      std::ofstream(a->dir / "agent.yaml")
          << "name: " << a->name << "\ngrpc:\n  listen: 127.0.0.1:" << a->port
          << "\n  ca: ../tls/ca.pem\n  cert: ../tls/server.pem\n  key: ../tls/server.key\n"
             "http:\n  listen: 127.0.0.1:0\npolicy: ../policy.yaml\nstate_dir: state\n"
             "model_store: models\nconsole_keys:\n  - ../console-key.pub.pem\n"
             "admission:\n  approval_keys: [../customer/approver.pem]\n"
             "  approvals: ../customer/approvals.jsonl\n"
             "limits:\n  shutdown_grace_ms: 1000\n";
      a->Start();
      ASSERT_TRUE(a->WaitListening()) << Slurp(a->dir / "agent.log");
      console::Target t;
      t.name = a->name;
      t.endpoint = "127.0.0.1:" + std::to_string(a->port);
      t.ca_path = (root_ / "tls" / "ca.pem").string();
      t.cert_path = (root_ / "tls" / "vendor-operator.pem").string();
      t.key_path = (root_ / "tls" / "vendor-operator.key").string();
      t.server_name = "localhost";
      ASSERT_TRUE(store_->targets().Add(t).ok());
      agents_.push_back(std::move(a));
    }
    // The spec, validated here (CPU) and signed with the console's key.
    auto sha = Sha256FileHex(TinyModel());
    ASSERT_TRUE(sha.ok());
    spec_file_ = root_ / "tiny.yaml";
    std::ofstream(spec_file_) << "apiVersion: sextant/v1\nkind: Deployment\nname: tiny\n"
                                 "model:\n  uri: file://stories260K.gguf\n  sha256: "
                              << *sha
                              << "\nengine:\n  backend: cpu\n  threads: 1\n"
                                 "  contextLength: 256\nvalidation:\n  maxTokens: 16\n"
                                 "  prompts:\n    - Once upon a time\n";
    auto spec = spec::LoadDeploymentSpec(spec_file_);
    ASSERT_TRUE(spec.ok()) << spec.status().ToString();
    validate::ValidateOptions vo;
    vo.model_dir = TinyModel().parent_path();
    vo.threads = 1;
    auto run = validate::RunValidation(*spec, vo);
    ASSERT_TRUE(run.ok()) << run.status().ToString();
    auto signed_report = report::SignReport(run->report, *key_);
    ASSERT_TRUE(signed_report.ok());
    ASSERT_TRUE(store_->reports().Add(run->report, *signed_report).ok());
    digest_ = spec::SpecDigest(*spec);
    // The customer approves the spec, as it would before any push.
    r = sextant::testing::RunCommand(
        std::string(SEXTANT_AGENT_BIN) + " approve " + spec_file_.string() + " --key " +
        (root_ / "customer" / "approver.key").string() + " --approvals " +
        (root_ / "customer" / "approvals.jsonl").string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  void TearDown() override {
    agents_.clear();
    store_.reset();
    if (!HasFailure()) fs::remove_all(root_);
  }

  PushRequest Request(const std::string& kill_target, console::TargetState kill_at) {
    PushRequest r;
    r.spec_file = spec_file_;
    r.targets = {"agent-0", "agent-1", "agent-2"};
    r.signing_key = root_ / "console-key.pem";
    r.call_deadline = milliseconds(5000);
    r.validation_deadline = milliseconds(60000);
    r.on_event = [this, kill_target, kill_at](const console::PushEvent& e) {
      if (e.target == kill_target && e.state == kill_at) {
        for (auto& a : agents_) {
          if (a->name == kill_target) a->Kill();
        }
      }
    };
    return r;
  }

  // The deployment as agent i's durable state holds it, read over gRPC: {generation, digest},
  // {0, ""} when absent.
  std::pair<int64_t, std::string> Deployed(size_t i) {
    rpc::AgentClientOptions o;
    o.target = "127.0.0.1:" + std::to_string(agents_[i]->port);
    o.server_name_override = "localhost";
    o.deadline = milliseconds(5000);
    EXPECT_TRUE(rpc::LoadClientIdentity(root_ / "tls", "vendor-operator", &o).ok());
    auto c = rpc::AgentClient::Connect(o);
    EXPECT_TRUE(c.ok());
    auto d = (*c)->GetDeployment("tiny");
    if (!d.ok()) {
      EXPECT_EQ(d.status().code(), StatusCode::kNotFound) << d.status().ToString();
      return {0, ""};
    }
    return {d->generation(), console::BareDigest(d->spec().spec_digest())};
  }

  fs::path root_;
  fs::path spec_file_;
  std::string digest_;
  std::unique_ptr<report::SigningKey> key_;
  std::unique_ptr<console::ConsoleDatabase> store_;
  std::vector<std::unique_ptr<Agent>> agents_;
};

// Killed after its apply was acknowledged, before its validation: the push stops, agent-0 is
// rolled back, agent-1 holds the whole new spec (generation 1) until `rollback` removes it.
TEST_F(PushKillTest, KilledAfterApplyEndsRolledBackAfterRestart) {
  auto result = PushFromStore(*store_, Request("agent-1", console::TargetState::kValidating));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_FALSE(result->ok);
  EXPECT_EQ(result->targets[0].state, console::TargetState::kRolledBack)
      << result->stopped_because << " / " << result->targets[0].error;
  EXPECT_EQ(result->targets[1].state, console::TargetState::kFailed);
  EXPECT_TRUE(result->targets[1].changed);
  EXPECT_NE(result->targets[1].error.find("sextant rollback tiny"), std::string::npos)
      << result->targets[1].error;
  EXPECT_EQ(result->targets[2].state, console::TargetState::kPending);
  EXPECT_EQ(Deployed(0), std::make_pair(int64_t{0}, std::string()));
  EXPECT_EQ(Deployed(2), std::make_pair(int64_t{0}, std::string()));

  agents_[1]->Start();
  ASSERT_TRUE(agents_[1]->WaitListening()) << Slurp(agents_[1]->dir / "agent.log");
  // Durable and whole: the new spec at generation 1, applied once.
  EXPECT_EQ(Deployed(1), std::make_pair(int64_t{1}, digest_));
  auto back = RollbackFromStore(*store_, "tiny");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->ok) << back->stopped_because;
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(Deployed(i), std::make_pair(int64_t{0}, std::string())) << i;
  }
  // And a push now rolls the whole fleet forward, once.
  auto forward = PushFromStore(*store_, Request("", console::TargetState::kPending));
  ASSERT_TRUE(forward.ok()) << forward.status().ToString();
  EXPECT_TRUE(forward->ok) << forward->stopped_because;
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(Deployed(i).second, digest_) << i;
}

// Killed before its apply reached it: the outcome is unknown to the console; after the restart
// the agent shows it never changed, and rollback finds nothing to undo there.
TEST_F(PushKillTest, KilledBeforeApplyEndsUnchangedAfterRestart) {
  auto result = PushFromStore(*store_, Request("agent-1", console::TargetState::kApplying));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_FALSE(result->ok);
  EXPECT_EQ(result->targets[0].state, console::TargetState::kRolledBack)
      << result->stopped_because << " / " << result->targets[0].error;
  EXPECT_EQ(result->targets[1].state, console::TargetState::kFailed);
  EXPECT_NE(result->targets[1].error.find("cannot tell whether the apply took effect"),
            std::string::npos)
      << result->targets[1].error;
  agents_[1]->Start();
  ASSERT_TRUE(agents_[1]->WaitListening());
  EXPECT_EQ(Deployed(1), std::make_pair(int64_t{0}, std::string()));
  auto back = RollbackFromStore(*store_, "tiny");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->ok);
  ASSERT_EQ(back->targets.size(), 1u);
  EXPECT_EQ(back->targets[0].state, console::TargetState::kUnchanged);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(Deployed(i).first, 0) << i;
}

}  // namespace
}  // namespace sextant::rpc
