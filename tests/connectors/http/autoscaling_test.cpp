// The agent's serving stack on 127.0.0.1 (ReplicaManager, Autoscaler, InferenceServer over real
// HTTP, the real engine on stories260K) under a load generator that speaks the OpenAI API:
// replicas follow the load up and down, reach zero when idle and come back for the next request;
// replicas that cannot be placed on a GPU stay Pending while serving continues. The spec's
// windows are shortened (AutoscalerOptions) so the test runs in seconds.
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "app/agent/audit/audit_log.h"
#include "app/agent/metrics/registry.h"
#include "app/agent/replicas/replica_manager.h"
#include "app/agent/replicas/serving_metrics.h"
#include "app/agent/scaling/autoscaler.h"
#include "connectors/http/inference_server.h"
#include "tests/support/api_access.h"

namespace sextant::http {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

fs::path SharedModel() { return fs::path(SEXTANT_SHARED_DIR) / "models" / "stories260K.gguf"; }

// Stands in for the GPUs this machine lacks: an inventory that reports two CUDA devices. The
// replicas placed on them run on the CPU backend (the test forces it); what is under test is
// that placement never gives one GPU to two replicas and says why a replica is Pending.
class TwoGpuInventoryStandIn : public agent::InventorySource {
 public:
  agent::InventoryInfo Snapshot() override {
    agent::InventoryInfo inv;
    inv.node = "test-node";
    inv.source = "test stand-in";
    for (const char* id : {"gpu0", "gpu1"}) {
      agent::DeviceInfo d;
      d.id = id;
      d.kind = "cuda";
      d.model = "NVIDIA H100 80GB HBM3";
      d.memory_total_bytes = int64_t{80} << 30;
      inv.devices.push_back(d);
    }
    return inv;
  }
};

// Closed-loop clients: each sends a completion, waits for the answer, sends the next.
class LoadGenerator {
 public:
  LoadGenerator(int port, std::string model, int clients, std::string key) {
    for (int i = 0; i < clients; ++i) {
      threads_.emplace_back([this, port, model, key] {
        httplib::Client c("127.0.0.1", port);
        c.set_bearer_token_auth(key);
        c.set_read_timeout(60, 0);
        c.set_connection_timeout(5, 0);
        const json body = {{"model", model},
                           {"prompt", "Once upon a time"},
                           {"max_tokens", 24},
                           {"temperature", 0},
                           {"ignore_eos", true}};
        while (!stop_.load()) {
          auto res = c.Post("/v1/completions", body.dump(), "application/json");
          std::lock_guard<std::mutex> lock(mu_);
          const int code = res ? res->status : -1;
          ++codes_[code];
          if (code != 200 && failures_.size() < 5) {
            failures_.push_back(res ? res->body : httplib::to_string(res.error()));
          }
        }
      });
    }
  }
  ~LoadGenerator() { Stop(); }
  void Stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  std::map<int, int> codes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return codes_;
  }
  std::string failures() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::string s;
    for (const auto& f : failures_) s += f + "\n";
    return s;
  }

 private:
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  mutable std::mutex mu_;
  std::map<int, int> codes_;
  std::vector<std::string> failures_;
};

template <typename Pred>
bool WaitFor(Pred pred, milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(milliseconds(25));
  }
  return pred();
}

class AutoscalingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(SharedModel())) {
      GTEST_SKIP() << "needs " << SharedModel() << " (the shared models folder is absent)";
    }
    std::string tmpl = (fs::temp_directory_path() / "sextant-scaling-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    fs::create_directories(dir_ / "models");
    fs::copy_file(SharedModel(), dir_ / "models" / "stories260K.gguf");
    sha_ = agent::Sha256OfFile(dir_ / "models" / "stories260K.gguf").value();
    auto audit = agent::AuditLog::Open(dir_);
    ASSERT_TRUE(audit.ok()) << audit.status().ToString();
    audit_ = std::move(audit).value();
  }
  void TearDown() override {
    if (autoscaler_) autoscaler_->Stop();
    if (server_) server_->Shutdown(seconds(2));
    server_.reset();
    access_.reset();
    autoscaler_.reset();
    manager_.reset();
    audit_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  agent::DeploymentTarget Target(const std::string& name) {
    agent::DeploymentTarget t;
    t.name = name;
    t.generation = 1;
    t.model_uri = "stories260K.gguf";
    t.model_sha256 = sha_;
    t.engine.max_batch = 2;
    t.engine.threads = 1;
    return t;
  }

  // Target(name) with `n` replicas (fixed) of one GPU each.
  agent::DeploymentTarget OneGpuReplicas(const std::string& name, int n) {
    agent::DeploymentTarget t = Target(name);
    t.resources.gpu_count = 1;
    t.resources.replicas_min = n;
    t.resources.replicas_max = n;
    t.replicas = n;
    return t;
  }

  void StartStack(agent::ReplicaManagerOptions options,
                  std::optional<agent::AutoscalerOptions> autoscaler) {
    serving_ = std::make_unique<agent::ServingMetrics>(registry_);
    options.model_store = dir_ / "models";
    options.audit = audit_.get();
    options.threads_override = 1;
    manager_ = std::make_unique<agent::ReplicaManager>(options, serving_.get());
    access_ = std::make_unique<sextant::testing::ApiAccess>(dir_);
    ASSERT_TRUE(access_->ok());
    server_ = std::make_unique<InferenceServer>(
        sextant::testing::LoopbackApi(), access_->Deps(*manager_, serving_.get(), &registry_));
    Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    if (autoscaler) {
      autoscaler_ = std::make_unique<agent::Autoscaler>(*manager_, *autoscaler);
      autoscaler_->Start();
    }
  }

  int Ready(const std::string& name) {
    auto v = manager_->Get(name);
    return v ? v->replicas_ready : -1;
  }
  int Desired(const std::string& name) {
    auto v = manager_->Get(name);
    return v ? v->replicas_desired : -1;
  }

  httplib::Result Complete(const std::string& model, int max_tokens = 8) {
    httplib::Client c("127.0.0.1", server_->port());
    access_->Authorize(c);
    c.set_read_timeout(60, 0);
    const json body = {{"model", model},
                       {"prompt", "Once upon a time"},
                       {"max_tokens", max_tokens},
                       {"temperature", 0},
                       {"ignore_eos", true}};
    return c.Post("/v1/completions", body.dump(), "application/json");
  }

  fs::path dir_;
  std::string sha_;
  std::unique_ptr<agent::AuditLog> audit_;
  agent::Registry registry_;
  std::unique_ptr<agent::ServingMetrics> serving_;
  std::unique_ptr<agent::ReplicaManager> manager_;
  std::unique_ptr<sextant::testing::ApiAccess> access_;
  std::unique_ptr<InferenceServer> server_;
  std::unique_ptr<agent::Autoscaler> autoscaler_;
};

TEST_F(AutoscalingTest, ReplicasFollowTheLoadUpDownToZeroAndBack) {
  StartStack({.drain_grace = seconds(20)},
             agent::AutoscalerOptions{.tick = milliseconds(100),
                                      .scale_up_window_override = milliseconds(300),
                                      .scale_down_window_override = milliseconds(1500),
                                      .scale_to_zero_after_override = milliseconds(2000)});
  agent::DeploymentTarget t = Target("stories");
  t.resources.replicas_min = 1;
  t.resources.replicas_max = 3;
  t.scaling.target_queue_depth = 1;  // a replica carries 2 generating + 1 queued
  t.scaling.scale_to_zero_after_seconds = 600;
  manager_->Upsert(t);
  auto settled = manager_->WaitSettled("stories", seconds(60));
  ASSERT_TRUE(settled.has_value());
  ASSERT_EQ(settled->phase, agent::DeploymentPhase::kReady) << settled->reason;
  EXPECT_EQ(settled->replicas_ready, 1);

  // Sustained load: 9 clients want 3 replicas; max is 3.
  auto heavy = std::make_unique<LoadGenerator>(server_->port(), "stories", 8, access_->key());
  LoadGenerator light(server_->port(), "stories", 1, access_->key());
  ASSERT_TRUE(WaitFor([&] { return Ready("stories") == 3; }, seconds(30)))
      << "ready " << Ready("stories") << ", desired " << Desired("stories");
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_EQ(Desired("stories"), 3);  // never past max
  auto m = manager_->Metrics();
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].replicas_desired, 3);
  EXPECT_EQ(m[0].replicas_ready, 3);
  EXPECT_GT(m[0].in_flight, 0);

  // The load falls to one client: back to one replica after the down window, and no request
  // fails while the others drain.
  heavy->Stop();
  ASSERT_TRUE(WaitFor([&] { return Ready("stories") == 1; }, seconds(20)))
      << "ready " << Ready("stories");
  std::this_thread::sleep_for(milliseconds(300));
  light.Stop();
  std::map<int, int> codes = heavy->codes();
  for (auto [code, n] : light.codes()) codes[code] += n;
  EXPECT_EQ(codes.size(), 1u) << heavy->failures() << light.failures();
  EXPECT_GT(codes[200], 20);

  // Idle: zero replicas.
  ASSERT_TRUE(
      WaitFor([&] { return Ready("stories") == 0 && Desired("stories") == 0; }, seconds(20)));
  std::string why;
  EXPECT_TRUE(manager_->AllReady(&why)) << why;  // at zero on purpose, not broken

  // A request at zero waits for a replica and is answered.
  const auto sent = std::chrono::steady_clock::now();
  auto res = Complete("stories");
  const double waited_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - sent).count();
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_FALSE(json::parse(res->body)["choices"][0]["text"].get<std::string>().empty());
  EXPECT_EQ(Ready("stories"), 1);
  EXPECT_LT(waited_ms, 10000);

  // Every decision is a scaling event (from -> to chained), and an audit record written first.
  auto events = manager_->ScalingEventsSince(0);
  ASSERT_GE(events.size(), 4u);
  int count = 1;
  std::vector<std::string> kinds;
  for (const auto& e : events) {
    EXPECT_EQ(e.deployment, "stories");
    EXPECT_EQ(e.from_replicas, count) << e.reason;
    count = e.to_replicas;
    kinds.push_back(e.reason.substr(0, e.reason.find(':')));
    EXPECT_GT(e.at_unix_ms, 0);
  }
  EXPECT_EQ(kinds.front(), "scale-up");
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "scale-down"), kinds.end());
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "scale-to-zero"), kinds.end());
  EXPECT_EQ(kinds.back(), "scale-from-zero");
  EXPECT_EQ(events.back().to_replicas, 1);
  EXPECT_TRUE(manager_->ScalingEventsSince(events.back().at_unix_ms).empty());
  EXPECT_EQ(manager_->ScalingEventsSince(events[0].at_unix_ms).size(), events.size() - 1);

  auto audited = audit_->Query({.limit = 1000, .rpc = "Scale"});
  ASSERT_TRUE(audited.ok());
  ASSERT_EQ(audited->size(), events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ((*audited)[i].entry.target, "stories");
    EXPECT_EQ((*audited)[i].entry.identity, "agent:autoscaler");
    EXPECT_EQ((*audited)[i].entry.outcome, std::to_string(events[i].from_replicas) + " -> " +
                                               std::to_string(events[i].to_replicas) + ": " +
                                               events[i].reason);
  }
  auto chain = audit_->Verify();
  ASSERT_TRUE(chain.ok());
  EXPECT_TRUE(chain->intact);
}

TEST_F(AutoscalingTest, AtZeroWithNoReplicaComingTheQueueTimesOutWith503AndRetryAfter) {
  // No autoscaler: nothing brings a replica back, so the waiting request times out.
  StartStack({.queue_timeout_override = milliseconds(1500)}, std::nullopt);
  agent::DeploymentTarget t = Target("cold");
  t.scaling.max_queue = 2;
  manager_->Upsert(t);
  ASSERT_EQ(manager_->WaitSettled("cold", seconds(60))->phase, agent::DeploymentPhase::kReady);
  ASSERT_TRUE(manager_->SetDesired("cold", 0, "test: to zero", 0, 0).ok());
  ASSERT_TRUE(WaitFor([&] { return Ready("cold") == 0; }, seconds(10)));

  const auto sent = std::chrono::steady_clock::now();
  auto res = Complete("cold");
  const auto waited = std::chrono::steady_clock::now() - sent;
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503) << res->body;
  EXPECT_GE(std::stoi(res->get_header_value("Retry-After")), 1);
  EXPECT_EQ(json::parse(res->body)["error"]["code"], "deployment_not_ready");
  EXPECT_GE(waited, milliseconds(1450));

  // The bounded queue: with two already waiting, a third is refused at once.
  std::vector<std::thread> waiting;
  for (int i = 0; i < 2; ++i) waiting.emplace_back([&] { Complete("cold"); });
  ASSERT_TRUE(WaitFor([&] { return manager_->Get("cold")->waiting == 2; }, seconds(5)));
  const auto third_sent = std::chrono::steady_clock::now();
  auto third = Complete("cold");
  ASSERT_TRUE(third);
  EXPECT_EQ(third->status, 503);
  EXPECT_LT(std::chrono::steady_clock::now() - third_sent, milliseconds(1000));  // not queued
  EXPECT_NE(json::parse(third->body)["error"]["message"].get<std::string>().find("waiting"),
            std::string::npos);
  for (auto& w : waiting) w.join();

  // A waiting request is answered as soon as a replica is back.
  std::thread later([&] {
    std::this_thread::sleep_for(milliseconds(100));
    EXPECT_TRUE(manager_->SetDesired("cold", 1, "test: back", 0, 0).ok());
  });
  auto answered = Complete("cold");
  later.join();
  ASSERT_TRUE(answered);
  EXPECT_EQ(answered->status, 200) << answered->body;
}

TEST_F(AutoscalingTest, ReplicasBeyondTheAgentsGpusStayPendingWhileServingContinues) {
  TwoGpuInventoryStandIn gpus;
  StartStack({.backend_override = "cpu", .drain_grace = seconds(5), .inventory = &gpus},
             std::nullopt);
  agent::DeploymentTarget t = OneGpuReplicas("big", 3);
  manager_->Upsert(t);
  auto view = manager_->WaitSettled("big", seconds(60));
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->phase, agent::DeploymentPhase::kReady) << view->reason;
  EXPECT_EQ(view->replicas_desired, 3);
  EXPECT_EQ(view->replicas_ready, 2);
  EXPECT_EQ(view->replicas_pending, 1);
  EXPECT_EQ(view->pending_reason,
            "needs 1 GPU; the agent has 2 such GPUs, 2 in use by other replicas");
  std::vector<std::string> devices = view->replica_devices;
  std::sort(devices.begin(), devices.end());
  EXPECT_EQ(devices, (std::vector<std::string>{"gpu0", "gpu1"}));

  auto res = Complete("big");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  auto m = manager_->Metrics();
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].replicas_pending, 1);
  EXPECT_EQ(m[0].pending_reason, view->pending_reason);
  auto status = manager_->StatusOf("big");
  ASSERT_TRUE(status.has_value());
  EXPECT_NE(status->reason.find("1 of 3 replicas pending"), std::string::npos) << status->reason;

  // A second deployment finds no free GPU at all: Pending, with the reason.
  agent::DeploymentTarget other = Target("other");
  other.resources.gpu_count = 1;
  manager_->Upsert(other);
  ASSERT_TRUE(WaitFor(
      [&] {
        auto v = manager_->Get("other");
        return v && v->replicas_pending == 1;
      },
      seconds(30)));
  EXPECT_EQ(manager_->Get("other")->phase, agent::DeploymentPhase::kPending);
  EXPECT_NE(manager_->Get("other")->reason.find("no replica placed"), std::string::npos);

  // GPUs given back (once drained) place it.
  manager_->Remove("big");
  ASSERT_TRUE(WaitFor([&] { return Ready("other") == 1; }, seconds(30)));
  EXPECT_EQ(manager_->Get("other")->replica_devices, std::vector<std::string>{"gpu0"});
  auto served = Complete("other");
  ASSERT_TRUE(served);
  EXPECT_EQ(served->status, 200) << served->body;
}

TEST_F(AutoscalingTest, EachGpuReplicaComputesOnTheDeviceItIsPlacedOn) {
  TwoGpuInventoryStandIn gpus;
  StartStack({.backend_override = "cpu", .drain_grace = seconds(5), .inventory = &gpus},
             std::nullopt);
  agent::DeploymentTarget t = OneGpuReplicas("split", 2);
  manager_->Upsert(t);

  // Two ready replicas, on gpu0 and gpu1, each with its own model loaded for that device; each
  // answers a request routed to it.
  auto expect_one_model_per_device = [&](const std::string& when) {
    SCOPED_TRACE(when);
    auto view = manager_->Get("split");
    ASSERT_TRUE(view.has_value());
    ASSERT_EQ(view->replicas_ready, 2) << view->reason << view->pending_reason;
    ASSERT_EQ(view->replica_device_ordinals.size(), view->replica_devices.size());
    std::map<std::string, int> ordinals;
    for (size_t i = 0; i < view->replica_devices.size(); ++i) {
      ordinals[view->replica_devices[i]] = view->replica_device_ordinals[i];
    }
    EXPECT_EQ(ordinals, (std::map<std::string, int>{{"gpu0", 0}, {"gpu1", 1}}));

    // Two leases held at once land on the two replicas (least outstanding work first).
    auto a = manager_->AcquireLease("split", milliseconds(0));
    auto b = manager_->AcquireLease("split", milliseconds(0));
    ASSERT_TRUE(a.ok() && b.ok());
    std::shared_ptr<agent::Replica> ra = a->replica();
    std::shared_ptr<agent::Replica> rb = b->replica();
    a->Release();
    b->Release();
    ASSERT_NE(ra, rb);
    EXPECT_NE(&ra->model(), &rb->model());
    for (const auto& r : {ra, rb}) {
      ASSERT_EQ(r->share().gpus.size(), 1u);
      EXPECT_EQ(r->model().device(), r->share().gpus[0] == "gpu0" ? 0 : 1) << r->share().Describe();
    }
    // A lease held on one replica routes the request to the other.
    for (const auto& [busy, idle] : {std::pair(ra, rb), std::pair(rb, ra)}) {
      agent::ReplicaLease hold(busy);
      const uint64_t before = idle->scheduler().stats().completed;
      auto res = Complete("split");
      ASSERT_TRUE(res);
      EXPECT_EQ(res->status, 200) << res->body;
      EXPECT_TRUE(
          WaitFor([&] { return idle->scheduler().stats().completed == before + 1; }, seconds(5)))
          << "the replica on " << idle->share().Describe() << " served nothing";
    }
  };

  auto view = manager_->WaitSettled("split", seconds(60));
  ASSERT_TRUE(view.has_value());
  ASSERT_EQ(view->phase, agent::DeploymentPhase::kReady) << view->reason;
  expect_one_model_per_device("first start");

  // At zero every model is released; coming back loads one per device again.
  ASSERT_TRUE(manager_->SetDesired("split", 0, "test: to zero", 0, 0).ok());
  ASSERT_TRUE(WaitFor([&] { return Ready("split") == 0; }, seconds(10)));
  EXPECT_TRUE(manager_->Get("split")->replica_device_ordinals.empty());
  ASSERT_TRUE(manager_->SetDesired("split", 2, "test: back", 0, 0).ok());
  ASSERT_TRUE(WaitFor([&] { return Ready("split") == 2; }, seconds(30)))
      << "ready " << Ready("split") << ": " << manager_->Get("split")->pending_reason;
  expect_one_model_per_device("after scaling to zero and back");
}

}  // namespace
}  // namespace sextant::http
