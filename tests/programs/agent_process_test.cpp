// sextant-agent as an operator runs it: certs init (the vendor's certificate from its request),
// serve with a config, SIGHUP policy reload (failing closed: degraded and audited), revocation
// with SIGHUP, SIGTERM shutdown, audit verify (a broken record, a log cut short, a log
// re-chained), and kill -9 during a burst of applies (every admitted apply has one outcome).
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
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "connectors/agent/agent_client.h"
#include "engine/base/sha256.h"
#include "tests/support/audit_tamper.h"
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
    auto r = sextant::testing::MakeTestPki(SEXTANT_CONSOLE_BIN, SEXTANT_AGENT_BIN,
                                           (dir_ / "tls").string());
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
                                          // The customer admits every spec of the test model.
                                          "admission:\n"
                                          "  allow_models: ['" +
                                              Sha256Hex("not a model") +
                                              "']\n"
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

// The customer's side never holds a vendor's private key: `certs init` makes none, refuses to,
// and a refused identity or a bad request leaves no half-made CA behind (a rerun then works).
TEST_F(AgentProgramTest, CertsInitNeverMakesAVendorKeyAndLeavesNothingWhenItRefuses) {
  const std::string agent = SEXTANT_AGENT_BIN;
  auto vendor_files = [](const fs::path& d) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(d)) {
      const std::string n = e.path().filename().string();
      if (n.rfind("vendor", 0) == 0) out.push_back(n);
    }
    return out;
  };
  // Plain init: the customer's identities only.
  const fs::path plain = dir_ / "plain";
  auto r = RunCommand(agent + " certs init --out " + plain.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(plain / "customer-admin.key"));
  EXPECT_TRUE(vendor_files(plain).empty());

  // Asked for a vendor identity: refused, saying how the vendor gets its certificate.
  const fs::path asked = dir_ / "asked";
  r = RunCommand(agent + " certs init --out " + asked.string() +
                 " --identity customer/admin --identity vendor/operator");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("never made on the customer's side"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("sextant certs request"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(asked / "ca.key"));
  EXPECT_FALSE(fs::exists(asked / "customer-admin.key"));

  // A request that is not one: refused, naming it, and nothing written.
  const fs::path bad = dir_ / "bad";
  std::ofstream(dir_ / "forged.csr") << "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n";
  r = RunCommand(agent + " certs init --out " + bad.string() +
                 " --csr vendor/operator=" + (dir_ / "forged.csr").string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--csr vendor/operator"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(bad / "ca.key"));
  EXPECT_TRUE(!fs::exists(bad) || fs::is_empty(bad));

  // The same directory with the vendor's real request: its certificate, and still no key.
  r = RunCommand(agent + " certs init --out " + bad.string() +
                 " --csr vendor/operator=" + (dir_ / "tls" / "vendor-operator.csr").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(vendor_files(bad), std::vector<std::string>{"vendor-operator.pem"});
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
  // ... and the agent says it is degraded until a reload succeeds: in its health, its metrics
  // source and its compliance facts.
  auto info = auditor->GetAgentInfo();
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->health(), "degraded");
  ASSERT_EQ(info->degraded_reasons_size(), 1);
  EXPECT_NE(info->degraded_reasons(0).find("policy reload failed: "), std::string::npos)
      << info->degraded_reasons(0);
  EXPECT_NE(info->degraded_reasons(0).find("policy.yaml:"), std::string::npos)
      << info->degraded_reasons(0);
  auto facts = auditor->GetComplianceFacts();
  ASSERT_TRUE(facts.ok());
  for (const auto& f : facts->facts()) {
    if (f.name() == "agent.health") {
      EXPECT_EQ(f.value(), "degraded");
    }
    if (f.name() == "policy.reload") {
      EXPECT_EQ(f.value(), "failed");
    }
  }

  // A valid new policy takes effect.
  std::ofstream(dir_ / "policy.yaml")
      << "version: 1\nroles:\n  customer-auditor:\n    rpcs: [WhoAmI, ListDeployments, "
         "GetAgentInfo]\n"
         "identities:\n  - match: spiffe://example.org/customer/auditor\n"
         "    role: customer-auditor\n";
  agent.Signal(SIGHUP);
  bool allowed = false;
  for (int i = 0; i < 250 && !allowed; ++i) {
    allowed = auditor->ListDeployments().ok();
    if (!allowed) std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_TRUE(allowed);
  info = auditor->GetAgentInfo();
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->health(), "ok");

  // Structured logs: every line is a JSON object with time, level and event (gRPC's own lines,
  // such as the refused handshakes of the agent's transport probe, included).
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
  // Both reloads are records: the refused one with its error, then the accepted one.
  std::vector<std::string> reloads;
  for (const auto& r : test_audit::ReadAll(dir_ / "state")) {
    if (r.entry.rpc == "ReloadPolicy") reloads.push_back(r.entry.outcome + " " + r.entry.detail);
  }
  ASSERT_EQ(reloads.size(), 2u);
  EXPECT_EQ(reloads[0].rfind("refused ", 0), 0u) << reloads[0];
  EXPECT_NE(reloads[0].find("policy.yaml:"), std::string::npos) << reloads[0];
  EXPECT_EQ(reloads[1].rfind("ok sha256:", 0), 0u) << reloads[1];
}

TEST_F(AgentProgramTest, AuditVerifyNamesALogCutShortOrReChained) {
  AgentProcess agent(dir_, dir_ / "agent.yaml");
  agent.Start();
  const std::string addr = agent.WaitForAddress();
  ASSERT_FALSE(addr.empty());
  auto admin = Client(addr, "customer-admin");
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(admin->WhoAmI().ok());
  agent.Signal(SIGTERM);
  ASSERT_EQ(agent.WaitExit(milliseconds(5000)), 0);
  const int64_t head = static_cast<int64_t>(test_audit::ReadAll(dir_ / "state").size());
  ASSERT_GE(head, 8);
  fs::copy(dir_ / "state", dir_ / "rechained", fs::copy_options::recursive);

  // The last rows deleted behind the triggers: the chain that is left is intact.
  ASSERT_TRUE(test_audit::Tamper(dir_ / "state", "DELETE FROM audit_log WHERE seq > 5;").ok());
  auto cut = RunCommand(std::string(SEXTANT_AGENT_BIN) + " audit verify --state " +
                        (dir_ / "state").string());
  EXPECT_EQ(cut.exit_code, 1) << cut.output;
  EXPECT_NE(cut.output.find("BROKEN at record 6: truncated: the log ends at seq 5"),
            std::string::npos)
      << cut.output;
  EXPECT_NE(cut.output.find("records 6.." + std::to_string(head) + " are missing"),
            std::string::npos)
      << cut.output;

  // Record 3 rewritten and every hash after it recomputed.
  ASSERT_TRUE(test_audit::Rechain(dir_ / "rechained", 3).ok());
  auto rechained = RunCommand(std::string(SEXTANT_AGENT_BIN) + " audit verify --json --state " +
                              (dir_ / "rechained").string());
  EXPECT_EQ(rechained.exit_code, 1) << rechained.output;
  auto j = nlohmann::json::parse(rechained.output, nullptr, false);
  ASSERT_TRUE(j.is_object()) << rechained.output;
  EXPECT_FALSE(j["intact"].get<bool>());
  EXPECT_EQ(j["first_broken_seq"], 3);
  EXPECT_NE(j["reason"].get<std::string>().find("re-chained: record 3"), std::string::npos)
      << j["reason"];

  // An agent started on the cut log keeps serving, says so, and records it.
  AgentProcess again(dir_, dir_ / "agent.yaml");
  again.Start();
  const std::string addr2 = again.WaitForAddress();
  ASSERT_FALSE(addr2.empty());
  auto info = Client(addr2, "customer-admin")->GetAgentInfo();
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->health(), "degraded");
  ASSERT_GE(info->degraded_reasons_size(), 1);
  EXPECT_NE(info->degraded_reasons(0).find("truncated"), std::string::npos)
      << info->degraded_reasons(0);
  again.Signal(SIGTERM);
  EXPECT_EQ(again.WaitExit(milliseconds(5000)), 0);
}

TEST_F(AgentProgramTest, ARevokedCertificateIsRefusedAfterSighup) {
  // A revocation list from the start (revoking an identity nobody uses), reloaded on SIGHUP.
  ASSERT_EQ(RunCommand(std::string(SEXTANT_AGENT_BIN) + " certs revoke --ca-dir " +
                       (dir_ / "tls").string() + " --cert " +
                       (dir_ / "tls" / "customer-app.pem").string())
                .exit_code,
            0);
  {
    std::string config = Slurp(dir_ / "agent.yaml");
    const std::string key_line = "  key: tls/server.key\n";
    config.replace(config.find(key_line), key_line.size(), key_line + "  crl: tls/crl.pem\n");
    std::ofstream(dir_ / "agent.yaml") << config;
  }
  AgentProcess agent(dir_, dir_ / "agent.yaml");
  agent.Start();
  const std::string addr = agent.WaitForAddress();
  ASSERT_FALSE(addr.empty());
  auto vendor = Client(addr, "vendor-operator");
  ASSERT_TRUE(vendor->WhoAmI().ok());
  EXPECT_EQ(Client(addr, "customer-app")->WhoAmI().status().code(), StatusCode::kUnavailable);

  auto revoke = RunCommand(std::string(SEXTANT_AGENT_BIN) + " certs revoke --ca-dir " +
                           (dir_ / "tls").string() + " --cert " +
                           (dir_ / "tls" / "vendor-operator.pem").string());
  ASSERT_EQ(revoke.exit_code, 0) << revoke.output;
  EXPECT_NE(revoke.output.find("revoked serial"), std::string::npos) << revoke.output;
  agent.Signal(SIGHUP);
  // A new connection of the vendor is refused in the handshake; the open one on its next call.
  bool refused = false;
  for (int i = 0; i < 250 && !refused; ++i) {
    refused = vendor->WhoAmI().status().code() == StatusCode::kUnauthenticated;
    if (!refused) std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_TRUE(refused);
  EXPECT_EQ(Client(addr, "vendor-operator")->WhoAmI().status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(Client(addr, "customer-admin")->WhoAmI().ok());
  agent.Signal(SIGTERM);
  ASSERT_EQ(agent.WaitExit(milliseconds(5000)), 0);
  int reloads = 0;
  for (const auto& r : test_audit::ReadAll(dir_ / "state")) {
    reloads += r.entry.rpc == "ReloadRevocations" && r.entry.outcome == "ok";
  }
  EXPECT_EQ(reloads, 1);
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
    s->set_spec_json("{\"model\":{\"sha256\":\"" + Sha256Hex("not a model") +
                     "\",\"uri\":\"tiny.gguf\"},\"name\":\"" + name +
                     "\",\"version\":" + std::to_string(version) + "}");
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
  // Every apply that was admitted has exactly one outcome record: "ok" or an error, or, for the
  // one the kill cut short, "interrupted" (recorded by the restarted agent).
  const auto records = test_audit::ReadAll(dir_ / "state");
  std::map<int64_t, int> outcomes;
  int interrupted = 0;
  for (const auto& r : records) {
    if (r.entry.rpc == "ApplyDeployment" && r.entry.outcome == "allowed") outcomes[r.seq] += 0;
    if (r.entry.intent_seq > 0) ++outcomes[r.entry.intent_seq];
    interrupted += r.entry.outcome == "interrupted";
  }
  ASSERT_FALSE(outcomes.empty());
  for (const auto& [seq, n] : outcomes) EXPECT_EQ(n, 1) << "admitted apply at seq " << seq;
  EXPECT_LE(interrupted, kWriters);
}

}  // namespace
}  // namespace sextant::agent
