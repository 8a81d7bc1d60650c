// The console reading an agent's audit log (ReadAuditLog, what `sextant audit` runs): a real
// agent over mutual TLS on 127.0.0.1, records paged through ListAuditLog, the hash chain
// verified on the console side with the agent's own verification code, a chain tampered with in
// the agent's SQLite file found by the console, the agent's signed head checked, and a log cut
// back or re-chained below the head the console recorded found even when whoever did it made
// the agent's own files agree again.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "app/agent/audit/audit_log.h"
#include "app/agent/audit/egress_ledger.h"
#include "app/agent/policy/access_policy.h"
#include "app/agent/state/desired_state.h"
#include "app/console/store/console_database.h"
#include "connectors/agent/agent_server.h"
#include "connectors/agent/identity_certs.h"
#include "connectors/console/fleet_connector.h"
#include "engine/base/sha256.h"
#include "tests/support/audit_tamper.h"

namespace sextant::rpc {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const char* kPolicy = R"yaml(
version: 1
roles:
  vendor-operator:
    rpcs: [WhoAmI, GetAgentInfo, GetInventory, ListDeployments, WatchMetrics,
           GetComplianceFacts, ListAuditLog]
    audit_scope: own
  customer-auditor:
    rpcs: [WhoAmI, GetAgentInfo, GetComplianceFacts, ListAuditLog, GetEgressLedger]
    audit_scope: all
identities:
  - match: spiffe://example.org/vendor/
    role: vendor-operator
  - match: spiffe://example.org/customer/auditor
    role: customer-auditor
)yaml";

class FleetAuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("fleet_audit_test_" + std::to_string(::getpid()) + "_" +
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
    ASSERT_TRUE(rpc::WriteTextFile(root_ / "ca.pem", ca->cert_pem, false).ok());
    for (const char* who : {"vendor/console", "customer/auditor"}) {
      rpc::CertRequest cli;
      cli.common_name = who;
      cli.uri_sans = {std::string("spiffe://example.org/") + who};
      cli.client = true;
      auto c = rpc::IssueCert(*ca, cli);
      ASSERT_TRUE(c.ok()) << c.status().ToString();
      std::string stem = who;
      stem[stem.find('/')] = '-';
      ASSERT_TRUE(rpc::WriteTextFile(root_ / (stem + ".pem"), c->cert_pem, false).ok());
      ASSERT_TRUE(rpc::WriteTextFile(root_ / (stem + ".key"), c->key_pem, true).ok());
    }
    auto ds = agent::DesiredState::Open(root_ / "agent");
    ASSERT_TRUE(ds.ok()) << ds.status().ToString();
    state_ = std::move(ds).value();
    auto policy = agent::AgentPolicy::Parse(kPolicy, "policy.yaml", rpc::AgentRpcNames());
    ASSERT_TRUE(policy.ok()) << policy.status().ToString();
    policy_ = std::make_unique<agent::PolicyHolder>(*policy);
    options_.ca_pem = ca->cert_pem;
    options_.cert_pem = server_cert->cert_pem;
    options_.key_pem = server_cert->key_pem;
    options_.agent_name = "audit-agent";
    StartAgent();
  }

  // Opens the audit log (verifying it) and serves.
  void StartAgent() {
    auto al = agent::AuditLog::Open(root_ / "agent");
    ASSERT_TRUE(al.ok()) << al.status().ToString();
    audit_ = std::move(al).value();
    rpc::AgentServerDeps d;
    d.state = state_.get();
    d.audit = audit_.get();
    d.policy = policy_.get();
    d.egress = &egress_;
    auto server = rpc::AgentServer::Start(options_, d);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
  }
  void StopAgent() {
    server_->Shutdown(0ms);
    server_.reset();
    audit_.reset();
  }
  void TearDown() override {
    if (server_) server_->Shutdown(0ms);
    server_.reset();
    fs::remove_all(root_);
  }

  console::Target TargetAs(const std::string& stem) const {
    console::Target t;
    t.name = "agent-1";
    t.endpoint = "127.0.0.1:" + std::to_string(server_->port());
    t.ca_path = (root_ / "ca.pem").string();
    t.cert_path = (root_ / (stem + ".pem")).string();
    t.key_path = (root_ / (stem + ".key")).string();
    t.server_name = "localhost";
    return t;
  }

  // Calls that the agent records: `n` WhoAmI by the vendor, through the one-shot refresh path.
  void MakeVendorCalls(int n) {
    for (int i = 0; i < n; ++i) {
      auto who = TestTarget(TargetAs("vendor-console"), 10000ms);
      ASSERT_TRUE(who.ok()) << who.status().ToString();
    }
  }

  // Edits the agent's audit file behind its back (the triggers refuse it otherwise).
  void Tamper(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((root_ / "agent" / "audit.db").c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    const std::string all =
        "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete; " + sql;
    EXPECT_EQ(sqlite3_exec(db, all.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
  }

  fs::path root_;
  std::unique_ptr<agent::DesiredState> state_;
  std::unique_ptr<agent::AuditLog> audit_;
  std::unique_ptr<agent::PolicyHolder> policy_;
  agent::EgressLedger egress_;
  rpc::AgentServerOptions options_;
  std::unique_ptr<rpc::AgentServer> server_;
};

TEST_F(FleetAuditTest, AnAuditorReadsAndVerifiesTheWholeChainAcrossPages) {
  MakeVendorCalls(6);
  AuditReadOptions o;
  o.page_size = 4;  // several pages
  auto r = ReadAuditLog(TargetAs("customer-auditor"), o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->scope, "all");
  EXPECT_TRUE(r->whole_chain);
  // 6 WhoAmI, plus at least one ListAuditLog per page (recorded before it answers).
  ASSERT_GE(r->records.size(), 8u);
  for (size_t i = 0; i < r->records.size(); ++i) {
    EXPECT_EQ(r->records[i].seq, static_cast<int64_t>(i + 1));
  }
  EXPECT_EQ(r->records.front().entry.rpc, "WhoAmI");
  EXPECT_EQ(r->records.front().entry.identity, "spiffe://example.org/vendor/console");
  EXPECT_TRUE(r->console.intact) << r->console.reason;
  EXPECT_EQ(r->console.records, static_cast<int64_t>(r->records.size()));
  EXPECT_EQ(r->console.head_hash, r->records.back().hash);
  EXPECT_TRUE(r->agent_verified);
  EXPECT_TRUE(r->intact) << r->verdict;
  EXPECT_EQ(r->verdict.rfind("intact", 0), 0u) << r->verdict;
  // What the console holds agrees with the agent's own file.
  auto local = audit_->Verify();
  ASSERT_TRUE(local.ok());
  EXPECT_GE(local->head_seq, r->records.back().seq);
}

TEST_F(FleetAuditTest, AVendorSeesItsOwnRecordsAndStillVerifiesThem) {
  MakeVendorCalls(3);
  // Someone else's call, which the vendor must not see.
  ASSERT_TRUE(TestTarget(TargetAs("customer-auditor"), 10000ms).ok());
  MakeVendorCalls(2);
  auto r = ReadAuditLog(TargetAs("vendor-console"), {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->scope, "own");
  EXPECT_FALSE(r->whole_chain);
  for (const auto& rec : r->records) {
    EXPECT_EQ(rec.entry.identity, "spiffe://example.org/vendor/console") << rec.seq;
  }
  ASSERT_GE(r->records.size(), 6u);  // 5 WhoAmI + this ListAuditLog
  EXPECT_TRUE(r->console.intact) << r->console.reason;
  EXPECT_TRUE(r->intact) << r->verdict;
  EXPECT_NE(r->verdict.find("filtered view"), std::string::npos) << r->verdict;
}

TEST_F(FleetAuditTest, ATamperedRecordIsFoundOnTheConsoleSide) {
  MakeVendorCalls(5);
  // Record 3's outcome rewritten, its hash left alone: the record no longer hashes to itself.
  // (The running agent does not re-hash what it verified on each read; the console does check
  // every record it reads.)
  Tamper("UPDATE audit_log SET outcome='denied' WHERE seq=3;");
  auto r = ReadAuditLog(TargetAs("customer-auditor"), {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->console.intact);
  EXPECT_EQ(r->console.first_broken_seq, 3);
  EXPECT_NE(r->console.reason.find("hash does not match its contents"), std::string::npos)
      << r->console.reason;
  EXPECT_FALSE(r->intact);
  EXPECT_NE(r->verdict.find("found by the console"), std::string::npos) << r->verdict;

  // The vendor's filtered view holds record 3 as well, and finds it too.
  auto v = ReadAuditLog(TargetAs("vendor-console"), {});
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_FALSE(v->console.intact);
  EXPECT_EQ(v->console.first_broken_seq, 3);
  EXPECT_FALSE(v->intact);
}

TEST_F(FleetAuditTest, AConsistentForgeryBreaksTheLinkToTheNextRecord) {
  MakeVendorCalls(4);
  // Record 2 rewritten together with a hash that matches its new contents: it verifies by
  // itself, and record 3's prev_hash no longer points at it.
  auto records = audit_->Query({});
  ASSERT_TRUE(records.ok());
  agent::AuditRecord forged = (*records)[1];
  ASSERT_EQ(forged.seq, 2);
  forged.entry.outcome = "denied";
  const std::string hash = Sha256Hex(forged.prev_hash + forged.Canonical());
  Tamper("UPDATE audit_log SET outcome='denied', hash='" + hash + "' WHERE seq=2;");
  auto r = ReadAuditLog(TargetAs("customer-auditor"), {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->console.intact);
  EXPECT_EQ(r->console.first_broken_seq, 3);
  EXPECT_NE(r->console.reason.find("prev_hash"), std::string::npos) << r->console.reason;
  EXPECT_FALSE(r->intact);
}

TEST_F(FleetAuditTest, TheConsoleChecksRecordsNotTheAgentsWord) {
  MakeVendorCalls(4);
  auto r = ReadAuditLog(TargetAs("customer-auditor"), {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->console.intact);
  // The same records with one altered in transit: the console's verifier names it.
  auto records = r->records;
  records[2].entry.rpc = "ApplyDeployment";
  agent::AuditChainVerifier whole(/*whole_chain=*/true);
  for (const auto& rec : records) {
    if (!whole.Add(rec)) break;
  }
  EXPECT_FALSE(whole.result().intact);
  EXPECT_EQ(whole.result().first_broken_seq, 3);
  // A record dropped from the whole chain is a gap.
  records = r->records;
  records.erase(records.begin() + 1);
  agent::AuditChainVerifier gap(/*whole_chain=*/true);
  for (const auto& rec : records) {
    if (!gap.Add(rec)) break;
  }
  EXPECT_FALSE(gap.result().intact);
  EXPECT_NE(gap.result().reason.find("sequence gap"), std::string::npos) << gap.result().reason;
  // In a filtered view a missing neighbour is expected, but a reordered one is not.
  records = r->records;
  std::swap(records[1], records[2]);
  agent::AuditChainVerifier view(/*whole_chain=*/false);
  for (const auto& rec : records) {
    if (!view.Add(rec)) break;
  }
  EXPECT_FALSE(view.result().intact);
  EXPECT_NE(view.result().reason.find("out of order"), std::string::npos) << view.result().reason;
}

TEST_F(FleetAuditTest, TheAgentSignsItsHeadAndTheNextReadMustExtendIt) {
  MakeVendorCalls(3);
  auto first = ReadAuditLog(TargetAs("vendor-console"), {});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE(first->intact) << first->verdict;
  EXPECT_TRUE(first->signed_head_verifies) << first->signed_head_problem;
  EXPECT_EQ(first->next_head.key_id, audit_->checkpoint_key().key_id());
  EXPECT_NE(first->verdict.find("no head recorded before"), std::string::npos);
  MakeVendorCalls(2);
  AuditReadOptions o;
  o.recorded = first->next_head;
  auto second = ReadAuditLog(TargetAs("vendor-console"), o);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_TRUE(second->extends_recorded) << second->recorded_problem;
  EXPECT_TRUE(second->intact) << second->verdict;
  EXPECT_GT(second->next_head.seq, first->next_head.seq);
  EXPECT_NE(second->verdict.find("extends the head seen at"), std::string::npos) << second->verdict;
}

TEST_F(FleetAuditTest, ALogCutBackBelowTheRecordedHeadNoLongerExtendsIt) {
  MakeVendorCalls(6);
  auto seen = ReadAuditLog(TargetAs("vendor-console"), {});
  ASSERT_TRUE(seen.ok() && seen->intact);
  const int64_t recorded = seen->next_head.seq;
  // With the agent stopped: the log cut back to below what the console saw, and the journal
  // re-signed with the agent's own key, so that the agent's files agree with each other.
  StopAgent();
  ASSERT_TRUE(test_audit::Tamper(root_ / "agent", "DELETE FROM audit_log WHERE seq > " +
                                                      std::to_string(recorded - 3) + ";")
                  .ok());
  ASSERT_TRUE(test_audit::ResignJournal(root_ / "agent").ok());
  StartAgent();
  ASSERT_TRUE(audit_->Verify()->intact);  // the agent itself sees nothing wrong
  AuditReadOptions o;
  o.recorded = seen->next_head;
  auto r = ReadAuditLog(TargetAs("vendor-console"), o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->extends_recorded);
  EXPECT_FALSE(r->intact);
  EXPECT_NE(r->verdict.find("record " + std::to_string(recorded) + " is gone"), std::string::npos)
      << r->verdict;
  EXPECT_NE(r->verdict.find("cut back"), std::string::npos) << r->verdict;
}

TEST_F(FleetAuditTest, ALogReChainedBelowTheRecordedHeadNoLongerExtendsIt) {
  MakeVendorCalls(6);
  auto seen = ReadAuditLog(TargetAs("customer-auditor"), {});
  ASSERT_TRUE(seen.ok() && seen->intact);
  StopAgent();
  ASSERT_TRUE(test_audit::Rechain(root_ / "agent", 2).ok());
  ASSERT_TRUE(test_audit::ResignJournal(root_ / "agent").ok());
  StartAgent();
  AuditReadOptions o;
  o.recorded = seen->next_head;
  auto r = ReadAuditLog(TargetAs("customer-auditor"), o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->console.intact);  // the chain itself verifies: every hash was recomputed
  EXPECT_FALSE(r->extends_recorded);
  EXPECT_FALSE(r->intact);
  EXPECT_NE(r->verdict.find("re-chained"), std::string::npos) << r->verdict;
  EXPECT_NE(r->verdict.find("record " + std::to_string(seen->next_head.seq) + " now hashes to"),
            std::string::npos)
      << r->verdict;
}

TEST_F(FleetAuditTest, AnUnreachableTargetIsAnErrorNamingTheCause) {
  auto t = TargetAs("customer-auditor");
  server_->Shutdown(0ms);
  server_.reset();
  AuditReadOptions o;
  o.call_deadline = 2000ms;
  auto r = ReadAuditLog(t, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
}

}  // namespace
}  // namespace sextant::rpc
