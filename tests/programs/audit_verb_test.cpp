// `sextant audit --target T [--verify] [-o json]` as a user runs it: an agent (the agent's gRPC
// service over mutual TLS on 127.0.0.1, in this test process) registered as a target in a
// console state dir, the sextant binary reading its audit log, and a tampered chain making
// --verify exit 1 and name the broken record; --verify records the agent's signed head in the
// console's store and fails once the agent's log no longer extends it.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "app/agent/audit/audit_log.h"
#include "app/agent/audit/egress_ledger.h"
#include "app/agent/policy/access_policy.h"
#include "app/agent/state/desired_state.h"
#include "app/console/store/console_database.h"
#include "connectors/agent/agent_server.h"
#include "connectors/agent/identity_certs.h"
#include "tests/support/audit_tamper.h"
#include "tests/support/command.h"

namespace sextant {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using sextant::testing::RunCommand;

const char* kPolicy = R"yaml(
version: 1
roles:
  customer-auditor:
    rpcs: [WhoAmI, GetAgentInfo, GetComplianceFacts, ListAuditLog, GetEgressLedger]
    audit_scope: all
identities:
  - match: spiffe://example.org/customer/auditor
    role: customer-auditor
)yaml";

class AuditVerbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("audit_verb_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "agent");
    auto ca = rpc::CreateCa("test CA", 86400);
    ASSERT_TRUE(ca.ok()) << ca.status().ToString();
    rpc::CertRequest srv;
    srv.common_name = "agent";
    srv.dns_sans = {"localhost"};
    srv.ip_sans = {"127.0.0.1"};
    srv.server = true;
    auto server_cert = rpc::IssueCert(*ca, srv);
    ASSERT_TRUE(server_cert.ok()) << server_cert.status().ToString();
    rpc::CertRequest cli;
    cli.common_name = "auditor";
    cli.uri_sans = {"spiffe://example.org/customer/auditor"};
    cli.client = true;
    auto c = rpc::IssueCert(*ca, cli);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    ASSERT_TRUE(rpc::WriteTextFile(root_ / "ca.pem", ca->cert_pem, false).ok());
    ASSERT_TRUE(rpc::WriteTextFile(root_ / "auditor.pem", c->cert_pem, false).ok());
    ASSERT_TRUE(rpc::WriteTextFile(root_ / "auditor.key", c->key_pem, true).ok());

    auto ds = agent::DesiredState::Open(root_ / "agent");
    ASSERT_TRUE(ds.ok()) << ds.status().ToString();
    state_ = std::move(ds).value();
    auto al = agent::AuditLog::Open(root_ / "agent");
    ASSERT_TRUE(al.ok()) << al.status().ToString();
    audit_ = std::move(al).value();
    auto policy = agent::AgentPolicy::Parse(kPolicy, "policy.yaml", rpc::AgentRpcNames());
    ASSERT_TRUE(policy.ok()) << policy.status().ToString();
    policy_ = std::make_unique<agent::PolicyHolder>(*policy);
    // Records to read: what earlier callers did.
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE(audit_
                      ->Append({"spiffe://example.org/vendor/operator", "vendor-operator",
                                "ApplyDeployment", "chat", i % 2 ? "ok" : "allowed"})
                      .ok());
    }
    options_.ca_pem = ca->cert_pem;
    options_.cert_pem = server_cert->cert_pem;
    options_.key_pem = server_cert->key_pem;
    options_.agent_name = "audit-agent";
    Serve();

    auto st = console::ConsoleDatabase::Open(root_ / "state");
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    console::Target t;
    t.name = "clinic-eu";
    t.endpoint = "127.0.0.1:" + std::to_string(server_->port());
    t.ca_path = (root_ / "ca.pem").string();
    t.cert_path = (root_ / "auditor.pem").string();
    t.key_path = (root_ / "auditor.key").string();
    t.server_name = "localhost";
    ASSERT_TRUE((*st)->targets().Add(t).ok());
  }
  // Serves the audit log (on the same port after the first time).
  void Serve() {
    if (server_) options_.listen = "127.0.0.1:" + std::to_string(server_->port());
    rpc::AgentServerDeps d;
    d.state = state_.get();
    d.audit = audit_.get();
    d.policy = policy_.get();
    d.egress = &egress_;
    server_.reset();
    auto server = rpc::AgentServer::Start(options_, d);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
  }
  void TearDown() override {
    if (server_) server_->Shutdown(0ms);
    server_.reset();
    fs::remove_all(root_);
  }

  std::string Sextant(const std::string& args) const {
    return std::string(SEXTANT_CONSOLE_BIN) + " audit --state " + (root_ / "state").string() + " " +
           args;
  }

  fs::path root_;
  std::unique_ptr<agent::DesiredState> state_;
  std::unique_ptr<agent::AuditLog> audit_;
  std::unique_ptr<agent::PolicyHolder> policy_;
  agent::EgressLedger egress_;
  rpc::AgentServerOptions options_;
  std::unique_ptr<rpc::AgentServer> server_;
};

TEST_F(AuditVerbTest, ListsAndVerifiesTheChain) {
  auto r = RunCommand(Sextant("--target clinic-eu --verify"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("ApplyDeployment"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("spiffe://example.org/vendor/operator"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("chain: intact"), std::string::npos) << r.output;

  r = RunCommand(Sextant("--target clinic-eu --verify -o json") + " 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = nlohmann::json::parse(r.output, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.output;
  EXPECT_EQ(j["target"], "clinic-eu");
  EXPECT_EQ(j["scope"], "all");
  ASSERT_GE(j["records"].size(), 6u);  // 5 + the first ListAuditLog
  EXPECT_EQ(j["records"][0]["seq"], 1);
  EXPECT_EQ(j["records"][0]["rpc"], "ApplyDeployment");
  EXPECT_EQ(j["records"][0]["prev_hash"], std::string(64, '0'));
  EXPECT_EQ(j["verification"]["intact"], true);
  EXPECT_EQ(j["verification"]["console"]["whole_chain"], true);
  EXPECT_EQ(j["verification"]["agent"]["verified"], true);
}

TEST_F(AuditVerbTest, ATamperedChainFailsVerifyAndNamesTheRecord) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((root_ / "agent" / "audit.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "DROP TRIGGER audit_log_no_update; "
                         "UPDATE audit_log SET identity='spiffe://example.org/customer/admin' "
                         "WHERE seq=4;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto r = RunCommand(Sextant("--target clinic-eu --verify"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("record 4"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("broken"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("clinic-eu"), std::string::npos) << r.output;

  // Without --verify the records are still listed, and the exit code says nothing of the chain.
  r = RunCommand(Sextant("--target clinic-eu -o csv"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("seq,time,identity"), std::string::npos) << r.output;
}

TEST_F(AuditVerbTest, VerifyRecordsTheSignedHeadAndFailsWhenTheLogNoLongerExtendsIt) {
  auto r = RunCommand(Sextant("--target clinic-eu --verify"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("no head recorded before"), std::string::npos) << r.output;
  r = RunCommand(Sextant("--target clinic-eu --verify"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("extends the head seen at"), std::string::npos) << r.output;

  // Someone with the agent's files (and its key) cuts the log back and makes the files agree.
  const int64_t before = static_cast<int64_t>(test_audit::ReadAll(root_ / "agent").size());
  server_->Shutdown(0ms);
  audit_.reset();
  ASSERT_TRUE(test_audit::Tamper(root_ / "agent", "DELETE FROM audit_log WHERE seq > 4;").ok());
  ASSERT_TRUE(test_audit::ResignJournal(root_ / "agent").ok());
  auto al = agent::AuditLog::Open(root_ / "agent");
  ASSERT_TRUE(al.ok()) << al.status().ToString();
  audit_ = std::move(al).value();
  ASSERT_TRUE(audit_->Verify()->intact);
  Serve();
  r = RunCommand(Sextant("--target clinic-eu --verify"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("no longer extends the head seen at"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("cut back"), std::string::npos) << r.output;
  // The recorded head stays what it was: the next verification fails too.
  // stdout alone (RunCommand merges stderr, where the error goes).
  r = RunCommand("(" + Sextant("--target clinic-eu --verify -o json") + " 2>/dev/null)");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  auto j = nlohmann::json::parse(r.output, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.output;
  EXPECT_FALSE(j["verification"]["extends_recorded_head"].get<bool>());
  EXPECT_GT(before, 4);
}

TEST_F(AuditVerbTest, UsageAndUnknownTargets) {
  auto r = RunCommand(Sextant(""));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = RunCommand(Sextant("--target nowhere"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("nowhere"), std::string::npos) << r.output;
  r = RunCommand(Sextant("--target clinic-eu -o yaml"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

TEST_F(AuditVerbTest, AnUnreachableAgentIsNamedWithItsCause) {
  server_->Shutdown(0ms);
  server_.reset();
  auto r = RunCommand(Sextant("--target clinic-eu --timeout-ms 2000"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("target clinic-eu"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace sextant
