// sextant-agent as an operator runs it: certs init, serve with a config, SIGHUP policy reload,
// SIGTERM shutdown, audit verify, and kill -9 during a burst of applies.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "app/common/sha256.h"
#include "connectors/agent/agent_client.h"
#include "tests/support/command.h"

namespace sextant::agent {
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

// One agent process, started with fork/exec; output goes to <dir>/agent.log.
class AgentProcess {
 public:
  AgentProcess(fs::path dir, fs::path config) : dir_(std::move(dir)), config_(std::move(config)) {}
  ~AgentProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  void Start() {
    fs::remove(dir_ / "state" / "grpc.addr");
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      const int fd = ::open((dir_ / "agent.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execl(SEXTANT_AGENT_BIN, SEXTANT_AGENT_BIN, "serve", "--config", config_.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }

  // The "host:port" the agent bound, once it is listening.
  std::string WaitForAddress(milliseconds timeout = milliseconds(15000)) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      std::string addr = Slurp(dir_ / "state" / "grpc.addr");
      if (!addr.empty() && addr.back() == '\n') {
        addr.pop_back();
        return addr;
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        ADD_FAILURE() << "agent exited early: " << Slurp(dir_ / "agent.log");
        return "";
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    ADD_FAILURE() << "agent did not listen in time: " << Slurp(dir_ / "agent.log");
    return "";
  }

  void Signal(int sig) { ::kill(pid_, sig); }

  // Exit status, or -1 on timeout / abnormal end.
  int WaitExit(milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
    return -1;
  }

 private:
  fs::path dir_, config_;
  pid_t pid_ = -1;
};

class AgentProgramTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sextant-agentproc-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto r = RunCommand(std::string(SEXTANT_AGENT_BIN) + " certs init --out " +
                        (dir_ / "tls").string() + " --trust-domain example.org");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    fs::copy_file(fs::path(SEXTANT_SOURCE_DIR) / "resources/policies/agent-policy.example.yaml",
                  dir_ / "policy.yaml");
    std::ofstream(dir_ / "agent.yaml") << "name: test-agent\n"
                                          "grpc:\n"
                                          "  listen: 127.0.0.1:0\n"
                                          "  ca: tls/ca.pem\n"
                                          "  cert: tls/server.pem\n"
                                          "  key: tls/server.key\n"
                                          "http:\n"
                                          "  listen: 127.0.0.1:0\n"
                                          "policy: policy.yaml\n"
                                          "state_dir: state\n"
                                          "limits:\n"
                                          "  shutdown_grace_ms: 2000\n";
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }

  std::unique_ptr<rpc::AgentClient> Client(const std::string& addr, const std::string& stem) {
    rpc::AgentClientOptions o;
    o.target = addr;
    o.deadline = milliseconds(5000);
    EXPECT_TRUE(rpc::LoadClientIdentity(dir_ / "tls", stem, &o).ok());
    auto c = rpc::AgentClient::Connect(o);
    EXPECT_TRUE(c.ok());
    return c.ok() ? std::move(*c) : nullptr;
  }

  fs::path dir_;
};

TEST_F(AgentProgramTest, CertsInitRefusesToReplaceACa) {
  for (const char* f : {"ca.pem", "ca.key", "server.pem", "vendor-operator.pem",
                        "customer-admin.key", "customer-auditor.pem"}) {
    EXPECT_TRUE(fs::exists(dir_ / "tls" / f)) << f;
  }
  EXPECT_EQ(fs::status(dir_ / "tls" / "ca.key").permissions() & fs::perms::others_read,
            fs::perms::none);
  auto again =
      RunCommand(std::string(SEXTANT_AGENT_BIN) + " certs init --out " + (dir_ / "tls").string());
  EXPECT_EQ(again.exit_code, 1) << again.output;
  EXPECT_NE(again.output.find("refusing"), std::string::npos) << again.output;
}

TEST_F(AgentProgramTest, MalformedConfigIsAClearError) {
  std::ofstream(dir_ / "bad.yaml") << "grpc:\n  listen: 127.0.0.1:0\n  cert: [x\n";
  auto r = RunCommand(std::string(SEXTANT_AGENT_BIN) + " serve --config " +
                      (dir_ / "bad.yaml").string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("bad.yaml:"), std::string::npos) << r.output;
  std::ofstream(dir_ / "typo.yaml") << "grpc:\n  listen: 127.0.0.1:0\npolicyy: p.yaml\n";
  r = RunCommand(std::string(SEXTANT_AGENT_BIN) + " --config " + (dir_ / "typo.yaml").string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("typo.yaml:3:1: unknown key 'policyy'"), std::string::npos) << r.output;
}

TEST_F(AgentProgramTest, ServesReloadsPolicyOnSighupAndStopsOnSigterm) {
  AgentProcess agent(dir_, dir_ / "agent.yaml");
  agent.Start();
  const std::string addr = agent.WaitForAddress();
  ASSERT_FALSE(addr.empty());
  auto auditor = Client(addr, "customer-auditor");
  auto me = auditor->WhoAmI();
  ASSERT_TRUE(me.ok()) << me.status().ToString();
  EXPECT_EQ(me->role(), "customer-auditor");
  EXPECT_EQ(auditor->ListDeployments().status().code(), StatusCode::kPermissionDenied);

  // A malformed policy is rejected with line:column and the old one stays in force.
  std::ofstream(dir_ / "policy.yaml") << "version: 1\nroles:\n  a: [\n";
  agent.Signal(SIGHUP);
  const auto end = std::chrono::steady_clock::now() + milliseconds(5000);
  while (Slurp(dir_ / "agent.log").find("policy_reload_rejected") == std::string::npos &&
         std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  const std::string log = Slurp(dir_ / "agent.log");
  EXPECT_NE(log.find("policy_reload_rejected"), std::string::npos) << log;
  EXPECT_NE(log.find("policy.yaml:"), std::string::npos) << log;
  EXPECT_TRUE(auditor->WhoAmI().ok());

  // A valid new policy takes effect.
  std::ofstream(dir_ / "policy.yaml")
      << "version: 1\nroles:\n  customer-auditor:\n    rpcs: [WhoAmI, ListDeployments]\n"
         "identities:\n  - match: spiffe://example.org/customer/auditor\n"
         "    role: customer-auditor\n";
  agent.Signal(SIGHUP);
  bool allowed = false;
  for (int i = 0; i < 250 && !allowed; ++i) {
    allowed = auditor->ListDeployments().ok();
    if (!allowed) std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_TRUE(allowed);

  // Structured logs: every line is a JSON object with time, level and event.
  std::istringstream lines(Slurp(dir_ / "agent.log"));
  std::string line;
  int json_lines = 0;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    EXPECT_EQ(line.front(), '{') << line;
    EXPECT_NE(line.find("\"event\":"), std::string::npos) << line;
    ++json_lines;
  }
  EXPECT_GE(json_lines, 2);

  const auto t0 = std::chrono::steady_clock::now();
  agent.Signal(SIGTERM);
  EXPECT_EQ(agent.WaitExit(milliseconds(5000)), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, milliseconds(4000));
  EXPECT_NE(Slurp(dir_ / "agent.log").find("\"stopped\""), std::string::npos);

  auto verify = RunCommand(std::string(SEXTANT_AGENT_BIN) + " audit verify --state " +
                           (dir_ / "state").string());
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_NE(verify.output.find("intact"), std::string::npos) << verify.output;
}

TEST_F(AgentProgramTest, AuditVerifyNamesTheFirstBrokenRecord) {
  AgentProcess agent(dir_, dir_ / "agent.yaml");
  agent.Start();
  const std::string addr = agent.WaitForAddress();
  ASSERT_FALSE(addr.empty());
  auto admin = Client(addr, "customer-admin");
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(admin->WhoAmI().ok());
  agent.Signal(SIGTERM);
  ASSERT_EQ(agent.WaitExit(milliseconds(5000)), 0);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "state" / "audit.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "DROP TRIGGER audit_log_no_update; "
                         "UPDATE audit_log SET role='customer-adm1n' WHERE seq=3;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto verify = RunCommand(std::string(SEXTANT_AGENT_BIN) + " audit verify --state " +
                           (dir_ / "state").string());
  EXPECT_EQ(verify.exit_code, 1) << verify.output;
  EXPECT_NE(verify.output.find("BROKEN at record 3"), std::string::npos) << verify.output;
}

// kill -9 at an arbitrary moment of a burst of applies: every acknowledged apply survives,
// none is applied twice, the files are intact and the audit chain verifies.
TEST_F(AgentProgramTest, KillNineDuringApplyBurstLosesNothingAcknowledged) {
  // The agent checks the model's sha256 in its own store before an apply is durable.
  fs::create_directories(dir_ / "state" / "models");
  std::ofstream(dir_ / "state" / "models" / "tiny.gguf") << "not a model";
  AgentProcess agent(dir_, dir_ / "agent.yaml");
  agent.Start();
  std::string addr = agent.WaitForAddress();
  ASSERT_FALSE(addr.empty());

  auto spec = [](const std::string& name, int version) {
    v1::ApplyDeploymentRequest req;
    auto* s = req.mutable_spec();
    s->set_name(name);
    s->set_spec_json("{\"name\":\"" + name + "\",\"version\":" + std::to_string(version) + "}");
    s->set_spec_digest("sha256:" + Sha256Hex(s->spec_json()));
    s->set_model_uri("tiny.gguf");
    s->set_model_sha256(Sha256Hex("not a model"));
    return req;
  };

  constexpr int kWriters = 4;
  std::mutex mu;
  // Per deployment: the last acknowledged (version, generation).
  std::map<std::string, std::pair<int, int64_t>> acked;
  std::atomic<int> acks{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      auto client = Client(addr, "vendor-operator");
      const std::string name = "burst-" + std::to_string(w);
      for (int version = 1; !stop.load(); ++version) {
        auto r = client->ApplyDeployment(spec(name, version), milliseconds(3000));
        if (!r.ok()) break;  // the agent died
        std::lock_guard<std::mutex> lock(mu);
        // Each new spec is exactly one new generation.
        EXPECT_EQ(r->generation(), version) << name;
        EXPECT_TRUE(r->changed());
        acked[name] = {version, r->generation()};
        ++acks;
      }
    });
  }
  // Let the burst run, then kill at a moment that is not synchronized with any apply.
  const auto end = std::chrono::steady_clock::now() + milliseconds(10000);
  while (acks.load() < 40 && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  std::this_thread::sleep_for(milliseconds(7));
  agent.Signal(SIGKILL);
  EXPECT_EQ(agent.WaitExit(milliseconds(5000)), -1);  // killed, not exited
  stop = true;
  for (auto& t : writers) t.join();
  ASSERT_GE(acks.load(), 20) << Slurp(dir_ / "agent.log");

  // Files are consistent before the agent touches them again.
  for (const char* f : {"desired.db", "audit.db"}) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / "state" / f).c_str(), &db), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "ok") << f;
    sqlite3_finalize(st);
    sqlite3_close(db);
  }
  auto verify = RunCommand(std::string(SEXTANT_AGENT_BIN) + " audit verify --state " +
                           (dir_ / "state").string());
  EXPECT_EQ(verify.exit_code, 0) << verify.output;

  // Restart: every acknowledged apply is there, once.
  AgentProcess again(dir_, dir_ / "agent.yaml");
  again.Start();
  addr = again.WaitForAddress();
  ASSERT_FALSE(addr.empty());
  auto admin = Client(addr, "customer-admin");
  auto list = admin->ListDeployments();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  EXPECT_EQ(list->deployments_size(), static_cast<int>(acked.size()));
  for (const auto& [name, last] : acked) {
    auto d = admin->GetDeployment(name);
    ASSERT_TRUE(d.ok()) << name << ": " << d.status().ToString();
    // The acknowledged generation, or one more if the apply in flight at the kill committed
    // without its reply reaching us; never a duplicate generation.
    EXPECT_GE(d->generation(), last.second) << name;
    EXPECT_LE(d->generation(), last.second + 1) << name;
    EXPECT_EQ(d->spec().spec_digest(),
              spec(name, static_cast<int>(d->generation())).spec().spec_digest())
        << name;
    // Re-applying what is there creates nothing new.
    auto re = admin->ApplyDeployment(spec(name, static_cast<int>(d->generation())));
    ASSERT_TRUE(re.ok());
    EXPECT_FALSE(re->changed());
    EXPECT_EQ(re->generation(), d->generation());
  }
  again.Signal(SIGTERM);
  EXPECT_EQ(again.WaitExit(milliseconds(5000)), 0);
  verify = RunCommand(std::string(SEXTANT_AGENT_BIN) + " audit verify --state " +
                      (dir_ / "state").string());
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
}

}  // namespace
}  // namespace sextant::agent
