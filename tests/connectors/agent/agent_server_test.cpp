// The agent's gRPC API over real mutual TLS on 127.0.0.1, with certificates made by the test:
// every RPC (enumerated from the proto descriptors) x every role, refused handshakes, the audit
// chain, the egress ledger, deployments, watch streams and shutdown.
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/client_unary_call.h>
#include <grpcpp/support/sync_stream.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "connectors/agent/agent_client.h"
#include "connectors/agent/agent_server.h"
#include "connectors/agent/identity_certs.h"
#include "engine/base/sha256.h"
#include "sextant/v1/agent.grpc.pb.h"

namespace sextant::rpc {
namespace {

namespace v1 = ::sextant::v1;
using std::chrono::milliseconds;

constexpr char kTrust[] = "spiffe://example.org";

// Expected rules, written out by hand from DESIGN.md's roles (NOT read from the policy file):
// the policy file must grant exactly these. Any RPC not listed for a role must be denied, so
// an RPC added to the proto without a rule is refused for everyone.
const std::map<std::string, std::set<std::string>>& ExpectedAllowed() {
  static const std::map<std::string, std::set<std::string>> kRules = {
      {"vendor/operator",
       {"WhoAmI", "GetAgentInfo", "GetInventory", "WatchInventory", "ApplyDeployment",
        "GetDeployment", "ListDeployments", "DeleteDeployment", "WatchMetrics", "RunValidation",
        "GetComplianceFacts", "ListAuditLog"}},
      {"vendor/second-operator",
       {"WhoAmI", "GetAgentInfo", "GetInventory", "WatchInventory", "ApplyDeployment",
        "GetDeployment", "ListDeployments", "DeleteDeployment", "WatchMetrics", "RunValidation",
        "GetComplianceFacts", "ListAuditLog"}},
      {"customer/admin",
       {"WhoAmI", "GetAgentInfo", "GetInventory", "WatchInventory", "ApplyDeployment",
        "GetDeployment", "ListDeployments", "DeleteDeployment", "WatchMetrics", "RunValidation",
        "GetComplianceFacts", "ListAuditLog", "GetEgressLedger"}},
      {"customer/auditor",
       {"WhoAmI", "GetAgentInfo", "GetComplianceFacts", "ListAuditLog", "GetEgressLedger"}},
      {"customer/app", {}},
      {"stranger/nobody", {}},  // a valid certificate from the trusted CA, but no role
  };
  return kRules;
}

std::string RoleOf(const std::string& id) {
  if (id.rfind("vendor/", 0) == 0) return "vendor-operator";
  if (id == "customer/admin") return "customer-admin";
  if (id == "customer/auditor") return "customer-auditor";
  if (id == "customer/app") return "customer-app";
  return "";
}

class AgentServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sextant-agentsrv-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto ca = CreateCa("test CA", 3600);
    ASSERT_TRUE(ca.ok()) << ca.status().ToString();
    ca_ = *ca;
    CertRequest server;
    server.common_name = "agent";
    server.server = true;
    server.ip_sans = {"127.0.0.1"};
    server.dns_sans = {"localhost"};
    auto s = IssueCert(ca_, server);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = *s;

    auto policy = agent::AgentPolicy::LoadFile(
        std::string(SEXTANT_SOURCE_DIR) + "/resources/policies/agent-policy.example.yaml",
        AgentRpcNames());
    ASSERT_TRUE(policy.ok()) << policy.status().ToString();
    policy_ = std::make_unique<agent::PolicyHolder>(*policy);
    auto state = agent::DesiredState::Open(dir_);
    ASSERT_TRUE(state.ok());
    state_ = std::move(*state);
    auto audit = agent::AuditLog::Open(dir_);
    ASSERT_TRUE(audit.ok());
    audit_ = std::move(*audit);
    StartServer();
  }

  void StartServer() {
    AgentServerOptions o;
    o.listen = "127.0.0.1:0";
    o.ca_pem = ca_.cert_pem;
    o.cert_pem = server_.cert_pem;
    o.key_pem = server_.key_pem;
    o.agent_name = "test-agent";
    // The customer admits every spec of the test's (fictitious) model.
    o.admission.allowed_model_sha256 = {std::string(64, 'b')};
    AgentServerDeps d;
    d.state = state_.get();
    d.audit = audit_.get();
    d.policy = policy_.get();
    d.egress = &egress_;
    auto srv = AgentServer::Start(o, d);
    ASSERT_TRUE(srv.ok()) << srv.status().ToString();
    server_obj_ = std::move(*srv);
  }

  void TearDown() override {
    server_obj_.reset();
    std::filesystem::remove_all(dir_);
  }

  CertAndKey Client(const std::string& id, int64_t not_before = -300, int64_t not_after = 3600,
                    const CertAndKey* ca = nullptr) {
    CertRequest r;
    r.common_name = id;
    r.client = true;
    if (!id.empty()) r.uri_sans = {std::string(kTrust) + "/" + id};
    r.not_before_s = not_before;
    r.not_after_s = not_after;
    auto c = IssueCert(ca ? *ca : ca_, r);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? *c : CertAndKey{};
  }

  std::unique_ptr<AgentClient> Connect(const CertAndKey& id, const std::string& trusted = "") {
    AgentClientOptions o;
    o.target = "127.0.0.1:" + std::to_string(server_obj_->port());
    o.ca_pem = trusted.empty() ? ca_.cert_pem : trusted;
    o.cert_pem = id.cert_pem;
    o.key_pem = id.key_pem;
    o.deadline = milliseconds(5000);
    auto c = AgentClient::Connect(o);
    EXPECT_TRUE(c.ok());
    return c.ok() ? std::move(*c) : nullptr;
  }

  std::shared_ptr<grpc::Channel> Channel(const CertAndKey& id) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ca_.cert_pem;
    ssl.pem_cert_chain = id.cert_pem;
    ssl.pem_private_key = id.key_pem;
    return grpc::CreateChannel("127.0.0.1:" + std::to_string(server_obj_->port()),
                               grpc::SslCredentials(ssl));
  }

  static v1::ApplyDeploymentRequest Spec(const std::string& name, int version) {
    v1::ApplyDeploymentRequest req;
    auto* s = req.mutable_spec();
    s->set_name(name);
    s->set_spec_json("{\"model\":{\"sha256\":\"" + std::string(64, 'b') +
                     "\",\"uri\":\"tiny.gguf\"},\"name\":\"" + name +
                     "\",\"v\":" + std::to_string(version) + "}");
    s->set_spec_digest("sha256:" + Sha256Hex(s->spec_json()));
    s->set_model_uri("tiny.gguf");
    s->set_model_sha256(std::string(64, 'b'));
    return req;
  }

  std::filesystem::path dir_;
  CertAndKey ca_, server_;
  std::unique_ptr<agent::PolicyHolder> policy_;
  std::unique_ptr<agent::DesiredState> state_;
  std::unique_ptr<agent::AuditLog> audit_;
  agent::EgressLedger egress_;
  std::unique_ptr<AgentServer> server_obj_;
};

// Calls a method by its full name with an all-defaults request; for a server stream, reads at
// most one message and cancels.
grpc::Status CallByName(const std::shared_ptr<grpc::Channel>& channel,
                        const google::protobuf::MethodDescriptor* m) {
  const std::string path = "/" + m->service()->full_name() + "/" + m->name();
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + milliseconds(5000));
  // Zero bytes: a request with every field at its default.
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1), response;
  if (!m->server_streaming()) {
    grpc::internal::RpcMethod method(path.c_str(), grpc::internal::RpcMethod::NORMAL_RPC, channel);
    return grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
        channel.get(), method, &ctx, request, &response);
  }
  grpc::internal::RpcMethod method(path.c_str(), grpc::internal::RpcMethod::SERVER_STREAMING,
                                   channel);
  std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader(
      grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(channel.get(), method, &ctx,
                                                                    request));
  const bool got = reader->Read(&response);
  if (got) ctx.TryCancel();
  grpc::Status s = reader->Finish();
  if (got && s.error_code() == grpc::StatusCode::CANCELLED) return grpc::Status::OK;
  return s;
}

TEST_F(AgentServerTest, EveryRpcTimesEveryRoleFollowsThePolicy) {
  const auto* service = v1::WhoAmIRequest::descriptor()->file()->FindServiceByName("AgentService");
  ASSERT_NE(service, nullptr);
  ASSERT_GE(service->method_count(), 13);
  int calls = 0, denied = 0;
  for (const auto& [id, allowed] : ExpectedAllowed()) {
    auto channel = Channel(Client(id));
    for (int i = 0; i < service->method_count(); ++i) {
      const auto* m = service->method(i);
      const grpc::Status s = CallByName(channel, m);
      ++calls;
      const bool expect_allowed = allowed.count(m->name()) > 0;
      if (expect_allowed) {
        EXPECT_NE(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << id << " " << m->name() << ": " << s.error_message();
        EXPECT_NE(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << id << " " << m->name();
        EXPECT_NE(s.error_code(), grpc::StatusCode::UNAVAILABLE) << id << " " << m->name();
      } else {
        ++denied;
        EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << id << " " << m->name() << ": " << s.error_message();
        EXPECT_NE(s.error_message().find(m->name()), std::string::npos) << s.error_message();
        const std::string role = RoleOf(id);
        if (!role.empty()) {
          EXPECT_NE(s.error_message().find("role " + role), std::string::npos) << s.error_message();
        } else {
          EXPECT_NE(s.error_message().find("no role"), std::string::npos) << s.error_message();
        }
      }
    }
  }
  EXPECT_GT(denied, 0);
  // Every call left an audit record before it took effect; the chain is intact.
  auto records = audit_->Query({.after_seq = 0, .limit = 100000});
  ASSERT_TRUE(records.ok());
  int admitted_records = 0, denied_records = 0;
  for (const auto& r : *records) {
    if (r.entry.outcome == "allowed") ++admitted_records;
    if (r.entry.outcome == "denied") ++denied_records;
  }
  EXPECT_EQ(admitted_records + denied_records, calls);
  EXPECT_EQ(denied_records, denied);
  auto v = audit_->Verify();
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->intact) << v->reason;
}

TEST_F(AgentServerTest, WhoAmIReturnsIdentityAndRole) {
  auto client = Connect(Client("vendor/operator"));
  auto me = client->WhoAmI();
  ASSERT_TRUE(me.ok()) << me.status().ToString();
  EXPECT_EQ(me->identity(), "spiffe://example.org/vendor/operator");
  EXPECT_EQ(me->role(), "vendor-operator");
  EXPECT_EQ(me->audit_scope(), "own");
  EXPECT_EQ(me->allowed_rpcs_size(), 12);
}

TEST_F(AgentServerTest, UntrustedNoOrExpiredCertificatesAreRefused) {
  auto other_ca = CreateCa("another CA", 3600);
  ASSERT_TRUE(other_ca.ok());
  // A client certificate signed by an unrelated CA.
  auto wrong = Connect(Client("customer/admin", -300, 3600, &*other_ca));
  auto r1 = wrong->WhoAmI();
  EXPECT_EQ(r1.status().code(), StatusCode::kUnavailable) << r1.status().ToString();
  // No client certificate at all.
  auto none = Connect(CertAndKey{});
  auto r2 = none->WhoAmI();
  EXPECT_EQ(r2.status().code(), StatusCode::kUnavailable) << r2.status().ToString();
  // Expired: valid from two hours ago to one hour ago.
  auto expired = Connect(Client("customer/admin", -7200, -3600));
  auto r3 = expired->WhoAmI();
  EXPECT_EQ(r3.status().code(), StatusCode::kUnavailable) << r3.status().ToString();
  // Not yet valid.
  auto future = Connect(Client("customer/admin", 3600, 7200));
  EXPECT_EQ(future->WhoAmI().status().code(), StatusCode::kUnavailable);
  // The client does not trust the agent's CA.
  auto distrust = Connect(Client("customer/admin"), other_ca->cert_pem);
  EXPECT_EQ(distrust->WhoAmI().status().code(), StatusCode::kUnavailable);
  // None of these reached a handler: nothing was audited.
  auto head = audit_->Head();
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->first, 0);
}

TEST_F(AgentServerTest, CertificateWithoutSpiffeIdIsUnauthenticated) {
  auto anon = Connect(Client(""));
  auto r = anon->WhoAmI();
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated) << r.status().ToString();
  auto records = audit_->Query({});
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 1u);
  EXPECT_EQ((*records)[0].entry.outcome, "unauthenticated");
}

TEST_F(AgentServerTest, DeploymentsApplyIdempotentlyWithGenerations) {
  auto op = Connect(Client("vendor/operator"));
  auto a = op->ApplyDeployment(Spec("chat", 1));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->generation(), 1);
  EXPECT_TRUE(a->changed());
  auto again = op->ApplyDeployment(Spec("chat", 1));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->generation(), 1);
  EXPECT_FALSE(again->changed());
  auto b = op->ApplyDeployment(Spec("chat", 2));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->generation(), 2);
  auto got = op->GetDeployment("chat");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->generation(), 2);
  EXPECT_EQ(got->applied_by(), "spiffe://example.org/vendor/operator");
  EXPECT_EQ(got->spec().spec_digest(), Spec("chat", 2).spec().spec_digest());
  EXPECT_EQ(got->status().phase(), v1::DEPLOYMENT_PHASE_PENDING);
  auto list = op->ListDeployments();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->deployments_size(), 1);
  auto bad = Spec("chat", 3);
  bad.mutable_spec()->set_spec_digest("sha256:" + std::string(64, '0'));
  EXPECT_EQ(op->ApplyDeployment(bad).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(op->DeleteDeployment("chat", 1).status().code(), StatusCode::kFailedPrecondition);
  auto del = op->DeleteDeployment("chat", 2);
  ASSERT_TRUE(del.ok());
  EXPECT_EQ(del->last_generation(), 2);
  EXPECT_EQ(op->GetDeployment("chat").status().code(), StatusCode::kNotFound);
  // Auditors read, never write.
  auto auditor = Connect(Client("customer/auditor"));
  EXPECT_EQ(auditor->ApplyDeployment(Spec("x", 1)).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(state_->Get("x").status().code(), StatusCode::kNotFound);
  // Mutations leave an outcome record after the admission record.
  auto recs =
      audit_->Query({.after_seq = 0, .limit = 1000, .identity = "", .rpc = "ApplyDeployment"});
  ASSERT_TRUE(recs.ok());
  std::multiset<std::string> outcomes;
  for (const auto& r : *recs) outcomes.insert(r.entry.outcome);
  EXPECT_EQ(outcomes.count("allowed"), 4u);
  EXPECT_EQ(outcomes.count("ok"), 3u);
  EXPECT_EQ(outcomes.count("error: INVALID_ARGUMENT"), 1u);
  EXPECT_EQ(outcomes.count("denied"), 1u);
}

TEST_F(AgentServerTest, CallFailsWhenItsAuditRecordCannotBeWritten) {
  auto op = Connect(Client("vendor/operator"));
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "audit.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  auto r = op->ApplyDeployment(Spec("blocked", 1), milliseconds(15000));
  sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  EXPECT_EQ(r.status().code(), StatusCode::kInternal) << r.status().ToString();
  EXPECT_NE(r.status().message().find("audit"), std::string::npos);
  // The call had no effect.
  EXPECT_EQ(state_->Get("blocked").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(op->ApplyDeployment(Spec("blocked", 1)).ok());
}

TEST_F(AgentServerTest, AuditLogIsScopedByRoleAndCarriesTheChain) {
  auto op = Connect(Client("vendor/operator"));
  auto op2 = Connect(Client("vendor/second-operator"));
  auto admin = Connect(Client("customer/admin"));
  ASSERT_TRUE(op->WhoAmI().ok());
  ASSERT_TRUE(op2->WhoAmI().ok());
  ASSERT_TRUE(admin->WhoAmI().ok());
  auto own = op->ListAuditLog({});
  ASSERT_TRUE(own.ok()) << own.status().ToString();
  EXPECT_EQ(own->scope(), "own");
  ASSERT_GE(own->records_size(), 2);  // its WhoAmI and this ListAuditLog
  for (const auto& r : own->records()) {
    EXPECT_EQ(r.identity(), "spiffe://example.org/vendor/operator");
    EXPECT_EQ(r.hash(), Sha256Hex(r.prev_hash() + r.canonical()));
  }
  EXPECT_TRUE(own->head().verified());
  v1::ListAuditLogRequest peek;
  peek.set_identity("spiffe://example.org/vendor/second-operator");
  EXPECT_EQ(op->ListAuditLog(peek).status().code(), StatusCode::kPermissionDenied);
  auto all = admin->ListAuditLog({});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->scope(), "all");
  std::set<std::string> ids;
  std::string prev = agent::kGenesisHash;
  for (const auto& r : all->records()) {
    ids.insert(r.identity());
    EXPECT_EQ(r.prev_hash(), prev);  // the full log chains record to record
    prev = r.hash();
  }
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_EQ(all->head().hash(), prev);
  // Paging.
  v1::ListAuditLogRequest page;
  page.set_page_size(2);
  auto p1 = admin->ListAuditLog(page);
  ASSERT_TRUE(p1.ok());
  EXPECT_EQ(p1->records_size(), 2);
  EXPECT_EQ(p1->next_after_seq(), p1->records(1).seq());
}

TEST_F(AgentServerTest, EgressLedgerCountsResponseBytesAndNoPayload) {
  auto op = Connect(Client("vendor/operator"));
  auto me = op->WhoAmI();
  ASSERT_TRUE(me.ok());
  auto info = op->GetAgentInfo();
  ASSERT_TRUE(info.ok());
  auto auditor = Connect(Client("customer/auditor"));
  auto ledger = auditor->GetEgressLedger();
  ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
  int64_t whoami_bytes = -1, info_bytes = -1;
  for (const auto& e : ledger->entries()) {
    if (e.identity() != "spiffe://example.org/vendor/operator") continue;
    if (e.rpc() == "WhoAmI") whoami_bytes = e.bytes();
    if (e.rpc() == "GetAgentInfo") info_bytes = e.bytes();
  }
  EXPECT_EQ(whoami_bytes, static_cast<int64_t>(me->ByteSizeLong()));
  EXPECT_EQ(info_bytes, static_cast<int64_t>(info->ByteSizeLong()));
  ASSERT_TRUE(ledger->vendor_bytes_by_kind().contains("payload"));
  EXPECT_EQ(ledger->vendor_bytes_by_kind().at("payload"), 0);
  EXPECT_EQ(ledger->payload_bytes_to_vendor(), 0);
  EXPECT_EQ(ledger->vendor_bytes_by_kind().at("identity"), whoami_bytes);
  auto facts = auditor->GetComplianceFacts();
  ASSERT_TRUE(facts.ok());
  EXPECT_TRUE(facts->mtls_required());
  EXPECT_EQ(facts->tls_min_version(), "TLS1.2");
  EXPECT_TRUE(facts->audit_chain_intact());
  EXPECT_EQ(facts->payload_bytes_to_vendor(), 0);
  EXPECT_EQ(facts->cloud().provider(), "on-prem");
  ASSERT_EQ(facts->vendor_scope_size(), 1);
  EXPECT_EQ(facts->vendor_scope(0).role(), "vendor-operator");
}

TEST_F(AgentServerTest, InventoryAndWatchStreams) {
  auto op = Connect(Client("vendor/operator"));
  auto inv = op->GetInventory();
  ASSERT_TRUE(inv.ok());
  ASSERT_GE(inv->devices_size(), 1);
  EXPECT_EQ(inv->devices(0).kind(), "cpu");
  std::atomic<int> n{0};
  auto watch = op->WatchInventory(250, milliseconds(1200), [&](const v1::Inventory&) { ++n; });
  Status end = watch->Wait();
  EXPECT_TRUE(end.ok() || end.code() == StatusCode::kDeadlineExceeded) << end.ToString();
  EXPECT_GE(n.load(), 3);
  EXPECT_LE(n.load(), 6);
  // Cancel ends a long watch promptly.
  std::atomic<int> m{0};
  auto metrics = op->WatchMetrics(250, milliseconds(60000), [&](const v1::MetricsSnapshot& s) {
    EXPECT_GE(s.devices_size(), 1);
    ++m;
  });
  while (m.load() == 0) std::this_thread::sleep_for(milliseconds(10));
  const auto t0 = std::chrono::steady_clock::now();
  metrics->Cancel();
  EXPECT_EQ(metrics->Wait().code(), StatusCode::kCancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, milliseconds(2000));
  // A denied role gets no stream.
  auto auditor = Connect(Client("customer/auditor"));
  auto denied = auditor->WatchInventory(250, milliseconds(2000), [](const v1::Inventory&) {
    ADD_FAILURE() << "denied stream delivered a message";
  });
  EXPECT_EQ(denied->Wait().code(), StatusCode::kPermissionDenied);
}

TEST_F(AgentServerTest, ShutdownEndsWatchStreamsWithinGrace) {
  auto op = Connect(Client("vendor/operator"));
  std::atomic<int> n{0};
  auto watch =
      op->WatchMetrics(1000, milliseconds(60000), [&](const v1::MetricsSnapshot&) { ++n; });
  while (n.load() == 0) std::this_thread::sleep_for(milliseconds(10));
  const auto t0 = std::chrono::steady_clock::now();
  server_obj_->Shutdown(milliseconds(3000));
  server_obj_->Wait();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, milliseconds(2500));
  EXPECT_TRUE(watch->Wait().ok());
}

TEST_F(AgentServerTest, PolicyReloadTakesEffectOnTheNextCall) {
  auto auditor = Connect(Client("customer/auditor"));
  EXPECT_EQ(auditor->ListDeployments().status().code(), StatusCode::kPermissionDenied);
  auto wider = agent::AgentPolicy::Parse(
      "version: 1\nroles:\n  customer-auditor:\n    rpcs: [ListDeployments]\nidentities:\n"
      "  - match: spiffe://example.org/customer/auditor\n    role: customer-auditor\n",
      "new.yaml", AgentRpcNames());
  ASSERT_TRUE(wider.ok()) << wider.status().ToString();
  policy_->Set(*wider);
  EXPECT_TRUE(auditor->ListDeployments().ok());
  EXPECT_EQ(auditor->WhoAmI().status().code(), StatusCode::kPermissionDenied);
}

TEST_F(AgentServerTest, RunValidationWithoutRunnerIsUnimplementedAndNamesWhy) {
  auto op = Connect(Client("vendor/operator"));
  ASSERT_TRUE(op->ApplyDeployment(Spec("v", 1)).ok());
  v1::RunValidationRequest req;
  req.set_name("v");
  auto r = op->RunValidation(req);
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(r.status().message().find("validation"), std::string::npos);
  req.set_name("missing");
  EXPECT_EQ(op->RunValidation(req).status().code(), StatusCode::kNotFound);
}

TEST(AgentProto, EveryMessageIsFreeOfPayloadFields) {
  // Boundary rule: no field of any message of the API may be named like a prompt or output
  // text. (Digests of them are allowed: *_digest.)
  const auto* file = v1::WhoAmIRequest::descriptor()->file();
  for (int i = 0; i < file->message_type_count(); ++i) {
    const auto* msg = file->message_type(i);
    for (int f = 0; f < msg->field_count(); ++f) {
      // A message-typed field (e.g. "prompts", a list of PromptResult) is checked as a message.
      if (msg->field(f)->type() == google::protobuf::FieldDescriptor::TYPE_MESSAGE) continue;
      const std::string name = msg->field(f)->name();
      const bool digest = name.find("digest") != std::string::npos;
      const bool count = name.find("tokens") != std::string::npos;
      const bool verdict = name.find("match") != std::string::npos;  // a yes/no answer
      for (const char* bad : {"prompt", "output", "completion", "text", "content", "weights"}) {
        if (name.find(bad) != std::string::npos) {
          EXPECT_TRUE(digest || count || verdict) << msg->name() << "." << name;
        }
      }
    }
  }
}

}  // namespace
}  // namespace sextant::rpc
