#include "tests/bench/loadgen/loadgen_fleet.h"

#include <openssl/sha.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <thread>

#include "app/agent/audit/audit_log.h"
#include "app/agent/audit/egress_ledger.h"
#include "app/agent/policy/access_policy.h"
#include "app/agent/state/desired_state.h"
#include "app/console/store/console_database.h"
#include "connectors/agent/agent_server.h"
#include "connectors/agent/identity_certs.h"
#include "tests/bench/loadgen/synthetic_sources.h"

namespace sextant::loadgen {
namespace {

namespace fs = std::filesystem;

// The published vendor baseline (resources/policies/agent-policy.example.yaml), so compliance
// views over a load fleet see the usual role layout.
constexpr char kPolicy[] = R"yaml(
version: 1
roles:
  vendor-operator:
    rpcs: [WhoAmI, GetAgentInfo, GetInventory, WatchInventory,
           ApplyDeployment, GetDeployment, ListDeployments, DeleteDeployment,
           WatchMetrics, RunValidation, GetComplianceFacts, ListAuditLog]
    audit_scope: own
  customer-admin:
    rpcs: [WhoAmI, GetAgentInfo, GetInventory, WatchInventory,
           ApplyDeployment, GetDeployment, ListDeployments, DeleteDeployment,
           WatchMetrics, RunValidation, GetComplianceFacts, ListAuditLog, GetEgressLedger]
    audit_scope: all
  customer-auditor:
    rpcs: [WhoAmI, GetAgentInfo, GetComplianceFacts, ListAuditLog, GetEgressLedger]
    audit_scope: all
  customer-app:
    rpcs: []
    audit_scope: own
identities:
  - match: spiffe://example.org/vendor/
    role: vendor-operator
  - match: spiffe://example.org/customer/admin
    role: customer-admin
  - match: spiffe://example.org/customer/auditor
    role: customer-auditor
  - match: spiffe://example.org/customer/app
    role: customer-app
)yaml";

constexpr char kDeployment[] = "chat";

std::string Sha256Hex(const std::string& s) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : d) {
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

struct Pki {
  rpc::CertAndKey server;
  fs::path ca_pem, console_pem, console_key;
};

Result<Pki> EnsurePki(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir / "ca.key", ec)) {
    // The console's key is made on its side; the CA issues its certificate from the request.
    std::filesystem::create_directories(dir, ec);
    SEXTANT_ASSIGN_OR_RETURN(
        rpc::KeyAndCsr console,
        rpc::CreateKeyAndCsr("vendor/console", {"spiffe://example.org/vendor/console"}));
    SEXTANT_RETURN_IF_ERROR(rpc::WriteTextFile(dir / "vendor-console.key", console.key_pem, true));
    rpc::CertsInitOptions o;
    o.out_dir = dir;
    o.identities = {"customer/admin", "customer/auditor"};
    o.csrs = {{"vendor/console", console.csr_pem}};
    SEXTANT_RETURN_IF_ERROR(rpc::CertsInit(o).status());
  }
  Pki p;
  p.ca_pem = dir / "ca.pem";
  p.console_pem = dir / "vendor-console.pem";
  p.console_key = dir / "vendor-console.key";
  SEXTANT_ASSIGN_OR_RETURN(p.server.cert_pem, rpc::ReadTextFile(dir / "server.pem"));
  SEXTANT_ASSIGN_OR_RETURN(p.server.key_pem, rpc::ReadTextFile(dir / "server.key"));
  return p;
}

}  // namespace

struct LoadgenFleet::Agent {
  std::unique_ptr<agent::DesiredState> state;
  std::unique_ptr<agent::AuditLog> audit;
  std::unique_ptr<agent::PolicyHolder> policy;
  std::unique_ptr<agent::EgressLedger> egress;
  std::unique_ptr<SyntheticInventory> inventory;
  std::unique_ptr<SyntheticCloud> cloud;
  std::unique_ptr<SyntheticDeployments> deployments;
  std::unique_ptr<rpc::AgentServer> server;
  int gpus = 0;
};

Result<std::unique_ptr<LoadgenFleet>> LoadgenFleet::Start(const LoadgenOptions& options) {
  if (options.agents < 1) return Status::InvalidArgument("--agents must be at least 1");
  if (options.interval_ms < 1) return Status::InvalidArgument("--interval-ms must be positive");
  if (options.state.empty()) return Status::InvalidArgument("--state is required");
  if (options.targets_per_server < 1) {
    return Status::InvalidArgument("--targets-per-server must be at least 1");
  }
  std::error_code ec;
  fs::create_directories(options.state, ec);
  if (ec) return Status::Internal("cannot create " + options.state.string() + ": " + ec.message());
  SEXTANT_ASSIGN_OR_RETURN(Pki pki, EnsurePki(options.state / "loadgen-pki"));
  SEXTANT_ASSIGN_OR_RETURN(
      auto policy, agent::AgentPolicy::Parse(kPolicy, "loadgen-policy.yaml", rpc::AgentRpcNames()));
  SEXTANT_ASSIGN_OR_RETURN(auto ca_pem, rpc::ReadTextFile(pki.ca_pem));

  std::unique_ptr<LoadgenFleet> fleet(new LoadgenFleet());
  std::vector<console::Target> targets;
  std::map<std::string, console::Account> accounts;
  for (int i = 0; i < options.agents; ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "%s%03d", options.name_prefix.c_str(), i);
    const int k = options.targets_per_server;
    if (i % k != 0) {
      // Served by the server of target i - i % k: same port, figures and profile.
      const Agent& server = *fleet->agents_.back();
      console::Target t = targets.back();
      t.name = name;
      static const char* kTeams[] = {"ml", "search", "ads"};
      t.labels = {
          {"team", kTeams[i % 3]}, {"env", i % 4 == 3 ? "staging" : "prod"}, {"source", "loadgen"}};
      targets.push_back(std::move(t));
      fleet->targets_++;
      fleet->target_gpus_ += server.gpus;
      continue;
    }
    auto a = std::make_unique<Agent>();
    const fs::path dir = options.state / "loadgen-agents" / name;
    fs::create_directories(dir, ec);
    if (ec) return Status::Internal("cannot create " + dir.string() + ": " + ec.message());
    SEXTANT_ASSIGN_OR_RETURN(a->state, agent::DesiredState::Open(dir));
    SEXTANT_ASSIGN_OR_RETURN(a->audit, agent::AuditLog::Open(dir));
    a->policy = std::make_unique<agent::PolicyHolder>(policy);
    a->egress = std::make_unique<agent::EgressLedger>();
    const SyntheticProfile profile = ProfileFor(i, options.gpus);
    a->gpus = profile.gpus;
    a->inventory = std::make_unique<SyntheticInventory>(i, profile, options.interval_ms);
    a->cloud = std::make_unique<SyntheticCloud>(profile);
    a->deployments = std::make_unique<SyntheticDeployments>(i, kDeployment, options.interval_ms);

    // The deployment the synthetic metrics belong to: it requests half the GPUs, so cost
    // views have idle capacity to show.
    const std::string spec =
        std::string(R"({"name":")") + kDeployment + R"(","resources":{"gpu":{"count":)" +
        std::to_string(std::max(1, profile.gpus / 2)) + R"(},"replicas":{"min":2,"max":2}}})";
    agent::ApplyRequest req;
    req.name = kDeployment;
    req.spec_json = spec;
    req.spec_digest = "sha256:" + Sha256Hex(spec);
    req.model_uri = "file:///models/synthetic-load.gguf";
    req.model_sha256 = Sha256Hex("synthetic load model");
    req.applied_by = "sextant-loadgen";
    SEXTANT_RETURN_IF_ERROR(a->state->Apply(req).status());

    rpc::AgentServerOptions so;
    so.listen = "127.0.0.1:0";
    so.ca_pem = ca_pem;
    so.cert_pem = pki.server.cert_pem;
    so.key_pem = pki.server.key_pem;
    so.agent_name = name;
    so.encryption_at_rest = i % 5 != 4;  // a few without, so compliance views differ
    rpc::AgentServerDeps deps;
    deps.state = a->state.get();
    deps.audit = a->audit.get();
    deps.policy = a->policy.get();
    deps.egress = a->egress.get();
    deps.inventory = a->inventory.get();
    deps.cloud = a->cloud.get();
    deps.observer = a->deployments.get();
    SEXTANT_ASSIGN_OR_RETURN(a->server, rpc::AgentServer::Start(so, deps));

    console::Account acct;
    acct.name = "load-" + profile.provider;
    acct.provider = profile.provider;
    acct.account_id = profile.account;
    auto& known = accounts[acct.name];
    if (known.name.empty()) known = acct;
    if (std::find(known.regions.begin(), known.regions.end(), profile.region) ==
        known.regions.end()) {
      known.regions.push_back(profile.region);
    }

    console::Target t;
    t.name = name;
    t.endpoint = "127.0.0.1:" + std::to_string(a->server->port());
    t.account = acct.name;
    t.ca_path = fs::absolute(pki.ca_pem).string();
    t.cert_path = fs::absolute(pki.console_pem).string();
    t.key_path = fs::absolute(pki.console_key).string();
    t.server_name = "localhost";
    static const char* kTeams[] = {"ml", "search", "ads"};
    t.labels = {
        {"team", kTeams[i % 3]}, {"env", i % 4 == 3 ? "staging" : "prod"}, {"source", "loadgen"}};
    targets.push_back(std::move(t));
    fleet->targets_++;
    fleet->target_gpus_ += a->gpus;
    fleet->agents_.push_back(std::move(a));
  }

  // Register in the console store, then close it: the console opens the same file.
  SEXTANT_ASSIGN_OR_RETURN(auto st, console::ConsoleDatabase::Open(options.state));
  SEXTANT_ASSIGN_OR_RETURN(auto existing_accounts, st->accounts().List());
  std::set<std::string> have;
  for (const auto& a : existing_accounts) have.insert(a.name);
  for (const auto& [name, acct] : accounts) {
    if (!have.count(name)) SEXTANT_RETURN_IF_ERROR(st->accounts().Add(acct));
  }
  SEXTANT_ASSIGN_OR_RETURN(auto existing, st->targets().List());
  std::set<std::string> registered;
  for (const auto& t : existing) registered.insert(t.name);
  for (const auto& t : targets) {
    if (registered.count(t.name)) SEXTANT_RETURN_IF_ERROR(st->targets().Remove(t.name));
    SEXTANT_RETURN_IF_ERROR(st->targets().Add(t));
  }
  return fleet;
}

LoadgenFleet::~LoadgenFleet() { Stop(); }

void LoadgenFleet::Stop() {
  // All at once: each shutdown waits out its grace, and a hundred in a row would take minutes.
  std::vector<std::thread> stopping;
  for (auto& a : agents_) {
    if (!a->server) continue;
    stopping.emplace_back([&a] {
      a->server->Shutdown(std::chrono::milliseconds(500));
      a->server->Wait();
      a->server.reset();
    });
  }
  for (auto& t : stopping) t.join();
}

int LoadgenFleet::size() const { return targets_; }

int LoadgenFleet::servers() const { return static_cast<int>(agents_.size()); }

int LoadgenFleet::gpus() const { return target_gpus_; }

}  // namespace sextant::loadgen
