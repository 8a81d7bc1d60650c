#include "app/agent/scaling/autoscaler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "app/agent/config/json_log.h"

namespace sextant::agent {

Autoscaler::Autoscaler(agent::ReplicaManager& manager, AutoscalerOptions options)
    : manager_(manager), options_(std::move(options)) {}

Autoscaler::~Autoscaler() { Stop(); }

void Autoscaler::Start() {
  if (thread_.joinable()) return;
  std::weak_ptr<Wake> weak = wake_;
  manager_.SetDemandListener([weak](const std::string&) {
    if (auto w = weak.lock()) {
      std::lock_guard<std::mutex> lock(w->mu);
      w->pending = true;
      w->cv.notify_all();
    }
  });
  thread_ = std::thread([this] { Loop(); });
}

void Autoscaler::Stop() {
  {
    std::lock_guard<std::mutex> lock(wake_->mu);
    wake_->stop = true;
    wake_->cv.notify_all();
  }
  if (thread_.joinable()) {
    manager_.SetDemandListener({});
    thread_.join();
  }
}

void Autoscaler::Loop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(wake_->mu);
      wake_->cv.wait_for(lock, options_.tick, [&] { return wake_->stop || wake_->pending; });
      if (wake_->stop) return;
      wake_->pending = false;
    }
    Tick();
  }
}

ScalingPolicy Autoscaler::PolicyFor(const agent::ScalingInput& in) const {
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  ScalingPolicy p;
  p.min_replicas = in.replicas_min;
  p.max_replicas = in.replicas_max;
  p.per_replica_target = in.per_replica_target;
  auto pick = [](milliseconds override_value, int64_t spec_seconds) {
    return override_value.count() > 0
               ? override_value
               : std::chrono::duration_cast<milliseconds>(seconds(spec_seconds));
  };
  p.scale_up_window = pick(options_.scale_up_window_override, in.scaling.scale_up_window_seconds);
  p.scale_down_window =
      pick(options_.scale_down_window_override, in.scaling.scale_down_window_seconds);
  // An override applies only where the spec scales to zero at all.
  p.scale_to_zero_after =
      in.scaling.scale_to_zero_after_seconds > 0
          ? pick(options_.scale_to_zero_after_override, in.scaling.scale_to_zero_after_seconds)
          : milliseconds(0);
  return p;
}

int Autoscaler::Tick() {
  std::lock_guard<std::mutex> lock(tick_mu_);
  const Clock::time_point now = options_.now ? options_.now() : Clock::now();
  int applied = 0;
  std::set<std::string> seen;
  for (const agent::ScalingInput& in : manager_.ScalingInputs()) {
    seen.insert(in.name);
    Tracked& t = deciders_[in.name];
    if (t.generation != in.generation) {
      t.generation = in.generation;
      t.decider.Reset();
    }
    if (!in.scalable) continue;
    LoadObservation obs;
    obs.at = now;
    obs.current = in.desired;
    obs.in_flight = in.in_flight;
    obs.waiting = in.waiting;
    obs.last_request = in.last_request;
    std::optional<ScaleDecision> d = t.decider.Observe(PolicyFor(in), obs);
    if (!d || d->to == in.desired) continue;
    Status s =
        manager_.SetDesired(in.name, d->to, d->reason, static_cast<double>(in.queued + in.waiting),
                            static_cast<double>(in.in_flight));
    if (s.ok()) {
      ++applied;
    } else {
      agent::LogEvent(spdlog::level::err, "scale_failed",
                      {{"deployment", in.name}, {"to", d->to}, {"error", s.message()}});
    }
  }
  for (auto it = deciders_.begin(); it != deciders_.end();) {
    it = seen.count(it->first) != 0 ? std::next(it) : deciders_.erase(it);
  }
  return applied;
}

}  // namespace sextant::agent
