// Real agents (the agent's gRPC service over mutual TLS on 127.0.0.1, with certificates made
// here) feeding the console store through the fleet connector. Devices and deployment figures
// come from purpose-made sources inside each agent, so the test knows what every agent reports.
#include "connectors/console/fleet_connector.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "app/agent/audit/audit_log.h"
#include "app/agent/audit/egress_ledger.h"
#include "app/agent/policy/access_policy.h"
#include "app/agent/state/desired_state.h"
#include "app/agent/state/sources.h"
#include "app/console/compliance/pack.h"
#include "app/console/fleet/fleet.h"
#include "app/console/store/console_database.h"
#include "connectors/agent/agent_server.h"
#include "connectors/agent/identity_certs.h"
#include "tests/support/agent_fixture.h"

namespace sextant::rpc {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr int64_t kGiB = 1024LL * 1024 * 1024;

using test_agents::FixedCloud;
using test_agents::FixedInventory;
using test_agents::kVendorOperatorPolicy;
using test_agents::SpecDigestHex;

class FakeObserver : public agent::DeploymentObserver {
 public:
  FakeObserver(agent::DeploymentMetricsInfo m, std::chrono::milliseconds delay)
      : metrics_(std::move(m)), delay_(delay) {}
  std::optional<agent::DeploymentStatusInfo> StatusOf(const std::string&) override {
    agent::DeploymentStatusInfo s;
    s.phase = agent::DeploymentPhase::kReady;
    s.replicas_desired = 2;
    s.replicas_ready = metrics_.replicas_ready;
    return s;
  }
  std::vector<agent::DeploymentMetricsInfo> Metrics() override {
    std::this_thread::sleep_for(delay_);
    std::lock_guard lock(mu_);
    return {metrics_};
  }
  // What the agent reports from now on.
  void Set(agent::DeploymentMetricsInfo m) {
    std::lock_guard lock(mu_);
    metrics_ = std::move(m);
  }
  agent::DeploymentMetricsInfo Get() {
    std::lock_guard lock(mu_);
    return metrics_;
  }

 private:
  std::mutex mu_;
  agent::DeploymentMetricsInfo metrics_;
  std::chrono::milliseconds delay_;
};

// One agent, with what it reports kept for the assertions.
struct TestAgent : test_agents::InProcessAgent<FakeObserver> {
  int gpus = 0;
  int64_t mem_used = 0;
  int64_t mem_total = 0;
  double util_sum = 0;
  double tokens_per_s = 0;
  int queue = 0;
};

class FleetConnectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("fleet_connector_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
    auto pki = test_agents::MakeTestPki(root_);
    ASSERT_TRUE(pki.ok()) << pki.status().ToString();
    pki_ = *pki;
    auto st = console::ConsoleDatabase::Open(root_ / "console");
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    store_ = std::move(st).value();
  }
  void TearDown() override {
    for (auto& a : agents_) a->Kill();
    agents_.clear();
    store_.reset();
    fs::remove_all(root_);
  }

  // Starts n agents; agent i has 1 + i % 4 GPUs and one deployment "chat".
  void StartAgents(int n, int slow_index = -1) {
    auto policy =
        agent::AgentPolicy::Parse(kVendorOperatorPolicy, "policy.yaml", rpc::AgentRpcNames());
    ASSERT_TRUE(policy.ok()) << policy.status().ToString();
    for (int i = 0; i < n; ++i) {
      auto a = std::make_unique<TestAgent>();
      ASSERT_TRUE(a->Open(root_ / ("agent-" + std::to_string(i)), *policy).ok());
      agent::InventoryInfo inv;
      inv.node = "node-" + std::to_string(i);
      inv.source = "nvml";
      a->gpus = 1 + i % 4;
      for (int g = 0; g < a->gpus; ++g) {
        agent::DeviceInfo d;
        d.id = "gpu" + std::to_string(g);
        d.kind = "cuda";
        d.model = "NVIDIA H100 80GB HBM3";
        d.memory_total_bytes = 80 * kGiB;
        d.memory_used_bytes = (i + g + 1) * kGiB;
        d.utilization = 0.1 * ((i + g) % 10);
        d.temperature_c = 50;
        d.power_w = 300;
        a->mem_used += d.memory_used_bytes;
        a->mem_total += d.memory_total_bytes;
        a->util_sum += d.utilization;
        inv.devices.push_back(d);
      }
      a->inventory = std::make_unique<FixedInventory>(inv);
      a->cloud = std::make_unique<FixedCloud>("eu-west-1");
      agent::DeploymentMetricsInfo m;
      m.name = "chat";
      m.tokens_per_second = 10.0 + i;
      m.queue_depth = i;
      m.generated_tokens_total = 1000 * (i + 1);
      m.prompt_tokens_total = 100 * (i + 1);
      m.replicas_ready = 1 + i % 2;
      m.ttft_seconds.upper_bounds = {0.05, 0.1, 0.5};
      m.ttft_seconds.counts = {0, 10, 10, 10};  // every request between 50 and 100 ms
      m.ttft_seconds.count = 10;
      // Inter-token gaps all between 20 and 50 ms, scaled by (i + 1): p50 35 ms × (i + 1).
      m.inter_token_seconds.upper_bounds = {0.01 * (i + 1), 0.02 * (i + 1), 0.05 * (i + 1)};
      m.inter_token_seconds.counts = {0, 0, 100, 100};
      m.inter_token_seconds.count = 100;
      m.kv_cache_use = 0.01 * (i + 1);
      a->tokens_per_s = m.tokens_per_second;
      a->queue = m.queue_depth;
      a->observer = std::make_unique<FakeObserver>(m, i == slow_index ? 8000ms : 0ms);
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
      ASSERT_TRUE(a->Serve(pki_, /*encryption_at_rest=*/true).ok());
      console::Target t;
      t.name = "agent-" + std::to_string(i);
      t.endpoint = "127.0.0.1:" + std::to_string(a->port);
      t.ca_path = (root_ / "ca.pem").string();
      t.cert_path = (root_ / "console.pem").string();
      t.key_path = (root_ / "console.key").string();
      t.server_name = "localhost";
      t.labels = {{"team", i % 2 ? "ml" : "search"}};
      ASSERT_TRUE(store_->targets().Add(t).ok());
      targets_.push_back(t);
      agents_.push_back(std::move(a));
    }
  }

  fs::path root_;
  test_agents::TestPki pki_;
  std::unique_ptr<console::ConsoleDatabase> store_;
  std::vector<std::unique_ptr<TestAgent>> agents_;
  std::vector<console::Target> targets_;
};

TEST_F(FleetConnectorTest, FleetTotalsOfTwentyAgentsMatchWhatTheyReport) {
  StartAgents(20);
  ConnectorOptions o;
  o.call_deadline = 10000ms;  // generous: 20 TLS handshakes on a busy 2-core host
  auto statuses = RefreshAll(*store_, targets_, o);
  ASSERT_EQ(statuses.size(), 20u);
  for (const auto& s : statuses) {
    EXPECT_EQ(s.state, console::ConnState::kConnected) << s.target << ": " << s.error;
    EXPECT_EQ(s.identity, "spiffe://example.org/vendor/console");
    EXPECT_EQ(s.role, "vendor-operator");
  }
  auto snap = console::LoadFleet(*store_, console::NowMs(), 30'000);
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  const console::FleetRow total = console::Totals(*snap);
  int gpus = 0, queue = 0;
  int64_t used = 0, cap = 0;
  double util = 0, tps = 0;
  int ready = 0;
  for (size_t i = 0; i < agents_.size(); ++i) {
    gpus += agents_[i]->gpus;
    used += agents_[i]->mem_used;
    cap += agents_[i]->mem_total;
    util += agents_[i]->util_sum;
    tps += agents_[i]->tokens_per_s;
    queue += agents_[i]->queue;
    ready += 1 + static_cast<int>(i) % 2;
  }
  EXPECT_EQ(total.targets, 20);
  EXPECT_EQ(total.connected, 20);
  EXPECT_EQ(total.nodes, 20);
  EXPECT_EQ(total.gpus, gpus);
  EXPECT_EQ(total.memory_used_bytes, used);
  EXPECT_EQ(total.memory_total_bytes, cap);
  EXPECT_NEAR(total.utilization, util / gpus, 1e-9);
  EXPECT_NEAR(total.tokens_per_s, tps, 1e-9);
  EXPECT_EQ(total.queue_depth, queue);
  EXPECT_EQ(total.deployments, 20);
  EXPECT_EQ(total.replicas_ready, ready);
  EXPECT_EQ(total.replicas_desired, 40);
  // All TTFTs fell between 50 and 100 ms: p50 interpolates to 75 ms.
  EXPECT_NEAR(total.ttft_p50_ms, 75.0, 1e-6);
  // Inter-token latency and KV cache use of each deployment, as its agent reported them.
  auto deps = store_->telemetry().ListDeployments();
  ASSERT_TRUE(deps.ok()) << deps.status().ToString();
  ASSERT_EQ(deps->size(), 20u);
  for (const auto& d : *deps) {
    const int i = std::stoi(d.target.substr(std::string("agent-").size()));
    EXPECT_NEAR(d.itl_p50_ms, 35.0 * (i + 1), 1e-6) << d.target;
    EXPECT_NEAR(d.itl_p99_ms, (20 + 30 * 0.99) * (i + 1), 1e-6) << d.target;
    EXPECT_NEAR(d.kv_cache_use, 0.01 * (i + 1), 1e-12) << d.target;
  }
  EXPECT_NEAR(total.itl_p99_ms, (20 + 30 * 0.99) * 20, 1e-6);  // the worst deployment
  EXPECT_NEAR(total.kv_cache_use, 0.20, 1e-12);
  // Grouped by region: one region, the same totals.
  auto by_region = console::Summarize(*snap, console::FleetGroupBy::kRegion);
  ASSERT_EQ(by_region.size(), 1u);
  EXPECT_EQ(by_region[0].key, "eu-west-1");
  EXPECT_EQ(by_region[0].gpus, gpus);

  // The agents' compliance facts evaluate: the policy equals the published vendor baseline.
  auto packs = console::LoadPacks(fs::path(SEXTANT_SOURCE_DIR) / "resources/policies");
  ASSERT_TRUE(packs.ok()) << packs.status().ToString();
  console::EvaluationInput in;
  in.now = console::NowMs();
  in.targets = {"agent-0"};
  in.facts = *store_->facts().List();
  // The agent's cloud context arrives as facts, instance id included, for reconciliation.
  std::map<std::string, std::string> agent0;
  for (const auto& f : in.facts) {
    if (f.target == "agent-0") agent0[f.key] = f.value;
  }
  EXPECT_EQ(agent0["cloud.provider"], "aws");
  EXPECT_EQ(agent0["cloud.account"], "123456789012");
  EXPECT_EQ(agent0["cloud.instance_id"], "i-0123456789abcdef0");
  for (const auto& p : *packs) {
    if (p.name != "soc2-baseline") continue;
    for (const auto& f : console::Evaluate(p, in)) {
      if (f.rule_id == "SOC2-CC6.1-TLS" || f.rule_id == "SOC2-CC6.3-VENDOR") {
        EXPECT_EQ(f.verdict, console::Verdict::kPass) << f.rule_id << ": " << f.message;
      }
    }
  }
}

TEST_F(FleetConnectorTest, ASlowAgentDoesNotHoldUpTheOthers) {
  StartAgents(4, /*slow_index=*/2);
  ConnectorOptions o;
  o.call_deadline = 3000ms;
  const auto start = std::chrono::steady_clock::now();
  auto statuses = RefreshAll(*store_, targets_, o);
  const auto took = std::chrono::steady_clock::now() - start;
  // The slow agent takes 8 s per snapshot; nobody waits for it beyond the deadline.
  EXPECT_LT(took, 7000ms);
  for (const auto& s : statuses) {
    if (s.target == "agent-2") {
      EXPECT_EQ(s.state, console::ConnState::kError);
      EXPECT_NE(s.error.find("deadline"), std::string::npos) << s.error;
    } else {
      EXPECT_EQ(s.state, console::ConnState::kConnected) << s.target << ": " << s.error;
    }
  }
}

TEST_F(FleetConnectorTest, AKilledAgentShowsUnreachableWithinItsDeadlineAndRecovers) {
  StartAgents(20);
  ConnectorOptions o;
  o.call_deadline = 2000ms;
  o.metrics_interval_ms = 250;
  o.refresh_interval = 60000ms;
  o.backoff_initial = 200ms;
  o.backoff_max = 1000ms;
  o.stale_after = 3000ms;
  FleetConnector fc(store_.get(), o);
  fc.Start(targets_);
  auto state_of = [&](const std::string& name) {
    for (const auto& s : fc.Statuses()) {
      if (s.target == name) return s;
    }
    return console::TargetStatus{};
  };
  auto wait_for = [&](auto pred, std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (pred()) return true;
      std::this_thread::sleep_for(20ms);
    }
    return pred();
  };
  ASSERT_TRUE(wait_for(
      [&] {
        for (const auto& s : fc.Statuses()) {
          if (s.state != console::ConnState::kConnected || s.last_seen == 0) return false;
        }
        return true;
      },
      60000ms));
  ASSERT_TRUE(
      wait_for([&] { return *store_->telemetry().CountRows("gpu_samples") >= 100; }, 5000ms));

  const int port = agents_[7]->port;
  const auto killed_at = std::chrono::steady_clock::now();
  agents_[7]->Kill();
  ASSERT_TRUE(
      wait_for([&] { return state_of("agent-7").state == console::ConnState::kError; }, 5000ms));
  const auto noticed = std::chrono::steady_clock::now() - killed_at;
  EXPECT_LE(noticed, o.call_deadline + 500ms);
  EXPECT_NE(state_of("agent-7").error.find("unreachable"), std::string::npos)
      << state_of("agent-7").error;
  // The store says so too (what `sextant fleet --offline` prints).
  auto snap = console::LoadFleet(*store_, console::NowMs(), 30'000);
  EXPECT_EQ(console::Totals(*snap).unreachable, 1);

  // The others keep reporting meanwhile.
  const auto seen_before = state_of("agent-3").last_seen;
  ASSERT_TRUE(wait_for([&] { return state_of("agent-3").last_seen > seen_before; }, 5000ms));
  EXPECT_EQ(state_of("agent-3").state, console::ConnState::kConnected);

  // Restarted on the same port with the same state, it is connected again.
  agents_[7]->port = port;
  ASSERT_TRUE(agents_[7]->Serve(pki_, /*encryption_at_rest=*/true).ok());
  EXPECT_TRUE(wait_for([&] { return state_of("agent-7").state == console::ConnState::kConnected; },
                       30000ms))
      << state_of("agent-7").error;
  fc.Stop();
}

// The connector's quantiles cover what was observed between two snapshots (the increase of the
// agent's cumulative histogram), as for time to first token; an idle period keeps the last.
TEST_F(FleetConnectorTest, InterTokenLatencyIsTakenFromTheIncreaseBetweenSnapshots) {
  StartAgents(1);
  ConnectorOptions o;
  o.call_deadline = 5000ms;
  o.metrics_interval_ms = 100;
  o.stale_after = 5000ms;
  FleetConnector fc(store_.get(), o);
  fc.Start(targets_);
  auto dep = [&] {
    auto d = store_->telemetry().ListDeployments();
    return d.ok() && d->size() == 1 ? (*d)[0] : console::Deployment{};
  };
  auto wait_for = [&](auto pred, std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (pred()) return true;
      std::this_thread::sleep_for(20ms);
    }
    return pred();
  };
  // First snapshot: the whole histogram, every gap between 20 and 50 ms.
  ASSERT_TRUE(wait_for([&] { return dep().sampled_at > 0; }, 30000ms));
  EXPECT_NEAR(dep().itl_p50_ms, 35.0, 1e-6);
  EXPECT_NEAR(dep().kv_cache_use, 0.01, 1e-12);
  // The same counters again: nothing new, the figures stand.
  const auto first = dep().sampled_at;
  ASSERT_TRUE(wait_for([&] { return dep().sampled_at > first; }, 5000ms));
  EXPECT_NEAR(dep().itl_p50_ms, 35.0, 1e-6);
  // 100 more gaps, all under 10 ms, and a fuller cache. Over the whole history the median
  // would be 10 ms; over the increase it is 5 ms and the p99 9.9 ms.
  agent::DeploymentMetricsInfo m = agents_[0]->observer->Get();
  m.inter_token_seconds.counts = {100, 100, 200, 200};
  m.inter_token_seconds.count = 200;
  m.kv_cache_use = 0.875;
  agents_[0]->observer->Set(m);
  ASSERT_TRUE(wait_for([&] { return dep().kv_cache_use > 0.5; }, 5000ms));
  EXPECT_NEAR(dep().itl_p50_ms, 5.0, 1e-6);
  EXPECT_NEAR(dep().itl_p99_ms, 9.9, 1e-6);
  EXPECT_NEAR(dep().kv_cache_use, 0.875, 1e-12);
  fc.Stop();
}

TEST_F(FleetConnectorTest, TestTargetReportsIdentityAndRole) {
  StartAgents(1);
  auto who = TestTarget(targets_[0], 3000ms);
  ASSERT_TRUE(who.ok()) << who.status().ToString();
  EXPECT_EQ(who->identity, "spiffe://example.org/vendor/console");
  EXPECT_EQ(who->role, "vendor-operator");
  EXPECT_FALSE(who->allowed_rpcs.empty());
  agents_[0]->Kill();
  auto down = TestTarget(targets_[0], 1000ms);
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace sextant::rpc
