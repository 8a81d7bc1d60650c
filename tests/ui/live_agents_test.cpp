// The desktop console on real agents: in-process AgentServers (the agent's gRPC service over
// mutual TLS on 127.0.0.1, certificates made here) registered as targets in a console store,
// a FleetConnector filling it, and the main window with the connector-backed actions. Checks go
// through the widgets and models by object name.
#include <gtest/gtest.h>

#include <QLabel>
#include <QLineEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QTableView>
#include <QTest>
#include <QTextEdit>
#include <QTreeView>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "app/agent/audit/audit_log.h"
#include "app/agent/audit/egress_ledger.h"
#include "app/agent/policy/access_policy.h"
#include "app/agent/state/desired_state.h"
#include "app/agent/state/sources.h"
#include "app/sextant/gui_actions.h"
#include "connectors/agent/agent_server.h"
#include "connectors/agent/identity_certs.h"
#include "connectors/console/fleet_connector.h"
#include "tests/support/agent_fixture.h"
#include "tests/ui/console_fixture.h"
#include "ui/main_window.h"

namespace sextant::ui {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::kGiB;

using test_agents::FixedCloud;
using test_agents::FixedInventory;
using test_agents::kVendorOperatorPolicy;
using test_agents::SpecDigestHex;

// Reports fixed figures; `hang_ms` > 0 makes Metrics() stall like a wedged agent.
class FixedObserver : public agent::DeploymentObserver {
 public:
  explicit FixedObserver(agent::DeploymentMetricsInfo m) : metrics_(std::move(m)) {}
  std::optional<agent::DeploymentStatusInfo> StatusOf(const std::string&) override {
    agent::DeploymentStatusInfo s;
    s.phase = agent::DeploymentPhase::kReady;
    s.replicas_desired = 2;
    s.replicas_ready = metrics_.replicas_ready;
    return s;
  }
  std::vector<agent::DeploymentMetricsInfo> Metrics() override {
    const int hang = hang_ms.load();
    if (hang > 0) std::this_thread::sleep_for(std::chrono::milliseconds(hang));
    return {metrics_};
  }
  std::atomic<int> hang_ms{0};

 private:
  agent::DeploymentMetricsInfo metrics_;
};

// One agent, with what it reports kept for the assertions.
struct TestAgent : test_agents::InProcessAgent<FixedObserver> {
  int gpus = 0;
  double util_sum = 0;
  double tokens_per_s = 0;
};

class LiveAgentsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = testing::ScratchDir("live");
    auto pki = test_agents::MakeTestPki(root_);
    ASSERT_TRUE(pki.ok()) << pki.status().ToString();
    pki_ = *pki;
    auto st = console::ConsoleDatabase::Open(root_ / "console");
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    store_ = std::move(st).value();
  }
  void TearDown() override {
    window_.reset();
    actions_.reset();
    if (connector_) connector_->Stop();
    connector_.reset();
    for (auto& a : agents_) a->Kill();
    agents_.clear();
    store_.reset();
    fs::remove_all(root_);
  }

  // Agent i: 1 + i GPUs (H100, utilization 0.2 + 0.1 g), deployment "chat" at 10 + i tokens/s.
  void StartAgents(int n) {
    auto policy =
        agent::AgentPolicy::Parse(kVendorOperatorPolicy, "policy.yaml", rpc::AgentRpcNames());
    ASSERT_TRUE(policy.ok()) << policy.status().ToString();
    for (int i = 0; i < n; ++i) {
      auto a = std::make_unique<TestAgent>();
      ASSERT_TRUE(a->Open(root_ / ("agent-" + std::to_string(i)), *policy).ok());
      agent::InventoryInfo inv;
      inv.node = "node-" + std::to_string(i);
      inv.source = "nvml";
      a->gpus = 1 + i;
      for (int g = 0; g < a->gpus; ++g) {
        agent::DeviceInfo d;
        d.id = "gpu" + std::to_string(g);
        d.kind = "cuda";
        d.model = "NVIDIA H100 80GB HBM3";
        d.memory_total_bytes = 80 * kGiB;
        d.memory_used_bytes = (g + 1) * kGiB;
        d.utilization = 0.2 + 0.1 * g;
        d.temperature_c = 55 + g;
        d.power_w = 310;
        a->util_sum += d.utilization;
        inv.devices.push_back(d);
      }
      a->inventory = std::make_unique<FixedInventory>(inv);
      a->cloud = std::make_unique<FixedCloud>("us-east-1");
      agent::DeploymentMetricsInfo m;
      m.name = "chat";
      m.tokens_per_second = 10.0 + i;
      m.queue_depth = i;
      m.generated_tokens_total = 1000 * (i + 1);
      m.prompt_tokens_total = 100 * (i + 1);
      m.replicas_ready = 1;
      m.ttft_seconds.upper_bounds = {0.05, 0.1, 0.5};
      m.ttft_seconds.counts = {0, 10, 0, 0};
      m.ttft_seconds.count = 10;
      // Inter-token latency between 10 and 20 ms; KV cache 25 %, 35 %, ...
      m.inter_token_seconds.upper_bounds = {0.01, 0.02, 0.05};
      m.inter_token_seconds.counts = {0, 20, 20, 20};  // cumulative
      m.inter_token_seconds.count = 20;
      m.kv_cache_use = 0.25 + 0.1 * i;
      a->tokens_per_s = m.tokens_per_second;
      a->observer = std::make_unique<FixedObserver>(m);
      const std::string spec =
          R"({"name":"chat","resources":{"gpu":{"count":1},"replicas":{"min":2,"max":2}}})";
      agent::ApplyRequest req;
      req.name = "chat";
      req.spec_json = spec;
      req.spec_digest = "sha256:" + SpecDigestHex(spec);
      req.model_uri = "file:///models/chat.gguf";
      req.model_sha256 = std::string(64, 'a');
      req.applied_by = "test";
      ASSERT_TRUE(a->state->Apply(req).ok());
      ASSERT_TRUE(a->Serve(pki_).ok());
      console::Target t;
      t.name = "agent-" + std::to_string(i);
      t.endpoint = "127.0.0.1:" + std::to_string(a->port);
      t.ca_path = (root_ / "ca.pem").string();
      t.cert_path = (root_ / "console.pem").string();
      t.key_path = (root_ / "console.key").string();
      t.server_name = "localhost";
      ASSERT_TRUE(store_->targets().Add(t).ok());
      agents_.push_back(std::move(a));
    }
  }

  // The console as `sextant gui` starts it, on a short clock.
  void OpenConsole() {
    rpc::ConnectorOptions co;
    co.call_deadline = 5000ms;
    co.metrics_interval_ms = 200;
    co.stale_after = 1500ms;
    co.backoff_initial = 200ms;
    co.backoff_max = 1000ms;
    connector_ = std::make_unique<rpc::FleetConnector>(store_.get(), co);
    auto targets = store_->targets().List();
    ASSERT_TRUE(targets.ok());
    connector_->Start(*targets);
    cli::GuiActionOptions ao;
    ao.signing_key = root_ / "signing-key.pem";
    actions_ = std::make_shared<cli::ConnectorConsoleActions>(store_.get(), connector_.get(), ao);
    MainWindowOptions wo;
    wo.actions = actions_;
    auto sources = testing::TestSources();
    sources.stale_after_ms = 1500;
    auto* st = store_.get();
    wo.load = [st, sources] { return LoadConsoleSnapshot(*st, sources, console::NowMs()); };
    wo.refresh_ms = 200;
    wo.remember_layout = false;
    wo.default_spec = QString(SEXTANT_SOURCE_DIR) + "/resources/examples/stories260k.yaml";
    wo.default_model_dir = QString(SEXTANT_SHARED_DIR) + "/models";
    window_ = std::make_unique<MainWindow>(std::move(wo));
    window_->context().confirm = [](const QString&, const QString&) { return true; };
    window_->show();
  }

  FleetTreeModel* Fleet() { return static_cast<FleetView*>(window_->View("fleet"))->model(); }
  QString StateOf(const QString& target) {
    return Fleet()->TargetIndex(target).data(StateRole).toString();
  }

  fs::path root_;
  test_agents::TestPki pki_;
  std::unique_ptr<console::ConsoleDatabase> store_;
  std::vector<std::unique_ptr<TestAgent>> agents_;
  std::unique_ptr<rpc::FleetConnector> connector_;
  std::shared_ptr<cli::ConnectorConsoleActions> actions_;
  std::unique_ptr<MainWindow> window_;
};

TEST_F(LiveAgentsTest, ViewsShowWhatAgentsReportAndDeadOrWedgedAgentsShowAsSuch) {
  StartAgents(3);
  OpenConsole();
  // Every agent connected with its GPUs and deployment figures in the Fleet tree.
  ASSERT_TRUE(QTest::qWaitFor(
      [&] {
        for (int i = 0; i < 3; ++i) {
          const QModelIndex t = Fleet()->TargetIndex(QString("agent-%1").arg(i));
          if (!t.isValid() || t.data(StateRole).toString() != "connected") return false;
          if (Fleet()->rowCount(t) != agents_[i]->gpus) return false;
          if (Fleet()
                  ->index(t.row(), FleetTreeModel::kTokensPerSecond, t.parent())
                  .data(SortRole)
                  .toDouble() != agents_[i]->tokens_per_s) {
            return false;
          }
        }
        return true;
      },
      30000))
      << StateOf("agent-0").toStdString();
  for (int i = 0; i < 3; ++i) {
    const QModelIndex t = Fleet()->TargetIndex(QString("agent-%1").arg(i));
    EXPECT_NEAR(
        Fleet()->index(t.row(), FleetTreeModel::kUtilization, t.parent()).data(SortRole).toDouble(),
        agents_[i]->util_sum / agents_[i]->gpus, 1e-6);
    EXPECT_EQ(Fleet()->index(0, FleetTreeModel::kTemperature, t).data().toString(), "55 °C");
    // One replica ready of the two the deployment wants.
    EXPECT_EQ(Fleet()->index(t.row(), FleetTreeModel::kReplicas, t.parent()).data().toString(),
              "1/2");
  }
  auto* deployments = window_->findChild<QTableView*>("deploymentsTable");
  ASSERT_EQ(deployments->model()->rowCount(), 3);
  auto* targets = window_->findChild<QTableView*>("targetsTable");
  ASSERT_EQ(targets->model()->rowCount(), 3);
  EXPECT_TRUE(targets->model()
                  ->index(0, TargetsModel::kIdentity)
                  .data()
                  .toString()
                  .contains("vendor-operator"));
  // The live chart of the selected deployment grows with the samples.
  auto* dv = static_cast<DeploymentsView*>(window_->View("deployments"));
  ASSERT_TRUE(QTest::qWaitFor([&] { return dv->ChartPoints() >= 3; }, 10000));
  // Inter-token latency and KV cache use as each agent reports them, in the table and charts.
  for (int i = 0; i < 3; ++i) {
    const int row = dv->model()->RowOfKey(QString("agent-%1/chat").arg(i));
    ASSERT_GE(row, 0);
    const double itl = dv->model()->index(row, DeploymentsModel::kItlP50).data(SortRole).toDouble();
    EXPECT_GT(itl, 10.0) << i;
    EXPECT_LE(itl, 20.0) << i;
    EXPECT_NEAR(dv->model()->index(row, DeploymentsModel::kKvCache).data(SortRole).toDouble(),
                0.25 + 0.1 * i, 1e-9);
  }
  dv->Select("agent-1/chat");
  const QList<QPointF> kv = dv->SeriesPoints("KV cache use (%)");
  ASSERT_FALSE(kv.isEmpty());
  EXPECT_NEAR(kv.back().y(), 35.0, 1e-9);
  const QList<QPointF> itl = dv->SeriesPoints("ITL p99 (ms)");
  ASSERT_FALSE(itl.isEmpty());
  EXPECT_GT(itl.back().y(), 10.0);
  EXPECT_LE(itl.back().y(), 20.0);

  // A killed agent: unreachable, with the cause and since when.
  agents_[1]->Kill();
  ASSERT_TRUE(QTest::qWaitFor([&] { return StateOf("agent-1") == "error"; }, 10000))
      << StateOf("agent-1").toStdString();
  const QModelIndex dead = Fleet()->TargetIndex("agent-1");
  EXPECT_FALSE(Fleet()
                   ->index(dead.row(), FleetTreeModel::kSince, dead.parent())
                   .data()
                   .toString()
                   .isEmpty());
  // A wedged agent (its metrics stop coming): stale since its last report.
  agents_[2]->observer->hang_ms = 4000;
  ASSERT_TRUE(QTest::qWaitFor([&] { return StateOf("agent-2") == "stale"; }, 10000))
      << StateOf("agent-2").toStdString();
  const QModelIndex wedged = Fleet()->TargetIndex("agent-2");
  EXPECT_TRUE(Fleet()
                  ->index(wedged.row(), FleetTreeModel::kStatus, wedged.parent())
                  .data()
                  .toString()
                  .startsWith("stale since"));
  EXPECT_EQ(StateOf("agent-0"), "connected");
  agents_[2]->observer->hang_ms = 0;
}

TEST_F(LiveAgentsTest, AuditAndTargetTestGoToTheAgents) {
  StartAgents(2);
  OpenConsole();
  ASSERT_TRUE(QTest::qWaitFor([&] { return StateOf("agent-0") == "connected"; }, 30000));
  // Targets: Test asks the agent who we are.
  window_->ShowView("targets");
  auto* tv = static_cast<TargetsView*>(window_->View("targets"));
  ASSERT_TRUE(QTest::qWaitFor([&] { return !tv->SelectedTarget().isEmpty(); }, 5000));
  tv->TestSelected();
  auto* result = window_->findChild<QLabel*>("targetTestResult");
  ASSERT_TRUE(QTest::qWaitFor([&] { return result->text().contains("role"); }, 10000))
      << result->text().toStdString();
  EXPECT_TRUE(result->text().contains("spiffe://example.org/vendor/console"));
  EXPECT_TRUE(result->text().contains("vendor-operator"));
  // Audit: records of the console's own calls and a verified chain, per agent.
  window_->ShowView("audit");  // fetches on first show
  auto* av = static_cast<AuditView*>(window_->View("audit"));
  ASSERT_TRUE(QTest::qWaitFor(
      [&] { return av->chain_model()->rowCount() == 2 && av->fetches_in_flight() == 0; }, 15000));
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(av->chain_model()->index(r, AuditChainModel::kChain).data().toString(), "verified");
    EXPECT_EQ(av->chain_model()->index(r, AuditChainModel::kScope).data().toString(), "own");
  }
  bool who_am_i = false;
  for (int r = 0; r < av->model()->rowCount(); ++r) {
    who_am_i |= av->model()->index(r, AuditModel::kRpc).data().toString() == "WhoAmI" &&
                av->model()->index(r, AuditModel::kIdentity).data().toString() ==
                    "spiffe://example.org/vendor/console";
  }
  EXPECT_TRUE(who_am_i);
  // A dead agent's chain row says it is unreachable.
  agents_[1]->Kill();
  av->FetchAll();
  ASSERT_TRUE(QTest::qWaitFor(
      [&] {
        const int r = av->chain_model()->RowOfKey("agent-1");
        return av->fetches_in_flight() == 0 && r >= 0 &&
               av->chain_model()->index(r, 0).data(StateRole).toString() == "error";
      },
      15000));
}

// Passes every action to the connector-backed one; tests override what they watch.
class ForwardingActions : public ConsoleActions {
 public:
  explicit ForwardingActions(std::shared_ptr<ConsoleActions> inner) : inner_(std::move(inner)) {}
  Result<TargetTestResult> TestTarget(const std::string& t) override {
    return inner_->TestTarget(t);
  }
  Status AddTarget(const console::Target& t) override { return inner_->AddTarget(t); }
  Status RemoveTarget(const std::string& t) override { return inner_->RemoveTarget(t); }
  Result<AuditFetch> FetchAudit(const std::string& t, int n) override {
    return inner_->FetchAudit(t, n);
  }
  Result<ValidationOutcome> Validate(const std::string& spec, const std::string& model_dir,
                                     const std::function<void(std::string_view, double)>& progress,
                                     const std::atomic<bool>& cancel) override {
    return inner_->Validate(spec, model_dir, progress, cancel);
  }
  Result<PushOutcome> Push(const PushArgs& a, const std::function<void(const PushProgress&)>& p,
                           const std::atomic<bool>& c) override {
    return inner_->Push(a, p, c);
  }
  Result<PushOutcome> Rollback(const std::string& d,
                               const std::function<void(const PushProgress&)>& p) override {
    return inner_->Rollback(d, p);
  }

 protected:
  std::shared_ptr<ConsoleActions> inner_;
};

// Holds the first progress callback of a validation until the test lets it go, so that a
// cancel lands while the run is known to be in flight.
class GatedActions : public ForwardingActions {
 public:
  using ForwardingActions::ForwardingActions;
  Result<ValidationOutcome> Validate(const std::string& spec, const std::string& model_dir,
                                     const std::function<void(std::string_view, double)>& progress,
                                     const std::atomic<bool>& cancel) override {
    bool first = true;
    return inner_->Validate(
        spec, model_dir,
        [&](std::string_view stage, double f) {
          if (first) {
            first = false;
            std::unique_lock lock(mu_);
            in_flight_ = true;
            cv_.notify_all();
            cv_.wait(lock, [&] { return open_; });
          }
          progress(stage, f);
        },
        cancel);
  }
  bool InFlight() {
    std::lock_guard lock(mu_);
    return in_flight_;
  }
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool in_flight_ = false;
  bool open_ = false;
};

// Records, on the worker thread, the prompt a validation last reported and how it ended.
class RecordingActions : public ForwardingActions {
 public:
  using ForwardingActions::ForwardingActions;
  Result<ValidationOutcome> Validate(const std::string& spec, const std::string& model_dir,
                                     const std::function<void(std::string_view, double)>& progress,
                                     const std::atomic<bool>& cancel) override {
    auto r = inner_->Validate(
        spec, model_dir,
        [&](std::string_view stage, double f) {
          int prompt = 0;
          if (std::sscanf(std::string(stage).c_str(), "prompt %d/", &prompt) == 1) {
            last_prompt = prompt;
          }
          progress(stage, f);
        },
        cancel);
    code = static_cast<int>(r.status().code());
    returned = true;
    return r;
  }
  std::atomic<int> last_prompt{0};
  std::atomic<int> code{-1};
  std::atomic<bool> returned{false};
};

TEST_F(LiveAgentsTest, ValidationShowsProgressAndCanBeCancelled) {
  const fs::path model = fs::path(SEXTANT_SHARED_DIR) / "models/stories260K.gguf";
  if (!fs::exists(model)) GTEST_SKIP() << "needs " << model << " (../shared/models)";
  OpenConsole();
  auto gated = std::make_shared<GatedActions>(actions_);
  window_->context().actions = gated;
  window_->ShowView("validate");
  auto* vv = static_cast<ValidateView*>(window_->View("validate"));
  auto* validate = window_->findChild<QPushButton*>("validateButton");
  auto* cancel = window_->findChild<QPushButton*>("cancelButton");
  auto* stage = window_->findChild<QLabel*>("validateStage");
  auto count_reports = [&] {
    auto list = store_->reports().List();
    return list.ok() ? static_cast<int>(list->size()) : -1;
  };
  ASSERT_EQ(count_reports(), 0);

  // Cancel while the run is in flight: the view says so and stays busy until the run has
  // stopped; then it is idle, says "cancelled", and nothing is stored.
  QTest::mouseClick(validate, Qt::LeftButton);
  EXPECT_TRUE(vv->validating());
  EXPECT_TRUE(cancel->isEnabled());
  ASSERT_TRUE(QTest::qWaitFor([&] { return gated->InFlight(); }, 10000));
  QTest::mouseClick(cancel, Qt::LeftButton);
  EXPECT_TRUE(vv->validating());
  EXPECT_FALSE(cancel->isEnabled());
  EXPECT_FALSE(validate->isEnabled());
  EXPECT_EQ(stage->text(), "cancelling…");
  gated->Open();
  ASSERT_TRUE(QTest::qWaitFor([&] { return !vv->validating(); }, 10000));
  EXPECT_TRUE(window_->runner()->WaitForIdle(5000));
  EXPECT_EQ(stage->text(), "cancelled");
  EXPECT_TRUE(validate->isEnabled());
  EXPECT_EQ(count_reports(), 0);

  // Run to the end: progress reaches 100 %, the signed report is stored and shown.
  QTest::mouseClick(validate, Qt::LeftButton);
  ASSERT_TRUE(QTest::qWaitFor([&] { return !vv->validating(); }, 120000));
  auto* progress = window_->findChild<QProgressBar*>("validateProgress");
  EXPECT_EQ(progress->value(), 1000);
  EXPECT_EQ(stage->text(), "passed");
  EXPECT_EQ(count_reports(), 1);
  auto* report = window_->findChild<QTextEdit*>("validateReport");
  EXPECT_TRUE(report->toPlainText().contains("stories260k")) << report->toPlainText().toStdString();
  EXPECT_TRUE(report->toPlainText().contains("output digest"));
  auto* reports = window_->findChild<QTableView*>("reportsTable");
  ASSERT_TRUE(QTest::qWaitFor([&] { return reports->model()->rowCount() == 1; }, 5000));
  EXPECT_EQ(reports->model()->index(0, 3).data().toString(), "passed");
}

// A long validation on the real engine (many prompts, many tokens each): cancel stops the
// engine mid-run, the worker goes idle within a bounded wait and the view says "cancelled".
TEST_F(LiveAgentsTest, CancelStopsTheEngineMidValidation) {
  const fs::path model = fs::path(SEXTANT_SHARED_DIR) / "models/stories260K.gguf";
  if (!fs::exists(model)) GTEST_SKIP() << "needs " << model << " (../shared/models)";
  constexpr int kPrompts = 200;
  std::string yaml = R"yaml(apiVersion: sextant/v1
kind: Deployment
name: long-validation
model:
  uri: file://stories260K.gguf
  sha256: 047bf46455a544931cff6fef14d7910154c56afbc23ab1c5e56a72e69912c04b
engine:
  backend: cpu
  contextLength: 512
  threads: 1
resources:
  replicas:
    min: 1
    max: 1
validation:
  maxTokens: 256
  prompts:
)yaml";
  for (int i = 0; i < kPrompts; ++i)
    yaml += "    - Once upon a time there was a dog number " + std::to_string(i) + "\n";
  const fs::path spec = root_ / "long.yaml";
  ASSERT_TRUE(rpc::WriteTextFile(spec, yaml, false).ok());
  OpenConsole();
  auto recording = std::make_shared<RecordingActions>(actions_);
  window_->context().actions = recording;
  window_->ShowView("validate");
  auto* vv = static_cast<ValidateView*>(window_->View("validate"));
  window_->findChild<QLineEdit*>("specPath")->setText(QString::fromStdString(spec.string()));
  auto* validate = window_->findChild<QPushButton*>("validateButton");
  auto* cancel = window_->findChild<QPushButton*>("cancelButton");
  auto* stage = window_->findChild<QLabel*>("validateStage");

  QTest::mouseClick(validate, Qt::LeftButton);
  ASSERT_TRUE(vv->validating());
  // The engine is generating (past the first prompt) when the cancel lands.
  ASSERT_TRUE(
      QTest::qWaitFor([&] { return recording->last_prompt >= 2 || recording->returned; }, 60000));
  ASSERT_FALSE(recording->returned) << "the validation ended before it could be cancelled";
  QTest::mouseClick(cancel, Qt::LeftButton);
  EXPECT_EQ(stage->text(), "cancelling…");
  // Bounded: the engine stops at its next token, not at the end of 200 prompts.
  ASSERT_TRUE(QTest::qWaitFor([&] { return !vv->validating(); }, 15000))
      << "still running at prompt " << recording->last_prompt;
  EXPECT_TRUE(window_->runner()->WaitForIdle(5000));
  EXPECT_EQ(window_->runner()->active_jobs(), 0);
  EXPECT_EQ(recording->code, static_cast<int>(StatusCode::kCancelled));
  EXPECT_LT(recording->last_prompt, kPrompts);
  EXPECT_EQ(stage->text(), "cancelled");
  EXPECT_TRUE(validate->isEnabled());
  EXPECT_FALSE(cancel->isEnabled());
}

}  // namespace
}  // namespace sextant::ui
