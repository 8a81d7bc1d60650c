// A local fleet for push tests and the push benchmark: N real agents (the agent's gRPC service
// over mutual TLS on 127.0.0.1, certificates made here) in this process, each with its own
// state dir, model store (a copy of the model), trusted console key and the real engine
// validation runner; a console store with every agent registered as a target; the console's
// signing key; a deployment spec of the model validated locally (signed report in the store)
// and approved by the customer (whose approver key the agents trust: two-party deployments).
//
// Thread-safety: use from one thread.
#pragma once

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "app/agent/audit/audit_log.h"
#include "app/agent/audit/egress_ledger.h"
#include "app/agent/policy/access_policy.h"
#include "app/agent/state/desired_state.h"
#include "app/agent/state/engine_validation_runner.h"
#include "app/common/deployment_spec.h"
#include "app/common/signing.h"
#include "app/common/validation_runner.h"
#include "app/console/store/console_database.h"
#include "connectors/agent/agent_server.h"
#include "connectors/agent/identity_certs.h"
#include "engine/base/sha256.h"
#include "tests/support/customer_approver.h"

namespace sextant::pushtest {

namespace fs = std::filesystem;

inline constexpr char kPolicy[] = R"yaml(
version: 1
roles:
  vendor-operator:
    rpcs: [WhoAmI, GetAgentInfo, GetInventory, ApplyDeployment, GetDeployment, ListDeployments,
           DeleteDeployment, RunValidation, GetComplianceFacts]
    audit_scope: own
identities:
  - match: spiffe://example.org/vendor/
    role: vendor-operator
)yaml";

// A spec of `model_file` (named by its file name in each agent's store).
inline std::string SpecYaml(const std::string& name, const std::string& model_file,
                            const std::string& sha256, int max_tokens) {
  return "apiVersion: sextant/v1\nkind: Deployment\nname: " + name + "\nmodel:\n  uri: file://" +
         model_file + "\n  sha256: " + sha256 +
         "\nengine:\n  backend: cpu\n  threads: 1\n  contextLength: 256\n"
         "validation:\n  maxTokens: " +
         std::to_string(max_tokens) +
         "\n  prompts:\n    - Once upon a time\n    - The little dog\n";
}

struct FleetAgent {
  std::string name;
  fs::path dir;
  fs::path model_store;
  std::unique_ptr<agent::DesiredState> state;
  std::unique_ptr<agent::AuditLog> audit;
  std::unique_ptr<agent::PolicyHolder> policy;
  std::unique_ptr<agent::EgressLedger> egress;
  std::unique_ptr<agent::EngineValidationRunner> runner;
  std::unique_ptr<rpc::AgentServer> server;
  int port = 0;
};

// The model every push test runs: stories260K from ../shared (absent in a fresh clone; tests skip).
inline fs::path TinyModel() { return fs::path(SEXTANT_SHARED_DIR) / "models" / "stories260K.gguf"; }

class LocalFleet {
 public:
  // `root` is created (and removed by the destructor).
  explicit LocalFleet(fs::path root) : root_(std::move(root)) {}
  ~LocalFleet() {
    for (auto& a : agents_) StopAgent(*a);
    agents_.clear();
    store_.reset();
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  // Certificates, console store, signing key. model: the GGUF file every agent gets a copy of.
  Status Init(const fs::path& model) {
    std::error_code ec;
    fs::remove_all(root_, ec);
    fs::create_directories(root_);
    model_ = model;
    SEXTANT_ASSIGN_OR_RETURN(model_sha_, Sha256FileHex(model));
    SEXTANT_ASSIGN_OR_RETURN(ca_, rpc::CreateCa("test CA", 86400));
    rpc::CertRequest srv;
    srv.common_name = "agent";
    srv.dns_sans = {"localhost"};
    srv.ip_sans = {"127.0.0.1"};
    srv.server = true;
    SEXTANT_ASSIGN_OR_RETURN(server_cert_, rpc::IssueCert(ca_, srv));
    rpc::CertRequest cli;
    cli.common_name = "console";
    cli.uri_sans = {"spiffe://example.org/vendor/console"};
    cli.client = true;
    SEXTANT_ASSIGN_OR_RETURN(auto c, rpc::IssueCert(ca_, cli));
    SEXTANT_RETURN_IF_ERROR(rpc::WriteTextFile(root_ / "ca.pem", ca_.cert_pem, false));
    SEXTANT_RETURN_IF_ERROR(rpc::WriteTextFile(root_ / "console.pem", c.cert_pem, false));
    SEXTANT_RETURN_IF_ERROR(rpc::WriteTextFile(root_ / "console.key", c.key_pem, true));
    SEXTANT_ASSIGN_OR_RETURN(store_, console::ConsoleDatabase::Open(root_ / "console"));
    SEXTANT_ASSIGN_OR_RETURN(auto key, report::SigningKey::Generate());
    SEXTANT_RETURN_IF_ERROR(key.Save(key_path()));
    key_ = std::make_unique<report::SigningKey>(std::move(key));
    trusted_keys_ = {key_->public_key().Pem()};
    SEXTANT_RETURN_IF_ERROR(approver_.Init(root_));
    SEXTANT_ASSIGN_OR_RETURN(
        policy_, agent::AgentPolicy::Parse(kPolicy, "policy.yaml", rpc::AgentRpcNames()));
    return Status();
  }

  // Starts agent "agent-<i>" (a new one, or one stopped before: same state and port).
  Status StartAgent(size_t i) {
    while (agents_.size() <= i) agents_.push_back(nullptr);
    if (!agents_[i]) {
      auto a = std::make_unique<FleetAgent>();
      a->name = "agent-" + std::to_string(i);
      a->dir = root_ / a->name;
      a->model_store = a->dir / "models";
      fs::create_directories(a->model_store);
      fs::copy_file(model_, a->model_store / model_.filename());
      agents_[i] = std::move(a);
    }
    FleetAgent& a = *agents_[i];
    SEXTANT_ASSIGN_OR_RETURN(a.state, agent::DesiredState::Open(a.dir));
    SEXTANT_ASSIGN_OR_RETURN(a.audit, agent::AuditLog::Open(a.dir));
    a.policy = std::make_unique<agent::PolicyHolder>(policy_);
    a.egress = std::make_unique<agent::EgressLedger>();
    a.runner = std::make_unique<agent::EngineValidationRunner>(a.model_store, "", 1);
    rpc::AgentServerOptions o;
    o.listen = "127.0.0.1:" + std::to_string(a.port);
    o.ca_pem = ca_.cert_pem;
    o.cert_pem = server_cert_.cert_pem;
    o.key_pem = server_cert_.key_pem;
    o.agent_name = a.name;
    o.console_keys_pem = trusted_keys_;
    o.model_store = a.model_store;
    o.state_dir = a.dir;
    o.admission = approver_.Admission();
    if (admit_model_) o.admission.allowed_model_sha256 = {model_sha_};
    rpc::AgentServerDeps d;
    d.state = a.state.get();
    d.audit = a.audit.get();
    d.policy = a.policy.get();
    d.egress = a.egress.get();
    d.validation = a.runner.get();
    SEXTANT_ASSIGN_OR_RETURN(a.server, rpc::AgentServer::Start(o, d));
    const bool first = a.port == 0;
    a.port = a.server->port();
    if (!first) return Status();
    console::Target t;
    t.name = a.name;
    t.endpoint = "127.0.0.1:" + std::to_string(a.port);
    t.ca_path = (root_ / "ca.pem").string();
    t.cert_path = (root_ / "console.pem").string();
    t.key_path = (root_ / "console.key").string();
    t.server_name = "localhost";
    t.labels = {{"ring", i % 2 ? "odd" : "even"}};
    return store_->targets().Add(t);
  }
  Status StartAgents(size_t n) {
    for (size_t i = 0; i < n; ++i) SEXTANT_RETURN_IF_ERROR(StartAgent(i));
    return Status();
  }
  void StopAgent(FleetAgent& a) {
    if (a.server) a.server->Shutdown(std::chrono::milliseconds(0));
    a.server.reset();
    a.runner.reset();
    a.state.reset();
    a.audit.reset();
  }

  // Writes the spec file `<name>.yaml` and validates it locally (CPU, one thread): the signed
  // report lands in the console store; then the customer approves it. Returns the spec file.
  Result<fs::path> WriteAndValidate(const std::string& name, int max_tokens) {
    const fs::path file = root_ / (name + "-" + std::to_string(max_tokens) + ".yaml");
    std::ofstream(file) << SpecYaml(name, model_.filename().string(), model_sha_, max_tokens);
    SEXTANT_ASSIGN_OR_RETURN(spec::DeploymentSpec spec, spec::LoadDeploymentSpec(file));
    validate::ValidateOptions vo;
    vo.model_dir = model_.parent_path();
    vo.threads = 1;
    SEXTANT_ASSIGN_OR_RETURN(validate::ValidationRun run, validate::RunValidation(spec, vo));
    if (!run.report.passed) return Status::Internal("local validation did not pass");
    SEXTANT_ASSIGN_OR_RETURN(report::SignedReport signed_report,
                             report::SignReport(run.report, *key_));
    SEXTANT_RETURN_IF_ERROR(store_->reports().Add(run.report, signed_report).status());
    last_report_ = run.report;
    SEXTANT_RETURN_IF_ERROR(approver_.Approve(spec::SpecDigest(spec)));
    return file;
  }

  std::vector<std::string> TargetNames() const {
    std::vector<std::string> out;
    for (const auto& a : agents_) out.push_back(a->name);
    return out;
  }

  FleetAgent& agent(size_t i) { return *agents_[i]; }
  size_t size() const { return agents_.size(); }
  console::ConsoleDatabase& store() { return *store_; }
  fs::path key_path() const { return root_ / "console-signing-key.pem"; }
  const fs::path& root() const { return root_; }
  const report::ValidationReport& last_report() const { return last_report_; }
  const std::string& model_sha() const { return model_sha_; }
  test_agents::CustomerApprover& approver() { return approver_; }
  // Agents started after this call admit every spec of the model (admission.allow_models), as
  // a customer does who lets the vendor rescale what it approved without a new approval.
  void AdmitEverySpecOfTheModel() { admit_model_ = true; }
  // Keys the agents started after this call trust.
  void set_trusted_keys(std::vector<std::string> pems) { trusted_keys_ = std::move(pems); }

 private:
  fs::path root_;
  fs::path model_;
  std::string model_sha_;
  rpc::CertAndKey ca_, server_cert_;
  std::unique_ptr<console::ConsoleDatabase> store_;
  std::unique_ptr<report::SigningKey> key_;
  std::vector<std::string> trusted_keys_;
  std::shared_ptr<const agent::AgentPolicy> policy_;
  std::vector<std::unique_ptr<FleetAgent>> agents_;
  report::ValidationReport last_report_;
  test_agents::CustomerApprover approver_;
  bool admit_model_ = false;
};

}  // namespace sextant::pushtest
