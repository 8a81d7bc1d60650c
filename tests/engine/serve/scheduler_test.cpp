// Continuous batching on the real stories260K model: batched greedy output equals single-stream
// output, the queue is bounded, cancellation and shutdown end requests with clear statuses.
#include "engine/serve/scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/tokenizer/tokenizer.h"

namespace sextant::serve {
namespace {

const char* kModelPath = SEXTANT_SHARED_DIR "/models/stories260K.gguf";

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kModelPath)) {
      GTEST_SKIP() << "skipped: " << kModelPath << " is absent (a fresh clone has no ../shared)";
    }
    model::LoadOptions lo;
    lo.backend = "cpu";
    lo.threads = 2;
    auto m = model::Model::Load(kModelPath, lo);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    model_ = *m;
  }

  GenerateRequest Greedy(const std::string& text, int n) {
    GenerateRequest req;
    req.prompt = model_->tokenizer().Encode(text, true);
    req.max_tokens = n;
    req.sampling.temperature = 0;
    return req;
  }

  std::shared_ptr<const model::Model> model_;
};

struct Collected {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::vector<int32_t>> tokens;
  std::vector<Status> done;
  int finished = 0;
  void Wait(int n) {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return finished >= n; }));
  }
};

TEST_F(SchedulerTest, SixteenConcurrentGreedyRequestsEqualSingleStream) {
  const std::vector<std::string> prompts = {"Once upon a time",
                                            "The cat",
                                            "Lily and Ben went to the park",
                                            "One day",
                                            "Tom had a big",
                                            "The sun was",
                                            "She saw a",
                                            "Mom said",
                                            "A little bird",
                                            "They played with the ball",
                                            "He was sad",
                                            "The dog ran",
                                            "In the forest",
                                            "The girl",
                                            "Sam liked to",
                                            "It was a sunny"};
  // Single stream, one at a time.
  std::vector<std::vector<int32_t>> expected;
  Session session(model_);
  for (const std::string& p : prompts) {
    std::vector<int32_t> out;
    auto st = session.Generate(Greedy(p, 40 + static_cast<int>(p.size() % 7)), [&](int32_t t) {
      out.push_back(t);
      return true;
    });
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    expected.push_back(out);
  }
  // All sixteen at once, in a scheduler with small steps so prefill chunks and decodes mix.
  SchedulerOptions so;
  so.max_batch = 16;
  so.max_batch_tokens = 24;
  BatchScheduler sched(model_, so);
  ASSERT_TRUE(sched.status().ok()) << sched.status().ToString();
  Collected c;
  c.tokens.resize(prompts.size());
  c.done.resize(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto id = sched.Submit(
        Greedy(prompts[i], 40 + static_cast<int>(prompts[i].size() % 7)),
        [&c, i](int32_t t) {
          std::lock_guard<std::mutex> lock(c.mu);
          c.tokens[i].push_back(t);
          return true;
        },
        [&c, i](Result<GenerateStats> r) {
          std::lock_guard<std::mutex> lock(c.mu);
          c.done[i] = r.status();
          ++c.finished;
          c.cv.notify_all();
        });
    ASSERT_TRUE(id.ok()) << id.status().ToString();
  }
  c.Wait(static_cast<int>(prompts.size()));
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_TRUE(c.done[i].ok()) << c.done[i].ToString();
    EXPECT_EQ(c.tokens[i], expected[i]) << "request " << i << " (" << prompts[i] << ")";
  }
  const SchedulerStats s = sched.stats();
  EXPECT_EQ(s.completed, prompts.size());
  EXPECT_GT(s.generated_tokens, 0u);
  EXPECT_LT(s.steps, s.generated_tokens);  // batching happened
  EXPECT_EQ(s.active, 0);
}

TEST_F(SchedulerTest, FullQueueIsResourceExhausted) {
  SchedulerOptions so;
  so.max_batch = 1;
  so.max_queue = 2;
  BatchScheduler sched(model_, so);
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::atomic<int> done{0};
  // The first request blocks the worker in its callback, so the next ones stay queued.
  auto blocker = sched.Submit(
      Greedy("Once upon a time", 5),
      [gate](int32_t) {
        gate.wait();
        return true;
      },
      [&](Result<GenerateStats>) { ++done; });
  ASSERT_TRUE(blocker.ok());
  while (sched.stats().active == 0) std::this_thread::yield();
  ASSERT_TRUE(sched.Submit(Greedy("a", 2), nullptr, [&](Result<GenerateStats>) { ++done; }).ok());
  ASSERT_TRUE(sched.Submit(Greedy("b", 2), nullptr, [&](Result<GenerateStats>) { ++done; }).ok());
  auto refused = sched.Submit(Greedy("c", 2), nullptr, nullptr);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(sched.stats().queue_depth, 2);
  release.set_value();
  sched.Shutdown(std::chrono::seconds(30));
  EXPECT_EQ(done.load(), 3);
  auto after = sched.Submit(Greedy("d", 2), nullptr, nullptr);
  EXPECT_EQ(after.status().code(), StatusCode::kUnavailable);
}

TEST_F(SchedulerTest, CancelEndsARunningRequest) {
  BatchScheduler sched(model_, SchedulerOptions{});
  std::promise<Status> finished;
  std::atomic<int> tokens{0};
  // The first tokens may come before Submit has returned the id: cancel from the third token on,
  // once the id is known (Cancel is allowed from a callback).
  std::atomic<uint64_t> id{0};
  auto submitted = sched.Submit(
      Greedy("Once upon a time", 100),
      [&](int32_t) {
        if (++tokens >= 3 && id.load() != 0) sched.Cancel(id.load());
        return true;
      },
      [&](Result<GenerateStats> r) { finished.set_value(r.status()); });
  ASSERT_TRUE(submitted.ok());
  id = *submitted;
  auto f = finished.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(f.get().code(), StatusCode::kCancelled);
  EXPECT_LT(tokens.load(), 100);
}

TEST_F(SchedulerTest, BadRequestsAreRefusedAtSubmit) {
  BatchScheduler sched(model_, SchedulerOptions{});
  GenerateRequest empty;
  EXPECT_EQ(sched.Submit(empty, nullptr, nullptr).status().code(), StatusCode::kInvalidArgument);
  GenerateRequest huge = Greedy("Once", sched.context_length());
  EXPECT_EQ(sched.Submit(huge, nullptr, nullptr).status().code(), StatusCode::kOutOfRange);
  GenerateRequest bad_id = Greedy("Once", 4);
  bad_id.prompt.push_back(100000);
  EXPECT_EQ(sched.Submit(bad_id, nullptr, nullptr).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SchedulerTest, ShutdownAfterGraceCancelsWhatIsLeft) {
  SchedulerOptions so;
  so.max_batch = 1;
  BatchScheduler sched(model_, so);
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::vector<Status> results;
  std::mutex mu;
  auto on_done = [&](Result<GenerateStats> r) {
    std::lock_guard<std::mutex> lock(mu);
    results.push_back(r.status());
  };
  ASSERT_TRUE(sched
                  .Submit(
                      Greedy("Once upon a time", 50),
                      [gate](int32_t) {
                        gate.wait();
                        return true;
                      },
                      on_done)
                  .ok());
  ASSERT_TRUE(sched.Submit(Greedy("The cat", 50), nullptr, on_done).ok());
  while (sched.stats().active == 0) std::this_thread::yield();
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    release.set_value();
  });
  sched.Shutdown(std::chrono::milliseconds(20));
  releaser.join();
  ASSERT_EQ(results.size(), 2u);
  for (const Status& s : results) EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
}

}  // namespace
}  // namespace sextant::serve
