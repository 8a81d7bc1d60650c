// Autoscaler: the agent's per-deployment scaling loop. It needs nothing from the console: the
// policy is the deployment spec's (resources.replicas, scaling.*), the metrics are the replica
// manager's own, so scaling goes on while the control plane is away (static stability).
//
// Every tick (and at once when a request waits for a deployment that has no ready replica) it
// reads each deployment's load from the ReplicaManager, asks that deployment's ScaleDecider
// (scale_decider.h) and applies a decision with ReplicaManager::SetDesired, which audits it and
// records the scaling event.
//
// The windows of the spec are whole seconds; AutoscalerOptions can shorten them (tests) and
// supply the clock.
//
// Thread-safety: Start/Stop from one thread; Tick() may be called from any thread (ticks are
// serialized).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "app/agent/replicas/replica_manager.h"
#include "app/agent/scaling/scale_decider.h"

namespace sextant::agent {

struct AutoscalerOptions {
  std::chrono::milliseconds tick{1000};
  // Replace the spec's windows when > 0 (tests run in seconds, not minutes).
  std::chrono::milliseconds scale_up_window_override{0};
  std::chrono::milliseconds scale_down_window_override{0};
  std::chrono::milliseconds scale_to_zero_after_override{0};
  std::function<Clock::time_point()> now;  // empty: steady_clock::now
};

class Autoscaler {
 public:
  // `manager` must outlive the autoscaler.
  Autoscaler(agent::ReplicaManager& manager, AutoscalerOptions options = {});
  // Stop().
  ~Autoscaler();
  Autoscaler(const Autoscaler&) = delete;
  Autoscaler& operator=(const Autoscaler&) = delete;

  // Starts the loop on its own thread and listens for requests waiting at zero replicas.
  void Start();
  // Stops the loop and the listener. Idempotent.
  void Stop();
  // One pass over every deployment; returns how many decisions were applied.
  int Tick();

  // The policy a deployment's input stands for (spec fields, with the overrides applied).
  ScalingPolicy PolicyFor(const agent::ScalingInput& input) const;

 private:
  void Loop();

  agent::ReplicaManager& manager_;
  const AutoscalerOptions options_;

  std::mutex tick_mu_;  // serializes Tick()
  struct Tracked {
    int64_t generation = 0;
    ScaleDecider decider;
  };
  std::map<std::string, Tracked> deciders_;  // GUARDED_BY(tick_mu_)

  // Shared with the manager's demand listener, which may run after Stop() began.
  struct Wake {
    std::mutex mu;
    std::condition_variable cv;
    bool pending = false;  // GUARDED_BY(mu)
    bool stop = false;     // GUARDED_BY(mu)
  };
  std::shared_ptr<Wake> wake_ = std::make_shared<Wake>();
  std::thread thread_;
};

}  // namespace sextant::agent
