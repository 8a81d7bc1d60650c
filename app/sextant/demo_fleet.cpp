// DemoFleet: see demo_fleet.h.
#include "app/sextant/demo_fleet.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "app/common/approval.h"
#include "app/common/paths.h"
#include "app/common/validation_runner.h"
#include "app/sextant/console_common.h"
#include "connectors/agent/identity_certs.h"
#include "connectors/console/fleet_connector.h"
#include "engine/base/sha256.h"
#include "engine/gguf/synth.h"

namespace sextant::demo {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// The fleet: what each agent's config declares. The cloud contexts are declared (config
// `cloud:`), as an operator does where instance metadata is unavailable; so is encryption at
// rest for the two cloud targets, which the agents report as a declaration next to what they
// measure (the compliance packs read the measurement: "unknown" on a temporary directory).
struct AgentPlan {
  const char* name;
  const char* provider;
  const char* account;
  const char* region;
  const char* zone;
  const char* instance_type;
  bool encryption_at_rest;
};
constexpr AgentPlan kPlan[] = {
    {"aws-eu-west-1", "aws", "123456789012", "eu-west-1", "eu-west-1a", "g6.xlarge", true},
    {"gcp-us-central1", "gcp", "sextant-demo", "us-central1", "us-central1-a", "g2-standard-4",
     true},
    {"on-prem", "on-prem", "", "", "", "", false},
};

constexpr char kTrustDomain[] = "example.org";  // the example policy's identities
constexpr char kStoriesFile[] = "stories260K.gguf";

std::string Slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Quoted(const std::string& s) { return nlohmann::json(s).dump(); }

// Hard link, else copy (another file system).
Status LinkOrCopy(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::remove(to, ec);
  fs::create_hard_link(from, to, ec);
  if (!ec) return Status();
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  if (ec) {
    return Status::Unavailable("cannot put the model into " + to.string() + ": " + ec.message());
  }
  return Status();
}

// The last "http" address an agent logged in its "started" event.
std::string HttpAddressFromLog(const fs::path& log) {
  std::istringstream lines(Slurp(log));
  std::string line, found;
  while (std::getline(lines, line)) {
    if (line.find("\"started\"") == std::string::npos) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("http") && j["http"].is_string()) found = j["http"];
  }
  return found;
}

std::string LastLines(const fs::path& log, size_t n) {
  std::istringstream in(Slurp(log));
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  std::string out;
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i) {
    out += "\n  " + lines[i];
  }
  return out;
}

}  // namespace

Result<fs::path> FindAgentBinary() {
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  std::string tried;
  if (!ec) {
    // Installed side by side; or a build tree (app/sextant/sextant,
    // app/sextant-agent/sextant-agent).
    for (const fs::path& p :
         {exe.parent_path() / "sextant-agent",
          exe.parent_path().parent_path() / "sextant-agent" / "sextant-agent"}) {
      if (::access(p.c_str(), X_OK) == 0) return p;
      tried += (tried.empty() ? "" : ", ") + p.string();
    }
  }
  if (const char* path = std::getenv("PATH")) {
    std::istringstream dirs(path);
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
      if (dir.empty()) continue;
      fs::path p = fs::path(dir) / "sextant-agent";
      if (::access(p.c_str(), X_OK) == 0) return p;
    }
    tried += (tried.empty() ? "" : ", ") + std::string("$PATH");
  }
  return Status::NotFound("cannot find the sextant-agent program (looked at " + tried +
                          "; pass --agent-binary)");
}

fs::path FindSharedStoriesModel() {
  const fs::path rel = fs::path("shared") / "models" / kStoriesFile;
  std::error_code ec;
  auto cwd = fs::current_path(ec);
  if (!ec && fs::is_regular_file(cwd.parent_path() / rel, ec)) return cwd.parent_path() / rel;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  // The source tree's ../shared: some folder above a build tree inside the source tree.
  for (fs::path dir = exe.parent_path(); !dir.empty() && dir != dir.root_path();
       dir = dir.parent_path()) {
    if (fs::is_regular_file(dir / rel, ec)) return dir / rel;
  }
  return {};
}

DemoFleet::~DemoFleet() {
  Stop();
  store_.reset();
}

void DemoFleet::Step(const std::string& line) const {
  if (options_.on_step) options_.on_step(line);
}

std::vector<std::string> DemoFleet::target_names() const {
  std::vector<std::string> names;
  for (const auto& a : agents_) names.push_back(a.name);
  return names;
}

Status DemoFleet::PrepareState() {
  std::error_code ec;
  if (options_.state_dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = (fs::path(tmp && *tmp ? tmp : "/tmp") / "sextant-demo-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) {
      return Status::Unavailable("cannot create a temporary state directory " + templ + ": " +
                                 std::strerror(errno));
    }
    state_dir_ = templ;
    temporary_ = true;
  } else {
    state_dir_ = fs::absolute(options_.state_dir, ec);
    if (ec) state_dir_ = options_.state_dir;
    temporary_ = false;
    SEXTANT_RETURN_IF_ERROR(EnsurePrivateDir(state_dir_));
  }
  keep_ = options_.keep || !temporary_;
  return Status();
}

Status DemoFleet::PrepareModel() {
  std::error_code ec;
  if (!options_.model.empty()) {
    if (!fs::is_regular_file(options_.model, ec)) {
      return Status::NotFound("model " + options_.model.string() + ": no such file");
    }
    model_.path = fs::absolute(options_.model, ec);
    model_.description = "model " + model_.path.filename().string() + " (--model)";
  } else if (fs::path shared = FindSharedStoriesModel(); !shared.empty()) {
    model_.path = fs::weakly_canonical(shared, ec);
    if (ec) model_.path = shared;
    model_.description = "stories260K (TinyStories, " + model_.path.string() + ")";
  } else {
    // A fresh clone has no ../shared: the project writes a model of the same shape itself.
    const fs::path dir = state_dir_ / "model";
    SEXTANT_RETURN_IF_ERROR(EnsurePrivateDir(dir));
    model_.path = dir / "stories260k-like.gguf";
    model_.synthesized = true;
    model_.description =
        "a random-weight model of stories260K's shape, synthesized by sextant (no "
        "../shared/models/stories260K.gguf here): its text is noise, the engine path is the same";
    if (!fs::is_regular_file(model_.path, ec)) {
      Step("synthesizing a model of stories260K's shape (../shared/models not found)");
      auto shape = gguf::LlamaShapeByName("stories260k-like");
      auto type = gguf::SynthTypeByName("f32");
      if (!shape || !type) return Status::Internal("synth shape stories260k-like is missing");
      SEXTANT_RETURN_IF_ERROR(gguf::SynthesizeLlama(*shape, *type, 1, model_.path));
    }
  }
  SEXTANT_ASSIGN_OR_RETURN(model_.sha256, Sha256FileHex(model_.path));
  return Status();
}

Status DemoFleet::PrepareSpec() {
  fs::path templ = options_.spec_template;
  if (templ.empty()) {
    SEXTANT_ASSIGN_OR_RETURN(fs::path examples, cli::FindResourceDir("examples"));
    templ = examples / "stories260k.yaml";
  }
  SEXTANT_ASSIGN_OR_RETURN(spec_, spec::LoadDeploymentSpec(templ));
  // The spec names the model that runs, by the file name in each target's store and its sha256.
  // For stories260K this is the example spec unchanged (same digest).
  spec_.model.uri = "file://" + model_.path.filename().string();
  spec_.model.sha256 = model_.sha256;
  spec_file_ = state_dir_ / (spec_.name + ".yaml");
  // The canonical JSON form is valid YAML and parses back to the same spec (deployment_spec.h).
  std::string text = "# Deployment spec of `sextant demo`, from " + templ.string() +
                     " with the model that runs here.\n" +
                     spec::ToCanonicalJsonValue(spec_).dump(2) + "\n";
  SEXTANT_RETURN_IF_ERROR(rpc::WriteTextFile(spec_file_, text, false));
  SEXTANT_ASSIGN_OR_RETURN(auto reread, spec::LoadDeploymentSpec(spec_file_));
  if (spec::SpecDigest(reread) != spec::SpecDigest(spec_)) {
    return Status::Internal("the written spec " + spec_file_.string() + " has another digest");
  }
  return Status();
}

Status DemoFleet::PrepareKeysAndCerts() {
  // The console's report key: agents are configured to trust its public half.
  key_path_ = options_.signing_key;
  if (key_path_.empty()) {
    SEXTANT_ASSIGN_OR_RETURN(key_path_, report::DefaultSigningKeyPath());
  }
  SEXTANT_ASSIGN_OR_RETURN(auto key, report::SigningKey::LoadOrCreate(key_path_));
  console_key_pem_ = state_dir_ / "console-report-key.pem";
  SEXTANT_RETURN_IF_ERROR(rpc::WriteTextFile(console_key_pem_, key.public_key().Pem(), false));

  // The console's identity, as a vendor gets one: its own key and a signing request (the key
  // stays in console/), sent to the customer, whose CA issues the certificate; then the CA,
  // the agents' server certificate and the customer's identities. A reused state keeps both.
  const fs::path tls = state_dir_ / "tls";
  const fs::path console_dir = state_dir_ / "console";
  std::error_code ec;
  if (!fs::exists(tls / "ca.key", ec)) {
    SEXTANT_RETURN_IF_ERROR(EnsurePrivateDir(console_dir));
    SEXTANT_ASSIGN_OR_RETURN(
        rpc::KeyAndCsr vendor,
        rpc::CreateKeyAndCsr("vendor/operator",
                             {std::string("spiffe://") + kTrustDomain + "/vendor/operator"}));
    SEXTANT_RETURN_IF_ERROR(
        rpc::WriteTextFile(console_dir / "vendor-operator.key", vendor.key_pem, true));
    SEXTANT_RETURN_IF_ERROR(
        rpc::WriteTextFile(console_dir / "vendor-operator.csr", vendor.csr_pem, false));
    rpc::CertsInitOptions certs;
    certs.out_dir = tls;
    certs.trust_domain = kTrustDomain;
    certs.csrs = {{"vendor/operator", vendor.csr_pem}};
    SEXTANT_RETURN_IF_ERROR(rpc::CertsInit(certs).status());
  }
  console_cert_ = tls / "vendor-operator.pem";
  console_key_ = console_dir / "vendor-operator.key";
  if (!fs::exists(console_key_, ec)) console_key_ = tls / "vendor-operator.key";  // older states

  // The customer's approver key: the agents admit only specs it approved (two-party
  // deployments). It lives on the customer's side (customer/), never in the console's files.
  const fs::path customer = state_dir_ / "customer";
  SEXTANT_RETURN_IF_ERROR(EnsurePrivateDir(customer));
  approver_key_ = customer / "approver.key";
  approvals_file_ = customer / "approvals.jsonl";
  if (!fs::exists(approver_key_, ec)) {
    SEXTANT_ASSIGN_OR_RETURN(auto approver, report::SigningKey::Generate());
    SEXTANT_RETURN_IF_ERROR(approver.Save(approver_key_));
    SEXTANT_RETURN_IF_ERROR(
        rpc::WriteTextFile(customer / "approver.pem", approver.public_key().Pem(), false));
  }

  SEXTANT_ASSIGN_OR_RETURN(fs::path policies, cli::FindResourceDir("policies"));
  policy_file_ = policies / "agent-policy.example.yaml";
  if (!fs::is_regular_file(policy_file_, ec)) {
    return Status::NotFound("no agent policy at " + policy_file_.string());
  }
  return Status();
}

Status DemoFleet::StartAgent(DemoAgent& a) {
  const fs::path tls = state_dir_ / "tls";
  SEXTANT_RETURN_IF_ERROR(EnsurePrivateDir(a.dir));
  SEXTANT_RETURN_IF_ERROR(EnsurePrivateDir(a.dir / "models"));
  // Each agent checks the model in its own store: the file never travels from the console.
  SEXTANT_RETURN_IF_ERROR(LinkOrCopy(model_.path, a.dir / "models" / model_.path.filename()));
  std::error_code ec;
  fs::copy_file(policy_file_, a.dir / "policy.yaml", fs::copy_options::overwrite_existing, ec);
  if (ec) return Status::Unavailable("cannot copy the agent policy: " + ec.message());

  std::ostringstream y;
  y << "# sextant-agent configuration written by `sextant demo`.\n"
    << "name: " << a.name << "\n"
    << "grpc:\n"
    << "  listen: 127.0.0.1:0\n"
    << "  ca: " << Quoted((tls / "ca.pem").string()) << "\n"
    << "  cert: " << Quoted((tls / "server.pem").string()) << "\n"
    << "  key: " << Quoted((tls / "server.key").string()) << "\n"
    << "http:\n"
    << "  listen: 127.0.0.1:0\n"
    << "policy: policy.yaml\n"
    << "state_dir: state\n"
    << "model_store: models\n"
    << "encryption_at_rest: " << (a.encryption_at_rest ? "true" : "false") << "\n"
    << "# Deployments must carry a passing report signed by this console's key,\n"
    << "console_keys:\n"
    << "  - " << Quoted(console_key_pem_.string()) << "\n"
    << "# and be admitted by the customer: an approval signed by its approver key.\n"
    << "admission:\n"
    << "  approval_keys:\n"
    << "    - " << Quoted((state_dir_ / "customer" / "approver.pem").string()) << "\n"
    << "  approvals: " << Quoted(approvals_file_.string()) << "\n"
    << "cloud:\n"
    << "  provider: " << a.provider << "\n";
  for (const AgentPlan& p : kPlan) {
    if (a.name != p.name) continue;
    if (*p.account) y << "  account: " << Quoted(p.account) << "\n";
    if (*p.region) y << "  region: " << p.region << "\n";
    if (*p.zone) y << "  zone: " << p.zone << "\n";
    if (*p.instance_type) y << "  instance_type: " << p.instance_type << "\n";
  }
  y << "limits:\n"
    << "  shutdown_grace_ms: 2000\n";
  const fs::path config = a.dir / "agent.yaml";
  SEXTANT_RETURN_IF_ERROR(rpc::WriteTextFile(config, y.str(), false));
  fs::remove(a.dir / "state" / "grpc.addr", ec);

  // Everything the child needs is prepared before fork: between fork and exec only
  // async-signal-safe calls.
  const std::string bin = agent_binary_.string();
  const std::string cfg = config.string();
  const std::string log = a.log.string();
  const pid_t parent = ::getpid();
  std::lock_guard<std::mutex> lock(stop_mu_);
  const pid_t pid = ::fork();
  if (pid < 0) return Status::Unavailable(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);
    ::setpgid(0, 0);  // the terminal's Ctrl-C goes to the demo, which stops its agents in order
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::execl(bin.c_str(), bin.c_str(), "serve", "--config", cfg.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  a.pid = pid;
  return Status();
}

Status DemoFleet::WaitForAgent(DemoAgent& a) {
  const auto end = Clock::now() + options_.start_timeout;
  const fs::path addr_file = a.dir / "state" / "grpc.addr";
  while (a.endpoint.empty()) {
    std::string addr = Slurp(addr_file);
    if (!addr.empty() && addr.back() == '\n') {
      addr.pop_back();
      a.endpoint = addr;
      break;
    }
    {
      std::lock_guard<std::mutex> lock(stop_mu_);
      int status = 0;
      if (a.pid <= 0) return Status::Cancelled("agent " + a.name + " was stopped");
      if (::waitpid(a.pid, &status, WNOHANG) == a.pid) {
        a.pid = -1;
        return Status::Unavailable("agent " + a.name + " exited before it listened (log " +
                                   a.log.string() + "):" + LastLines(a.log, 5));
      }
    }
    if (Clock::now() > end) {
      return Status::DeadlineExceeded("agent " + a.name + " did not listen within " +
                                      std::to_string(options_.start_timeout.count()) + " ms (log " +
                                      a.log.string() + ")");
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  // Listening is not answering: ask it over mTLS who the console is.
  console::Target t;
  t.name = a.name;
  t.endpoint = a.endpoint;
  t.ca_path = (state_dir_ / "tls" / "ca.pem").string();
  t.cert_path = console_cert_.string();
  t.key_path = console_key_.string();
  Status last;
  while (true) {
    auto who = rpc::TestTarget(t, milliseconds(2000));
    if (who.ok()) break;
    last = who.status();
    if (Clock::now() > end) {
      return Status::DeadlineExceeded("agent " + a.name + " at " + a.endpoint +
                                      " did not answer: " + last.message());
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
  a.http_endpoint = HttpAddressFromLog(a.log);
  return Status();
}

Status DemoFleet::RegisterTargets() {
  SEXTANT_ASSIGN_OR_RETURN(store_, console::ConsoleDatabase::Open(state_dir_));
  SEXTANT_ASSIGN_OR_RETURN(auto existing, store_->targets().List());
  for (const auto& a : agents_) {
    for (const auto& t : existing) {
      if (t.name == a.name) SEXTANT_RETURN_IF_ERROR(store_->targets().Remove(a.name));
    }
    console::Target t;
    t.name = a.name;
    t.endpoint = a.endpoint;
    t.ca_path = (state_dir_ / "tls" / "ca.pem").string();
    t.cert_path = console_cert_.string();
    t.key_path = console_key_.string();
    t.labels = {{"cloud", a.cloud_context}, {"demo", "true"}};
    SEXTANT_RETURN_IF_ERROR(store_->targets().Add(t));
  }
  return Status();
}

Status DemoFleet::Start(const DemoOptions& options) {
  options_ = options;
  Status s = [&]() -> Status {
    SEXTANT_RETURN_IF_ERROR(PrepareState());
    Step("console state in " + state_dir_.string());
    if (options_.agent_binary.empty()) {
      SEXTANT_ASSIGN_OR_RETURN(agent_binary_, FindAgentBinary());
    } else {
      agent_binary_ = options_.agent_binary;
      if (::access(agent_binary_.c_str(), X_OK) != 0) {
        return Status::NotFound("agent program " + agent_binary_.string() +
                                ": not an executable file");
      }
    }
    SEXTANT_RETURN_IF_ERROR(PrepareModel());
    Step("model: " + model_.description);
    SEXTANT_RETURN_IF_ERROR(PrepareSpec());
    SEXTANT_RETURN_IF_ERROR(PrepareKeysAndCerts());
    Step("CA, agent and console identities in " + (state_dir_ / "tls").string() + "; report key " +
         key_path_.string());
    {
      // All entries exist before any process does: Stop() may walk them from another thread.
      std::lock_guard<std::mutex> lock(stop_mu_);
      agents_.clear();
      for (const AgentPlan& p : kPlan) {
        DemoAgent a;
        a.name = p.name;
        a.provider = p.provider;
        a.region = p.region;
        a.cloud_context = *p.region ? std::string(p.provider) + "/" + p.region : p.provider;
        a.instance_type = p.instance_type;
        a.encryption_at_rest = p.encryption_at_rest;
        a.dir = state_dir_ / "agents" / p.name;
        a.log = a.dir / "agent.log";
        agents_.push_back(a);
      }
    }
    for (auto& a : agents_) SEXTANT_RETURN_IF_ERROR(StartAgent(a));
    for (auto& a : agents_) {
      SEXTANT_RETURN_IF_ERROR(WaitForAgent(a));
      Step("agent " + a.name + " (" + a.cloud_context + ") answers on " + a.endpoint);
    }
    SEXTANT_RETURN_IF_ERROR(RegisterTargets());
    return Status();
  }();
  if (!s.ok()) Stop();
  return s;
}

Result<report::ValidationReport> DemoFleet::Validate() {
  SEXTANT_ASSIGN_OR_RETURN(auto key, report::SigningKey::LoadOrCreate(key_path_));
  validate::ValidateOptions o;
  o.model_dir = model_.path.parent_path();
  SEXTANT_ASSIGN_OR_RETURN(validate::ValidationRun run, validate::RunValidation(spec_, o));
  SEXTANT_ASSIGN_OR_RETURN(auto signed_report, report::SignReport(run.report, key));
  console::ReportRepository& reports = store_->reports();
  SEXTANT_RETURN_IF_ERROR(reports.Add(run.report, signed_report).status());
  return run.report;
}

Status DemoFleet::Approve() {
  SEXTANT_ASSIGN_OR_RETURN(auto key, report::SigningKey::Load(approver_key_));
  approval::Approval a;
  a.spec_digest = "sha256:" + spec::SpecDigest(spec_);
  a.name = spec_.name;
  a.model_sha256 = spec_.model.sha256;
  a.approved_by = "customer (sextant demo)";
  a.approved_at = approval::FormatRfc3339(std::time(nullptr));
  SEXTANT_ASSIGN_OR_RETURN(auto signed_approval, approval::SignApproval(a, key));
  std::ofstream out(approvals_file_, std::ios::app);
  out << approval::SignedApprovalToJson(signed_approval).dump() << "\n";
  out.flush();
  if (!out) return Status::Unavailable("cannot append to " + approvals_file_.string());
  Step("the customer approves " + a.spec_digest.substr(0, 19) + " with its approver key (" +
       key.key_id().substr(0, 12) + ", " + approvals_file_.string() + ")");
  return Status();
}

void DemoFleet::Stop() {
  std::lock_guard<std::mutex> lock(stop_mu_);
  // SIGTERM to all first (they shut down in parallel), SIGKILL whoever outlives the grace.
  for (auto& a : agents_) {
    if (a.pid > 0) ::kill(a.pid, SIGTERM);
  }
  const auto end = Clock::now() + milliseconds(4000);
  while (true) {
    bool running = false;
    for (auto& a : agents_) {
      if (a.pid <= 0) continue;
      int status = 0;
      const pid_t r = ::waitpid(a.pid, &status, WNOHANG);
      if (r == a.pid || (r < 0 && errno == ECHILD)) {
        a.pid = -1;
      } else {
        running = true;
      }
    }
    if (!running || Clock::now() > end) break;
    std::this_thread::sleep_for(milliseconds(10));
  }
  for (auto& a : agents_) {
    if (a.pid <= 0) continue;
    ::kill(a.pid, SIGKILL);
    while (::waitpid(a.pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    a.pid = -1;
  }
  if (temporary_ && !keep_ && !state_dir_.empty()) {
    std::error_code ec;
    fs::remove_all(state_dir_, ec);
    temporary_ = false;
  }
}

}  // namespace sextant::demo
