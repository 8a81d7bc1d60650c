#include "app/agent/scaling/scale_decider.h"

#include <algorithm>
#include <cmath>

namespace sextant::agent {

namespace {

std::string Secs(Clock::duration d) {
  const double s = std::chrono::duration<double>(d).count();
  char buf[32];
  std::snprintf(buf, sizeof(buf), s < 10 ? "%.1f s" : "%.0f s", s);
  return buf;
}

}  // namespace

std::optional<ScaleDecision> ScaleDecider::Observe(const ScalingPolicy& policy,
                                                   const LoadObservation& obs) {
  const int floor = std::max(policy.min_replicas, 1);
  const int ceiling = std::max(policy.max_replicas, floor);
  const int64_t outstanding = obs.in_flight + obs.waiting;
  const int64_t target = std::max(policy.per_replica_target, 1);
  const int64_t raw = (outstanding + target - 1) / target;
  const int recommended = static_cast<int>(std::clamp<int64_t>(raw, floor, ceiling));
  const std::string load = std::to_string(outstanding) + " outstanding (" +
                           std::to_string(obs.in_flight) + " in flight, " +
                           std::to_string(obs.waiting) + " waiting)";

  if (obs.current == 0) {
    history_.clear();
    if (outstanding > 0) {
      return ScaleDecision{recommended, "scale-from-zero: " + load};
    }
    return std::nullopt;
  }

  // Idle: scale to zero.
  std::chrono::milliseconds idle_after = policy.scale_to_zero_after;
  if (idle_after.count() == 0 && policy.min_replicas == 0) idle_after = policy.scale_down_window;
  if (idle_after.count() > 0 && outstanding == 0 && obs.at - obs.last_request >= idle_after) {
    history_.clear();
    return ScaleDecision{0, "scale-to-zero: no request for " + Secs(obs.at - obs.last_request)};
  }

  history_.push_back(Sample{obs.at, recommended});
  const auto longest = std::max(policy.scale_up_window, policy.scale_down_window);
  // Keep one sample at or before the longest window's start: it says the window is covered.
  while (history_.size() >= 2 && history_[1].at <= obs.at - longest) history_.pop_front();

  // The extreme recommendation over a window, when the history covers all of it.
  auto over = [&](std::chrono::milliseconds window, bool lowest) -> std::optional<int> {
    if (window.count() == 0) return recommended;
    if (history_.front().at > obs.at - window) return std::nullopt;
    int v = lowest ? ceiling : 0;
    // Samples inside the window, plus the last one before it (the state at its start).
    for (auto it = history_.rbegin(); it != history_.rend(); ++it) {
      v = lowest ? std::min(v, it->recommended) : std::max(v, it->recommended);
      if (it->at <= obs.at - window) break;
    }
    return v;
  };

  const std::string per = std::to_string(target) + " per replica x " + std::to_string(obs.current) +
                          (obs.current == 1 ? " replica" : " replicas");
  if (std::optional<int> up = over(policy.scale_up_window, true); up && *up > obs.current) {
    history_.clear();
    return ScaleDecision{
        *up, "scale-up: " + load + " > " + per + " for " + Secs(policy.scale_up_window)};
  }
  if (std::optional<int> down = over(policy.scale_down_window, false);
      down && *down < obs.current) {
    history_.clear();
    return ScaleDecision{
        *down, "scale-down: " + load + " < " + per + " for " + Secs(policy.scale_down_window)};
  }
  if (obs.current > ceiling || obs.current < floor) {
    history_.clear();
    return ScaleDecision{std::clamp(obs.current, floor, ceiling),
                         "bounds: replicas must be within [" + std::to_string(floor) + ", " +
                             std::to_string(ceiling) + "]"};
  }
  return std::nullopt;
}

}  // namespace sextant::agent
