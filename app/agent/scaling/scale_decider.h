// ScaleDecider: the replica count one deployment should have, from its load over time.
//
// Every observation yields a recommendation: ceil(outstanding / per_replica_target), clamped to
// [max(min, 1), max], where outstanding = requests routed to a replica and not finished (queued
// in its engine or generating) plus requests waiting for a ready replica. Then:
//   - at zero replicas, a waiting request scales up at once ("scale-from-zero"): no window;
//   - scale-up: when every recommendation over the last scale_up_window (a short window, so
//     bursts shorter than it do not add replicas) is above the current count, to the lowest of
//     them;
//   - scale-down: when every recommendation over the last scale_down_window (a long, stable
//     window, so replicas do not flap) is below the current count, to the highest of them;
//   - scale to zero: with nothing outstanding and no request for scale_to_zero_after (or, when
//     min is 0 and scale_to_zero_after is 0, for scale_down_window), to zero.
// After a decision the windows start again from it.
//
// Time is what the caller passes: tests drive it with any clock.
//
// Thread-safety: none; one decider per deployment, used by one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

namespace sextant::agent {

using Clock = std::chrono::steady_clock;

struct ScalingPolicy {
  int min_replicas = 1;
  int max_replicas = 1;
  int per_replica_target = 1;  // outstanding requests one replica is meant to carry
  std::chrono::milliseconds scale_up_window{5000};
  std::chrono::milliseconds scale_down_window{300000};
  std::chrono::milliseconds scale_to_zero_after{0};  // 0: only when min is 0 (see above)
};

struct LoadObservation {
  Clock::time_point at;
  int current = 0;                 // replicas wanted now (placed or pending)
  int64_t in_flight = 0;           // routed to a replica, not finished
  int64_t waiting = 0;             // waiting for a ready replica
  Clock::time_point last_request;  // arrival of the latest request
};

struct ScaleDecision {
  int to = 0;
  std::string reason;  // "scale-up: 12 outstanding > 5 per replica x 2 replicas", ...
};

class ScaleDecider {
 public:
  std::optional<ScaleDecision> Observe(const ScalingPolicy& policy, const LoadObservation& obs);
  // Forgets the history (a new policy, or a count changed by someone else).
  void Reset() { history_.clear(); }

 private:
  struct Sample {
    Clock::time_point at;
    int recommended = 0;
  };
  std::deque<Sample> history_;
};

}  // namespace sextant::agent
