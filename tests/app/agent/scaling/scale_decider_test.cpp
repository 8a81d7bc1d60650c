#include "app/agent/scaling/scale_decider.h"

#include <gtest/gtest.h>

namespace sextant::agent {
namespace {

using std::chrono::milliseconds;

// Drives a decider with a clock the test moves by hand.
class ScaleDeciderTest : public ::testing::Test {
 protected:
  ScaleDeciderTest() {
    policy_.min_replicas = 1;
    policy_.max_replicas = 4;
    policy_.per_replica_target = 3;
    policy_.scale_up_window = milliseconds(1000);
    policy_.scale_down_window = milliseconds(5000);
    policy_.scale_to_zero_after = milliseconds(0);
  }
  // Observes `in_flight` every 100 ms for `span`; returns the first decision (the decider keeps
  // its state across calls).
  std::optional<ScaleDecision> Run(milliseconds span, int current, int64_t in_flight,
                                   int64_t waiting = 0, bool requests_arrive = true) {
    const Clock::time_point end = now_ + span;
    while (now_ < end) {
      now_ += milliseconds(100);
      if (requests_arrive) last_request_ = now_;
      LoadObservation o{now_, current, in_flight, waiting, last_request_};
      if (auto d = decider_.Observe(policy_, o)) return d;
    }
    return std::nullopt;
  }

  ScalingPolicy policy_;
  ScaleDecider decider_;
  Clock::time_point now_{};
  Clock::time_point last_request_{};
};

TEST_F(ScaleDeciderTest, SustainedLoadScalesUpAfterTheUpWindowNotBefore) {
  // 12 outstanding / 3 per replica = 4 replicas wanted; the window is 1 s.
  auto early = Run(milliseconds(900), 1, 12);
  EXPECT_FALSE(early.has_value()) << early->reason;
  auto d = Run(milliseconds(300), 1, 12);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->to, 4);
  EXPECT_NE(d->reason.find("scale-up"), std::string::npos) << d->reason;
  EXPECT_NE(d->reason.find("12 outstanding"), std::string::npos) << d->reason;
}

TEST_F(ScaleDeciderTest, AShortBurstDoesNotScaleUpAndUpIsToTheLowestRecommendation) {
  EXPECT_FALSE(Run(milliseconds(500), 1, 12).has_value());
  EXPECT_FALSE(Run(milliseconds(200), 1, 2).has_value());  // the burst ends inside the window
  // 7 outstanding -> 3 wanted, then 12 -> 4: the window's lowest (3) is what it scales to.
  EXPECT_FALSE(Run(milliseconds(300), 1, 7).has_value());
  auto d = Run(milliseconds(2000), 1, 12);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->to, 3);
}

TEST_F(ScaleDeciderTest, MaxBoundsTheScaleUp) {
  auto d = Run(milliseconds(2000), 1, 1000);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->to, 4);
}

TEST_F(ScaleDeciderTest, ScaleDownWaitsForTheStableWindow) {
  EXPECT_FALSE(Run(milliseconds(4800), 4, 2).has_value());
  auto d = Run(milliseconds(500), 4, 2);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->to, 1);
  EXPECT_NE(d->reason.find("scale-down"), std::string::npos) << d->reason;
}

TEST_F(ScaleDeciderTest, ALoadSpikeInsideTheDownWindowHoldsTheReplicas) {
  EXPECT_FALSE(Run(milliseconds(3000), 4, 2).has_value());
  EXPECT_FALSE(Run(milliseconds(100), 4, 12).has_value());  // one sample wants 4 again
  // Down is to the highest recommendation of the window: 4, i.e. no change until the spike
  // leaves the window.
  EXPECT_FALSE(Run(milliseconds(4800), 4, 2).has_value());
  auto d = Run(milliseconds(500), 4, 2);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->to, 1);
}

TEST_F(ScaleDeciderTest, MinIsKeptWithoutScaleToZero) {
  policy_.min_replicas = 2;
  auto d = Run(milliseconds(6000), 4, 0, 0, false);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->to, 2);
  EXPECT_FALSE(Run(milliseconds(60000), 2, 0, 0, false).has_value());
}

TEST_F(ScaleDeciderTest, IdleScalesToZeroAndAWaitingRequestBringsAReplicaBackAtOnce) {
  policy_.scale_to_zero_after = milliseconds(3000);
  EXPECT_FALSE(Run(milliseconds(1000), 1, 1).has_value());
  // No request and nothing outstanding for 3 s.
  auto early = Run(milliseconds(2800), 1, 0, 0, false);
  EXPECT_FALSE(early.has_value()) << early->reason;
  auto d = Run(milliseconds(400), 1, 0, 0, false);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->to, 0);
  EXPECT_NE(d->reason.find("scale-to-zero"), std::string::npos) << d->reason;
  EXPECT_FALSE(Run(milliseconds(10000), 0, 0, 0, false).has_value());
  // One request waits: one replica (min), no window.
  auto up = decider_.Observe(policy_, {now_ + milliseconds(1), 0, 0, 1, now_});
  ASSERT_TRUE(up.has_value());
  EXPECT_EQ(up->to, 1);
  EXPECT_NE(up->reason.find("scale-from-zero"), std::string::npos) << up->reason;
  // Many waiting: as many as they call for, within max.
  auto many = decider_.Observe(policy_, {now_ + milliseconds(2), 0, 0, 9, now_});
  ASSERT_TRUE(many.has_value());
  EXPECT_EQ(many->to, 3);
}

TEST_F(ScaleDeciderTest, OutstandingWorkPostponesScaleToZero) {
  policy_.scale_to_zero_after = milliseconds(1000);
  // No new request for a long time, but one long generation still running.
  EXPECT_FALSE(Run(milliseconds(5000), 1, 1, 0, false).has_value());
}

TEST_F(ScaleDeciderTest, MinZeroWithoutScaleToZeroAfterUsesTheDownWindow) {
  policy_.min_replicas = 0;
  auto d = Run(milliseconds(6000), 1, 0, 0, false);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->to, 0);
}

}  // namespace
}  // namespace sextant::agent
