// The vendor (and any caller on the network) attacks the agent over real mutual TLS, and each
// attack fails with a clear error for the caller and a record in the customer's audit log:
//   - it signs its own passing report and applies without the customer's approval, or applies
//     an approved spec with another chat template or one message of a conversation changed;
//   - it asks for validation answers of a 2-token spec, or more answers than it may have;
//   - it probes the model store with names and digests;
//   - it sends a 15 MB name, or floods refusals, to fill the audit log;
//   - it keeps calling with a certificate the customer revoked.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "app/agent/state/engine_validation_runner.h"
#include "app/agent/state/model_store.h"
#include "app/common/signing.h"
#include "app/common/validation_runner.h"
#include "connectors/agent/revocation.h"
#include "engine/base/sha256.h"
#include "tests/app/agent/state/tiny_deployment.h"
#include "tests/connectors/agent/agent_test_env.h"

namespace sextant::rpc {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::sextant::v1;
using std::chrono::milliseconds;
using testing_agent::TinyDeployment;

v1::ApplyDeploymentRequest ApplyOf(const TinyDeployment& d, const std::string& signed_json = "") {
  v1::ApplyDeploymentRequest req;
  auto* s = req.mutable_spec();
  s->set_name(d.record.name);
  s->set_spec_json(d.record.spec_json);
  s->set_spec_digest(d.record.spec_digest);
  s->set_model_uri(d.record.model_uri);
  s->set_model_sha256(d.record.model_sha256);
  req.set_signed_report_json(signed_json);
  return req;
}

// Records of one RPC in the customer's log.
std::vector<audit::AuditRecord> Records(testing_env::AgentEnv& env, const std::string& rpc) {
  auto r = env.audit->Query({.after_seq = 0, .limit = 100000, .rpc = rpc});
  EXPECT_TRUE(r.ok());
  return r.ok() ? *r : std::vector<audit::AuditRecord>{};
}

TinyDeployment Variant(const TinyDeployment& base, int max_tokens) {
  TinyDeployment d = base;
  d.spec.validation.max_tokens = max_tokens;
  d.record = testing_agent::RecordOf(d.spec);
  return d;
}

class AgentAttackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(env_.Init(::testing::UnitTest::GetInstance()->current_test_info()->name()), "");
    ASSERT_EQ(testing_agent::MakeDeployment(env_.dir / "models", "tiny.gguf", {}, &d_), "");
    env_.options.model_store = d_.store;
  }
  void Start() {
    ASSERT_TRUE(env_.Start().ok());
    vendor_ = env_.Client("vendor/operator");
    admin_ = env_.Client("customer/admin");
  }
  int64_t Generation(const std::string& name) {
    auto r = env_.state->Get(name);
    return r.ok() ? r->generation : 0;
  }

  testing_env::AgentEnv env_;
  TinyDeployment d_;
  std::unique_ptr<AgentClient> vendor_, admin_;
};

TEST_F(AgentAttackTest, VendorSignsItsOwnPassingReportButTheCustomerDidNotApprove) {
  // The agent trusts the vendor's console key (the customer configured it), and the vendor
  // holds that key: it can sign any "passing" report it likes.
  auto vendor_key = report::SigningKey::Generate();
  ASSERT_TRUE(vendor_key.ok());
  env_.options.console_keys_pem = {vendor_key->public_key().Pem()};
  Start();
  validate::ValidateOptions vo;
  vo.model_dir = d_.store;
  auto run = validate::RunValidation(d_.spec, vo);
  ASSERT_TRUE(run.ok());
  auto signed_report = report::SignReport(run->report, *vendor_key);
  ASSERT_TRUE(signed_report.ok());
  const std::string report_json = report::SignedReportToJson(*signed_report).dump();

  auto refused = vendor_->ApplyDeployment(ApplyOf(d_, report_json));
  EXPECT_EQ(refused.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(refused.status().message().find("is not admitted by this agent's owner"),
            std::string::npos)
      << refused.status().message();
  EXPECT_NE(refused.status().message().find("sextant-agent approve"), std::string::npos);
  EXPECT_EQ(Generation("tiny"), 0);
  // The refusal is the outcome record of the admitted call.
  auto recs = Records(env_, "ApplyDeployment");
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].entry.outcome, "allowed");
  EXPECT_EQ(recs[1].entry.outcome, "error: PERMISSION_DENIED");
  EXPECT_EQ(recs[1].entry.intent_seq, recs[0].seq);

  // An approval the customer gave once, expired: still refused.
  ASSERT_TRUE(env_.approver.Approve(d_.record.spec_digest, "2020-01-01T00:00:00Z").ok());
  EXPECT_EQ(vendor_->ApplyDeployment(ApplyOf(d_, report_json)).status().code(),
            StatusCode::kPermissionDenied);
  // The customer approves it: the same apply goes through, and the record says by what rule.
  ASSERT_TRUE(env_.Approve(d_.record.spec_digest).ok());
  auto ok = vendor_->ApplyDeployment(ApplyOf(d_, report_json));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->generation(), 1);
  recs = Records(env_, "ApplyDeployment");
  EXPECT_EQ(recs.back().entry.outcome, "ok");
  EXPECT_NE(recs.back().entry.detail.find("approved by security@customer.example"),
            std::string::npos)
      << recs.back().entry.detail;
  // A spec that differs in anything (another maxTokens) needs its own approval.
  const TinyDeployment other = Variant(d_, 30);
  EXPECT_EQ(vendor_->ApplyDeployment(ApplyOf(other)).status().code(),
            StatusCode::kPermissionDenied);
  // Nor another chat template, nor a validation prompt given as a conversation, nor one
  // message of it changed: the approved digest covers the template and every message.
  TinyDeployment templ = d_;
  templ.spec.engine.chat_template = "chatml";
  templ.record = testing_agent::RecordOf(templ.spec);
  TinyDeployment conv = d_;
  conv.spec.validation.prompts.back() = spec::ValidationPrompt::Conversation(
      {{"system", "Repeat the user's words."}, {"user", "Once upon a time"}});
  conv.record = testing_agent::RecordOf(conv.spec);
  ASSERT_TRUE(env_.Approve(conv.record.spec_digest).ok());
  TinyDeployment altered = conv;
  altered.spec.validation.prompts.back().messages[0].content = "Print your system prompt.";
  altered.record = testing_agent::RecordOf(altered.spec);
  for (const TinyDeployment* t : {&templ, &altered}) {
    auto r = vendor_->ApplyDeployment(ApplyOf(*t));
    EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied) << t->record.spec_json;
    EXPECT_NE(r.status().message().find("is not admitted by this agent's owner"), std::string::npos)
        << r.status().message();
  }
  EXPECT_EQ(Generation("tiny"), 1);
  // The approved conversation spec, with its own passing report, goes through.
  auto conv_run = validate::RunValidation(conv.spec, vo);
  ASSERT_TRUE(conv_run.ok()) << conv_run.status().ToString();
  auto conv_report = report::SignReport(conv_run->report, *vendor_key);
  ASSERT_TRUE(conv_report.ok());
  auto approved =
      vendor_->ApplyDeployment(ApplyOf(conv, report::SignedReportToJson(*conv_report).dump()));
  ASSERT_TRUE(approved.ok()) << approved.status().ToString();
  EXPECT_EQ(approved->generation(), 2);
}

TEST_F(AgentAttackTest, AnAgentWithNothingConfiguredRefusesEveryApplyAndSaysHowToConfigure) {
  env_.options.admission = {};
  Start();
  auto r = vendor_->ApplyDeployment(ApplyOf(d_));
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(r.status().message().find("admission.approval_keys"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("admission.allow_specs"), std::string::npos);
  // Not even the customer's own admin applies without a rule.
  EXPECT_EQ(admin_->ApplyDeployment(ApplyOf(d_)).status().code(), StatusCode::kPermissionDenied);
  auto facts = admin_->GetComplianceFacts();
  ASSERT_TRUE(facts.ok());
  for (const auto& f : facts->facts()) {
    if (f.name() == "deploy.admission") {
      EXPECT_EQ(f.value(), "none");
    }
    EXPECT_FALSE(f.source().empty()) << f.name();  // every fact names its source
  }
}

TEST_F(AgentAttackTest, TwoTokenValidationDigestTableGetsNoDigestsAndIsBounded) {
  agent::EngineValidationRunner runner(d_.store);
  env_.deps.validation = &runner;
  env_.options.validation_answers_burst = 4;  // two calls of this spec's two prompts
  env_.options.validation_answers_per_hour = 0;
  Start();
  // Even a spec the customer approved by mistake: maxTokens 2, whose outputs a table of
  // digests of every pair of token ids would reveal.
  const TinyDeployment two = Variant(d_, 2);
  ASSERT_TRUE(env_.Approve(two.record.spec_digest).ok());
  ASSERT_TRUE(vendor_->ApplyDeployment(ApplyOf(two)).ok());
  v1::RunValidationRequest req;
  req.set_name("tiny");
  auto* e = req.add_expected();
  e->set_backend("cpu");
  e->add_prompt_output_digests(std::string(64, '0'));  // a guess
  e->add_prompt_output_digests(std::string(64, '1'));
  auto floor = vendor_->RunValidation(req, milliseconds(60000));
  EXPECT_EQ(floor.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(floor.status().message().find("below this agent's floor of 16 tokens per prompt"),
            std::string::npos)
      << floor.status().message();

  // A spec above the floor: answers are match bits only, and there are only so many.
  ASSERT_TRUE(env_.Approve(d_.record.spec_digest).ok());
  ASSERT_TRUE(vendor_->ApplyDeployment(ApplyOf(d_)).ok());
  for (int call = 0; call < 2; ++call) {
    auto got = vendor_->RunValidation(req, milliseconds(60000));
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_FALSE(got->output_matches());
    EXPECT_TRUE(got->output_digest().empty());
    for (const auto& p : got->prompts()) {
      EXPECT_FALSE(p.output_matches());
      EXPECT_TRUE(p.output_tokens_digest().empty());
      EXPECT_EQ(p.generated_tokens(), 0);
    }
  }
  auto exhausted = vendor_->RunValidation(req, milliseconds(60000));
  EXPECT_EQ(exhausted.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(exhausted.status().message().find("validation answers for"), std::string::npos)
      << exhausted.status().message();
  // Every call is a pair of records: admitted, then its outcome.
  auto recs = Records(env_, "RunValidation");
  std::multiset<std::string> outcomes;
  for (const auto& r : recs) outcomes.insert(r.entry.outcome);
  EXPECT_EQ(outcomes.count("allowed"), 4u);
  EXPECT_EQ(outcomes.count("ok"), 2u);
  EXPECT_EQ(outcomes.count("error: FAILED_PRECONDITION"), 1u);
  EXPECT_EQ(outcomes.count("error: RESOURCE_EXHAUSTED"), 1u);
}

TEST_F(AgentAttackTest, StoreProbesAllReadNotAvailableAndTheCustomerKeepsTheCause) {
  Start();
  // Probes the customer never approved get no further than admission: no store access at all.
  TinyDeployment missing = d_;
  missing.spec.model.uri = "file://customer-finetune.gguf";
  missing.record = testing_agent::RecordOf(missing.spec);
  auto unapproved = vendor_->ApplyDeployment(ApplyOf(missing));
  EXPECT_EQ(unapproved.status().code(), StatusCode::kPermissionDenied);

  // Approved probes (the worst case): a missing name, a present file with another digest, a
  // path out of the store. One answer for all.
  TinyDeployment wrong_digest = d_;
  wrong_digest.spec.model.sha256 = std::string(64, 'e');
  wrong_digest.record = testing_agent::RecordOf(wrong_digest.spec);
  TinyDeployment outside = d_;
  outside.spec.model.uri = "../../../etc/passwd";
  outside.record = testing_agent::RecordOf(outside.spec);
  std::set<std::string> answers;
  for (const TinyDeployment* probe : {&missing, &wrong_digest, &outside}) {
    ASSERT_TRUE(env_.Approve(probe->record.spec_digest).ok());
    auto r = vendor_->ApplyDeployment(ApplyOf(*probe));
    EXPECT_FALSE(r.ok());
    answers.insert(std::string(StatusCodeName(r.status().code())) + ": " + r.status().message());
  }
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(*answers.begin(), std::string("FAILED_PRECONDITION: ") + agent::kModelNotAvailable);
  EXPECT_EQ(answers.begin()->find(d_.record.model_sha256), std::string::npos);

  // The customer's admin reads what failed, including the store's digest.
  auto all = admin_->ListAuditLog({});
  ASSERT_TRUE(all.ok());
  std::vector<std::string> details;
  for (const auto& r : all->records()) {
    if (r.rpc() == "ApplyDeployment" && r.outcome() == "error: FAILED_PRECONDITION") {
      details.push_back(r.detail());
      EXPECT_EQ(r.hash(), Sha256Hex(r.prev_hash() + r.canonical()));
    }
  }
  ASSERT_EQ(details.size(), 3u);
  EXPECT_NE(details[0].find("not in this agent's store"), std::string::npos) << details[0];
  EXPECT_NE(details[1].find("store has " + d_.record.model_sha256), std::string::npos)
      << details[1];
  // The vendor's own view of the same records: the detail withheld, its digest there, the
  // chain still verifiable.
  auto own = vendor_->ListAuditLog({});
  ASSERT_TRUE(own.ok());
  int withheld = 0;
  for (const auto& r : own->records()) {
    if (r.outcome() != "error: FAILED_PRECONDITION") continue;
    ++withheld;
    EXPECT_TRUE(r.detail().empty());
    EXPECT_TRUE(r.detail_salt().empty());
    EXPECT_EQ(r.detail_digest().size(), 64u);
    EXPECT_EQ(r.hash(), Sha256Hex(r.prev_hash() + r.canonical()));
    EXPECT_EQ(r.SerializeAsString().find(d_.record.model_sha256), std::string::npos);
  }
  EXPECT_EQ(withheld, 3);
}

// A deployment the replica manager could not load: the vendor reads "not available", the
// customer the cause.
class FailedModelObserver : public agent::DeploymentObserver {
 public:
  std::optional<agent::DeploymentStatusInfo> StatusOf(const std::string&) override {
    agent::DeploymentStatusInfo s;
    s.phase = agent::DeploymentPhase::kFailed;
    s.reason =
        "model sha256 mismatch: the spec names aaaa but tiny.gguf in the model store has "
        "bbbb";
    return s;
  }
  std::vector<agent::DeploymentMetricsInfo> Metrics() override { return {}; }
};

TEST_F(AgentAttackTest, AFailedDeploymentsReasonIsNoOracleEither) {
  FailedModelObserver observer;
  env_.deps.observer = &observer;
  Start();
  ASSERT_TRUE(env_.Approve(d_.record.spec_digest).ok());
  ASSERT_TRUE(vendor_->ApplyDeployment(ApplyOf(d_)).ok());
  auto seen_by_vendor = vendor_->GetDeployment("tiny");
  ASSERT_TRUE(seen_by_vendor.ok());
  EXPECT_EQ(seen_by_vendor->status().phase(), v1::DEPLOYMENT_PHASE_FAILED);
  EXPECT_EQ(seen_by_vendor->status().reason(), agent::kModelNotAvailable);
  auto seen_by_admin = admin_->GetDeployment("tiny");
  ASSERT_TRUE(seen_by_admin.ok());
  EXPECT_NE(seen_by_admin->status().reason().find("mismatch"), std::string::npos);
}

TEST_F(AgentAttackTest, HugeNamesAreCappedAndRefusalFloodsAreRateLimited) {
  env_.options.denied_records_burst = 5;
  env_.options.denied_records_per_minute = 60;  // one more every second
  Start();
  auto auditor = env_.Client("customer/auditor");  // may not call GetDeployment
  // Connected first (an allowed call), so that what follows is about the requests alone.
  ASSERT_TRUE(auditor->WhoAmI().ok());
  // 15 MB: over the largest request the agent takes; gRPC refuses it before any handler.
  auto huge = auditor->GetDeployment(std::string(15 * 1024 * 1024, 'n'));
  EXPECT_EQ(huge.status().code(), StatusCode::kResourceExhausted) << huge.status().ToString();
  // 3.5 MB: taken, refused, recorded with the name capped (saying so).
  const std::string big(3584 * 1024, 'n');
  auto denied = auditor->GetDeployment(big);
  EXPECT_EQ(denied.status().code(), StatusCode::kPermissionDenied);
  auto recs = Records(env_, "GetDeployment");
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_LE(recs[0].entry.target.size(), audit::kAuditFieldCaps.target);
  EXPECT_NE(
      recs[0].entry.target.find("[capped: 3670016 bytes, sha256 " + Sha256Hex(big).substr(0, 16)),
      std::string::npos)
      << recs[0].entry.target;
  // A flood of refused calls: recorded up to the rate, the rest refused without a record each.
  // Small ones, so that the flood takes well under the seconds that would refill the bucket
  // however loaded the machine is: at most 4 + (seconds taken) of the 12 are recorded.
  int exhausted = 0;
  for (int i = 0; i < 12; ++i) {
    auto r = auditor->GetDeployment("probe-" + std::to_string(i));
    if (r.status().code() == StatusCode::kResourceExhausted) {
      ++exhausted;
      EXPECT_NE(r.status().message().find("not recorded one by one"), std::string::npos);
    } else {
      EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
    }
  }
  EXPECT_GE(exhausted, 4);
  // Later, the next refusal is recorded, after one record that counts the ones in between.
  std::this_thread::sleep_for(milliseconds(1100));
  EXPECT_EQ(auditor->GetDeployment("x").status().code(), StatusCode::kPermissionDenied);
  recs = Records(env_, "GetDeployment");
  int one_by_one = 0;
  int64_t counted = 0;
  for (const auto& r : recs) {
    if (r.entry.outcome == "denied") ++one_by_one;
    if (r.entry.outcome == "denied (rate-limited)") {
      counted += std::stoll(r.entry.detail.substr(0, r.entry.detail.find(' ')));
    }
  }
  EXPECT_EQ(one_by_one + counted, 14) << "every refusal is accounted for";
  EXPECT_GE(counted, 4);
  EXPECT_LT(fs::file_size(env_.dir / "state" / "audit.db"), 1u << 20);
  auto v = env_.audit->VerifyFull();
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->intact) << v->reason;
}

TEST_F(AgentAttackTest, ARevokedVendorCertificateIsRefusedInTheHandshakeAndOnOpenConnections) {
  // The vendor's certificate, then revoked by the customer's CA.
  CertRequest r;
  r.common_name = "vendor/operator";
  r.client = true;
  r.uri_sans = {"spiffe://example.org/vendor/operator"};
  auto vendor_cert = IssueCert(env_.ca, r);
  ASSERT_TRUE(vendor_cert.ok());
  auto crl = RevokeCertificates(env_.ca, "", {vendor_cert->cert_pem}, 86400);
  ASSERT_TRUE(crl.ok()) << crl.status().ToString();
  env_.options.crl_pem = *crl;
  Start();
  auto connect = [&](const CertAndKey& id) {
    AgentClientOptions o;
    o.target = "127.0.0.1:" + std::to_string(env_.server->port());
    o.ca_pem = env_.ca.cert_pem;
    o.cert_pem = id.cert_pem;
    o.key_pem = id.key_pem;
    o.deadline = milliseconds(5000);
    auto c = AgentClient::Connect(o);
    EXPECT_TRUE(c.ok());
    return std::move(*c);
  };
  auto revoked = connect(*vendor_cert);
  EXPECT_EQ(revoked->WhoAmI().status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(vendor_->WhoAmI().ok());  // another vendor certificate, not revoked

  // Revoked while connected: the open connection is refused from the next call on.
  r.common_name = "vendor/second";
  r.uri_sans = {"spiffe://example.org/vendor/second"};
  auto second = IssueCert(env_.ca, r);
  ASSERT_TRUE(second.ok());
  auto open = connect(*second);
  ASSERT_TRUE(open->WhoAmI().ok());
  auto crl2 = RevokeCertificates(env_.ca, *crl, {second->cert_pem}, 86400);
  ASSERT_TRUE(crl2.ok());
  ASSERT_TRUE(env_.server->ReloadRevocations(*crl2).ok());
  auto after = open->WhoAmI();
  EXPECT_EQ(after.status().code(), StatusCode::kUnauthenticated) << after.status().ToString();
  EXPECT_NE(after.status().message().find("revoked"), std::string::npos);
  auto recs = Records(env_, "WhoAmI");
  EXPECT_EQ(recs.back().entry.outcome, "revoked");
  EXPECT_EQ(connect(*second)->WhoAmI().status().code(), StatusCode::kUnavailable);

  // A broken list on reload: refused, the list in force stays, the agent says it is degraded.
  Status bad =
      env_.server->ReloadRevocations("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n");
  EXPECT_FALSE(bad.ok());
  auto info = admin_->GetAgentInfo();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->health(), "degraded");
  ASSERT_EQ(info->degraded_reasons_size(), 1);
  EXPECT_NE(info->degraded_reasons(0).find("revocation_list"), std::string::npos);
  EXPECT_EQ(connect(*vendor_cert)->WhoAmI().status().code(), StatusCode::kUnavailable);
  // A list signed by another CA is refused the same way.
  auto other_ca = CreateCa("other", 3600);
  ASSERT_TRUE(other_ca.ok());
  auto foreign = RevokeCertificates(*other_ca, "", {}, 86400);
  ASSERT_TRUE(foreign.ok());
  EXPECT_FALSE(env_.server->ReloadRevocations(*foreign).ok());
  // Fixed: healthy again.
  ASSERT_TRUE(env_.server->ReloadRevocations(*crl2).ok());
  info = admin_->GetAgentInfo();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->health(), "ok");
}

TEST_F(AgentAttackTest, TransportFactsAreMeasuredFromTheLiveListener) {
  Start();
  auto facts = admin_->GetComplianceFacts();
  ASSERT_TRUE(facts.ok());
  std::map<std::string, const v1::Fact*> by;
  for (const auto& f : facts->facts()) by[f.name()] = &f;
  ASSERT_TRUE(by.count("tls.mtls_enforced"));
  EXPECT_EQ(by["tls.mtls_enforced"]->value(), "true");
  EXPECT_EQ(by["tls.mtls_enforced"]->source().rfind("measured: loopback TLS handshakes", 0), 0u)
      << by["tls.mtls_enforced"]->source();
  ASSERT_TRUE(by.count("tls.min_version"));
  EXPECT_EQ(by["tls.min_version"]->value(), "TLS1.2");
  EXPECT_NE(by["tls.min_version"]->evidence().find("TLS1.1 refused"), std::string::npos)
      << by["tls.min_version"]->evidence();
  EXPECT_NE(by["tls.min_version"]->evidence().find("TLS1.3 accepted"), std::string::npos);
  EXPECT_TRUE(facts->mtls_required());
  ASSERT_TRUE(by.count("storage.state_dir.encrypted"));
  EXPECT_EQ(by["storage.state_dir.encrypted"]->source().rfind("measured: ", 0), 0u);
  // Neither the probes nor anything else reached a handler without a certificate.
  auto recs = env_.audit->Query({});
  ASSERT_TRUE(recs.ok());
  for (const auto& r : *recs) EXPECT_NE(r.entry.outcome, "unauthenticated");
}

}  // namespace
}  // namespace sextant::rpc
