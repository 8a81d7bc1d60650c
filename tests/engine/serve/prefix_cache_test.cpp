// The BatchScheduler over a paged KV cache with prefix caching, on a synthesized model: greedy
// outputs are bit-for-bit those of a Session (no cache, one sequence) whatever the interleaving,
// the pool size, preemption or eviction; reused prefixes are reported as cached tokens, shared only
// within a cache partition; a request that cannot fit the pool is refused at Submit. The same
// identity holds on a model with sliding-window layers (gemma2).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/serve/scheduler.h"
#include "engine/serve/session.h"
#include "tests/support/synth_model.h"

namespace sextant::serve {
namespace {

constexpr int kBlock = 16;

std::vector<int32_t> Tokens(int n, int salt) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) t[static_cast<size_t>(i)] = 3 + (i * 37 + salt * 101) % 500;
  return t;
}

std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

GenerateRequest Greedy(std::vector<int32_t> prompt, int n, std::string partition = "") {
  GenerateRequest req;
  req.prompt = std::move(prompt);
  req.max_tokens = n;
  req.sampling.temperature = 0;
  req.stop_at_eos = false;  // random weights: generate exactly n tokens
  req.cache_partition = std::move(partition);
  return req;
}

// What one request got.
struct Outcome {
  std::vector<int32_t> tokens;
  Status status;
  GenerateStats stats;
  bool done = false;
};

// Collects the outcomes of submitted requests; Wait() blocks until all have finished.
class Results {
 public:
  explicit Results(size_t n) : outcomes_(n) {}
  TokenCallback OnToken(size_t i) {
    return [this, i](int32_t t) {
      std::lock_guard<std::mutex> lock(mu_);
      outcomes_[i].tokens.push_back(t);
      return true;
    };
  }
  DoneCallback OnDone(size_t i) {
    return [this, i](Result<GenerateStats> r) {
      std::lock_guard<std::mutex> lock(mu_);
      outcomes_[i].status = r.status();
      if (r.ok()) outcomes_[i].stats = *r;
      outcomes_[i].done = true;
      cv_.notify_all();
    };
  }
  bool Wait(size_t i) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(60), [&] { return outcomes_[i].done; });
  }
  bool WaitAll() {
    for (size_t i = 0; i < outcomes_.size(); ++i) {
      if (!Wait(i)) return false;
    }
    return true;
  }
  Outcome Get(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    return outcomes_[i];
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Outcome> outcomes_;
};

class PrefixCacheTest : public ::testing::Test {
 protected:
  void SetUp() override { Load(testing::SmallLlamaShape()); }

  void Load(const gguf::LlamaShape& shape) {
    auto m = testing::SynthModel::Make(shape);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    synth_ = std::move(m).value();
    model_ = synth_->model();
  }

  // A Session's greedy tokens for each request: the reference (no cache, no batching).
  std::vector<std::vector<int32_t>> Alone(const std::vector<GenerateRequest>& reqs) {
    Session session(model_);
    std::vector<std::vector<int32_t>> out;
    for (const GenerateRequest& r : reqs) {
      std::vector<int32_t> got;
      auto st = session.Generate(r, [&](int32_t t) {
        got.push_back(t);
        return true;
      });
      EXPECT_TRUE(st.ok()) << st.status().ToString();
      out.push_back(got);
    }
    return out;
  }

  // A chat-like set: a 100-token system prompt with user turns, turns that extend earlier
  // prompts, a duplicate, and a prompt of exactly 8 blocks (fully cached but its last token).
  std::vector<GenerateRequest> ChatRequests() {
    const std::vector<int32_t> system = Tokens(100, 1);
    std::vector<GenerateRequest> reqs;
    for (int u = 0; u < 6; ++u)
      reqs.push_back(Greedy(Concat(system, Tokens(10 + 4 * u, 10 + u)), 12));
    reqs.push_back(Greedy(Concat(reqs[0].prompt, Tokens(30, 20)), 10));  // extends request 0
    reqs.push_back(Greedy(Concat(reqs[6].prompt, Tokens(9, 21)), 10));   // extends that
    reqs.push_back(reqs[2]);                                             // the same prompt again
    reqs.push_back(Greedy(Tokens(8 * kBlock, 30), 8));
    reqs.push_back(Greedy(Tokens(8 * kBlock, 30), 8));
    reqs.push_back(Greedy(Tokens(5, 31), 20));  // shorter than a block
    return reqs;
  }

  std::unique_ptr<testing::SynthModel> synth_;
  std::shared_ptr<const model::Model> model_;
};

void ExpectSameAsAlone(Results& res, const std::vector<std::vector<int32_t>>& alone,
                       const std::string& what) {
  ASSERT_TRUE(res.WaitAll()) << what;
  for (size_t i = 0; i < alone.size(); ++i) {
    const Outcome o = res.Get(i);
    EXPECT_TRUE(o.status.ok()) << what << " request " << i << ": " << o.status.ToString();
    EXPECT_EQ(o.tokens, alone[i]) << what << " request " << i;
  }
}

TEST_F(PrefixCacheTest, GreedyOutputsMatchASessionInEveryInterleaving) {
  const std::vector<GenerateRequest> reqs = ChatRequests();
  const std::vector<std::vector<int32_t>> alone = Alone(reqs);
  struct Interleaving {
    const char* name;
    int max_batch;
    int max_batch_tokens;
    bool prefix_caching;
    bool one_at_a_time;  // submit the next request when the previous one is done
    bool reverse;
  };
  const Interleaving cases[] = {
      {"all at once, small steps", 4, 16, true, false, false},
      {"all at once, reversed, large steps", 8, 64, true, false, true},
      {"one at a time", 4, 32, true, true, false},
      {"one at a time, cache off", 4, 32, false, true, false},
      {"all at once, cache off", 16, 24, false, false, false},
  };
  for (const Interleaving& c : cases) {
    SchedulerOptions so;
    so.max_batch = c.max_batch;
    so.max_batch_tokens = c.max_batch_tokens;
    so.prefix_caching = c.prefix_caching;
    BatchScheduler sched(model_, so);
    ASSERT_TRUE(sched.status().ok()) << sched.status().ToString();
    Results res(reqs.size());
    std::vector<size_t> order(reqs.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    if (c.reverse) std::reverse(order.begin(), order.end());
    for (size_t i : order) {
      ASSERT_TRUE(sched.Submit(reqs[i], res.OnToken(i), res.OnDone(i)).ok()) << c.name;
      if (c.one_at_a_time) {
        ASSERT_TRUE(res.Wait(i));
      }
    }
    ExpectSameAsAlone(res, alone, c.name);
    const SchedulerStats s = sched.stats();
    EXPECT_EQ(s.completed, reqs.size()) << c.name;
    EXPECT_EQ(s.kv_blocks_used, 0) << c.name;  // everything released
    if (!c.prefix_caching) {
      EXPECT_EQ(s.cached_prompt_tokens, 0u) << c.name;
      EXPECT_EQ(s.kv_blocks_cached, 0) << c.name;
    }
    if (c.one_at_a_time && c.prefix_caching) {
      // Each request reuses every whole block of its prompt that an earlier one computed.
      EXPECT_EQ(res.Get(1).stats.cached_tokens, 96);   // the system prompt's 6 whole blocks
      EXPECT_EQ(res.Get(6).stats.cached_tokens, 96);   // request 0's reply differs from its turn
      EXPECT_EQ(res.Get(8).stats.cached_tokens, 112);  // a duplicate of request 2 (118 tokens)
      // 128 tokens, all cached, but the last block is computed again for the last token's logits.
      EXPECT_EQ(res.Get(10).stats.cached_tokens, 112);
      EXPECT_EQ(res.Get(11).stats.cached_tokens, 0);
      EXPECT_GT(s.cached_prompt_tokens, s.prompt_tokens / 2);
    }
  }
}

TEST_F(PrefixCacheTest, PreemptionUnderASmallPoolKeepsEveryResult) {
  // Eight requests of 40-token prompts growing by 60 tokens: 7 blocks each at the end, 56 in all,
  // in a pool of 20 blocks. Admission fits several prompts; as they grow the pool runs out and
  // the most recent are preempted, then recomputed.
  std::vector<GenerateRequest> reqs;
  const std::vector<int32_t> shared = Tokens(32, 2);
  for (int i = 0; i < 8; ++i) {
    reqs.push_back(Greedy(i % 2 == 0 ? Concat(shared, Tokens(8, 40 + i)) : Tokens(40, 50 + i), 60));
  }
  const std::vector<std::vector<int32_t>> alone = Alone(reqs);
  for (bool caching : {true, false}) {
    SchedulerOptions so;
    so.max_batch = 8;
    so.max_batch_tokens = 32;
    so.kv_blocks = 20;
    so.prefix_caching = caching;
    BatchScheduler sched(model_, so);
    ASSERT_TRUE(sched.status().ok()) << sched.status().ToString();
    Results res(reqs.size());
    for (size_t i = 0; i < reqs.size(); ++i) {
      ASSERT_TRUE(sched.Submit(reqs[i], res.OnToken(i), res.OnDone(i)).ok());
    }
    const std::string what = caching ? "cache on" : "cache off";
    ExpectSameAsAlone(res, alone, what);
    const SchedulerStats s = sched.stats();
    EXPECT_GT(s.preemptions, 0u) << what;
    EXPECT_EQ(s.completed, reqs.size()) << what;
    EXPECT_EQ(s.kv_blocks_total, 20);
    EXPECT_EQ(s.kv_blocks_used, 0);
  }
}

TEST_F(PrefixCacheTest, RequestsThatCannotGrowFillThePoolWithNothingKeptBack) {
  // Ten distinct requests whose prompt + max_tokens is exactly 10 blocks: their blocks at
  // admission already cover every position they can reach, so nothing needs keeping back for
  // growth and all ten run at once in a pool of 100 blocks (the 1% kept for requests that can
  // grow would leave room for nine).
  std::vector<GenerateRequest> reqs;
  for (int i = 0; i < 10; ++i) reqs.push_back(Greedy(Tokens(10 * kBlock - 4, 60 + i), 4));
  SchedulerOptions so;
  so.max_batch = 16;
  so.max_batch_tokens = 16;  // prefill takes many steps: the ten stay admitted together
  so.kv_blocks = 100;
  so.prefix_caching = false;
  BatchScheduler sched(model_, so);
  ASSERT_TRUE(sched.status().ok()) << sched.status().ToString();
  Results res(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_TRUE(sched.Submit(reqs[i], res.OnToken(i), res.OnDone(i)).ok());
  }
  int most_active = 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (sched.stats().completed < reqs.size() && std::chrono::steady_clock::now() < end) {
    most_active = std::max(most_active, sched.stats().active);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  ASSERT_TRUE(res.WaitAll());
  EXPECT_EQ(most_active, 10);
  EXPECT_EQ(sched.stats().preemptions, 0u);
}

TEST_F(PrefixCacheTest, EvictionTakesTheLeastRecentlyUsedPrefixTail) {
  // A pool of 32 blocks. Two chats with 64-token system prompts p1 and p2 run one after the other
  // and leave their 4 prompt blocks cached (p1's released first, tail first); a 380-token request
  // then holds the 24 free blocks and needs one more as it generates, so one cached block is
  // evicted: the tail of p1. A new turn on p2 then reuses all of p2, one on p1 all but its tail.
  const std::vector<int32_t> p1 = Tokens(64, 3), p2 = Tokens(64, 4);
  std::vector<GenerateRequest> reqs = {
      Greedy(Concat(p1, Tokens(8, 60)), 8), Greedy(Concat(p2, Tokens(8, 61)), 8),
      Greedy(Tokens(380, 62), 20),          Greedy(Concat(p2, Tokens(8, 63)), 8),
      Greedy(Concat(p1, Tokens(8, 64)), 8),
  };
  const std::vector<std::vector<int32_t>> alone = Alone(reqs);
  SchedulerOptions so;
  so.max_batch = 4;
  so.kv_blocks = 32;
  BatchScheduler sched(model_, so);
  ASSERT_TRUE(sched.status().ok()) << sched.status().ToString();
  Results res(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_TRUE(sched.Submit(reqs[i], res.OnToken(i), res.OnDone(i)).ok());
    ASSERT_TRUE(res.Wait(i));
    if (i == 1) {
      EXPECT_EQ(sched.stats().kv_blocks_cached, 8);
      EXPECT_EQ(sched.stats().evictions, 0u);
    }
    if (i == 2) {
      EXPECT_EQ(sched.stats().evictions, 1u);
    }
  }
  ExpectSameAsAlone(res, alone, "eviction");
  EXPECT_EQ(res.Get(3).stats.cached_tokens, 64);  // p2 kept all of its blocks
  EXPECT_EQ(res.Get(4).stats.cached_tokens, 48);  // p1 lost its last block
}

TEST_F(PrefixCacheTest, AChatTurnReusesThePreviousReply) {
  // Blocks of generated tokens are published too: the next turn, whose prompt holds the first
  // turn's prompt and reply, reuses the blocks that the reply filled.
  const GenerateRequest first = Greedy(Concat(Tokens(40, 16), Tokens(10, 17)), 20);
  BatchScheduler sched(model_, SchedulerOptions{});
  Results res(2);
  ASSERT_TRUE(sched.Submit(first, res.OnToken(0), res.OnDone(0)).ok());
  ASSERT_TRUE(res.Wait(0));
  const std::vector<int32_t> reply = res.Get(0).tokens;
  ASSERT_EQ(reply.size(), 20u);
  // 50 prompt + 19 fed reply tokens computed: 4 whole blocks; the next prompt's first 64 tokens.
  const GenerateRequest second = Greedy(Concat(Concat(first.prompt, reply), Tokens(8, 18)), 6);
  ASSERT_TRUE(sched.Submit(second, res.OnToken(1), res.OnDone(1)).ok());
  ASSERT_TRUE(res.Wait(1));
  EXPECT_EQ(res.Get(1).stats.cached_tokens, 64);
  EXPECT_EQ(res.Get(1).tokens, Alone({second})[0]);
}

TEST_F(PrefixCacheTest, ConcurrentRequestsSharingAndExtendingPrefixes) {
  // Four threads submit chains of prompts that share and extend one another (S, S+a, S+a+b, ...),
  // with small random pauses, into a scheduler with a pool small enough to preempt and evict.
  std::vector<GenerateRequest> reqs;
  for (int chain = 0; chain < 4; ++chain) {
    std::vector<int32_t> p = Tokens(40 + 8 * chain, 5 + chain % 2);  // two chains share a start
    for (int turn = 0; turn < 5; ++turn) {
      p = Concat(p, Tokens(7 + 3 * turn, 100 + 10 * chain + turn));
      reqs.push_back(Greedy(p, 6 + turn));
    }
  }
  const std::vector<std::vector<int32_t>> alone = Alone(reqs);
  SchedulerOptions so;
  so.max_batch = 6;
  so.max_batch_tokens = 24;
  so.kv_blocks = 48;
  BatchScheduler sched(model_, so);
  ASSERT_TRUE(sched.status().ok()) << sched.status().ToString();
  Results res(reqs.size());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<uint32_t>(t));
      for (size_t i = static_cast<size_t>(t) * 5; i < static_cast<size_t>(t) * 5 + 5; ++i) {
        EXPECT_TRUE(sched.Submit(reqs[i], res.OnToken(i), res.OnDone(i)).ok());
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
      }
    });
  }
  for (std::thread& th : threads) th.join();
  ExpectSameAsAlone(res, alone, "concurrent");
  const SchedulerStats s = sched.stats();
  EXPECT_EQ(s.completed, reqs.size());
  EXPECT_GT(s.cached_prompt_tokens, 0u);
  EXPECT_EQ(s.kv_blocks_used, 0);
}

TEST_F(PrefixCacheTest, ARequestWaitsForAPrefixBeingComputedInsteadOfComputingItTwice) {
  // A blocker holds the worker in its token callback while A and B (the same 160-token system
  // prompt) are queued; once released, A computes the prefix in 32-token steps and B, admitted
  // after it, reuses all of it.
  const std::vector<int32_t> system = Tokens(160, 7);
  SchedulerOptions so;
  so.max_batch = 4;
  so.max_batch_tokens = 32;
  BatchScheduler sched(model_, so);
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  Results res(3);
  ASSERT_TRUE(sched
                  .Submit(
                      Greedy(Tokens(4, 8), 2),
                      [gate](int32_t) {
                        gate.wait();
                        return true;
                      },
                      res.OnDone(0))
                  .ok());
  while (sched.stats().active == 0) std::this_thread::yield();
  const std::vector<GenerateRequest> ab = {Greedy(Concat(system, Tokens(5, 9)), 4),
                                           Greedy(Concat(system, Tokens(6, 10)), 4)};
  ASSERT_TRUE(sched.Submit(ab[0], res.OnToken(1), res.OnDone(1)).ok());
  ASSERT_TRUE(sched.Submit(ab[1], res.OnToken(2), res.OnDone(2)).ok());
  release.set_value();
  ASSERT_TRUE(res.WaitAll());
  const std::vector<std::vector<int32_t>> alone = Alone(ab);
  EXPECT_EQ(res.Get(1).tokens, alone[0]);
  EXPECT_EQ(res.Get(2).tokens, alone[1]);
  EXPECT_EQ(res.Get(1).stats.cached_tokens, 0);
  EXPECT_EQ(res.Get(2).stats.cached_tokens, 160);
}

TEST_F(PrefixCacheTest, PrefixesAreSharedOnlyWithinAPartition) {
  const GenerateRequest base = Greedy(Concat(Tokens(64, 11), Tokens(5, 12)), 4);
  const auto with = [&](const std::string& partition) {
    GenerateRequest r = base;
    r.cache_partition = partition;
    return r;
  };
  const std::vector<GenerateRequest> reqs = {with("tenant-a"), with("tenant-a"), with("tenant-b"),
                                             with(""), with("tenant-b")};
  const std::vector<std::vector<int32_t>> alone = Alone(reqs);
  BatchScheduler sched(model_, SchedulerOptions{});
  Results res(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_TRUE(sched.Submit(reqs[i], res.OnToken(i), res.OnDone(i)).ok());
    ASSERT_TRUE(res.Wait(i));
  }
  ExpectSameAsAlone(res, alone, "partitions");
  EXPECT_EQ(res.Get(0).stats.cached_tokens, 0);
  EXPECT_EQ(res.Get(1).stats.cached_tokens, 64);  // same partition
  EXPECT_EQ(res.Get(2).stats.cached_tokens, 0);   // another tenant: nothing to time
  EXPECT_EQ(res.Get(3).stats.cached_tokens, 0);   // the deployment-wide partition is another
  EXPECT_EQ(res.Get(4).stats.cached_tokens, 64);
}

TEST_F(PrefixCacheTest, ABlockIsReusedOnlyAfterTheSameTokens) {
  // The same 16 tokens as the second block of two prompts whose first blocks differ: the second
  // prompt finds nothing to reuse (a block's keys and values depend on every token before it).
  const std::vector<int32_t> shared_block = Tokens(16, 19);
  const std::vector<GenerateRequest> reqs = {
      Greedy(Concat(Concat(Tokens(16, 20), shared_block), Tokens(5, 21)), 6),
      Greedy(Concat(Concat(Tokens(16, 22), shared_block), Tokens(5, 21)), 6),
      Greedy(Concat(Concat(Tokens(16, 20), shared_block), Tokens(7, 23)), 6)};
  const std::vector<std::vector<int32_t>> alone = Alone(reqs);
  BatchScheduler sched(model_, SchedulerOptions{});
  Results res(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_TRUE(sched.Submit(reqs[i], res.OnToken(i), res.OnDone(i)).ok());
    ASSERT_TRUE(res.Wait(i));
  }
  ExpectSameAsAlone(res, alone, "same block after another prefix");
  EXPECT_EQ(res.Get(1).stats.cached_tokens, 0);
  EXPECT_EQ(res.Get(2).stats.cached_tokens, 32);  // the same two blocks as the first
}

TEST_F(PrefixCacheTest, SchedulersDoNotShareTheirCaches) {
  const GenerateRequest req = Greedy(Concat(Tokens(64, 13), Tokens(5, 14)), 4);
  BatchScheduler a(model_, SchedulerOptions{}), b(model_, SchedulerOptions{});
  Results res(3);
  ASSERT_TRUE(a.Submit(req, nullptr, res.OnDone(0)).ok());
  ASSERT_TRUE(res.Wait(0));
  ASSERT_TRUE(b.Submit(req, nullptr, res.OnDone(1)).ok());
  ASSERT_TRUE(res.Wait(1));
  ASSERT_TRUE(a.Submit(req, nullptr, res.OnDone(2)).ok());
  ASSERT_TRUE(res.Wait(2));
  EXPECT_EQ(res.Get(1).stats.cached_tokens, 0);
  EXPECT_EQ(res.Get(2).stats.cached_tokens, 64);
}

TEST_F(PrefixCacheTest, ARequestLargerThanThePoolIsRefusedAtSubmit) {
  SchedulerOptions so;
  so.kv_blocks = 4;  // 64 positions
  BatchScheduler sched(model_, so);
  ASSERT_TRUE(sched.status().ok());
  auto refused = sched.Submit(Greedy(Tokens(50, 15), 20), nullptr, nullptr);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kOutOfRange);
  EXPECT_NE(refused.status().message().find("KV blocks"), std::string::npos)
      << refused.status().ToString();
  Results res(1);
  ASSERT_TRUE(sched.Submit(Greedy(Tokens(50, 15), 14), nullptr, res.OnDone(0)).ok());  // 64 fits
  ASSERT_TRUE(res.Wait(0));
  EXPECT_TRUE(res.Get(0).status.ok()) << res.Get(0).status.ToString();
  SchedulerOptions bad;
  bad.kv_blocks = -1;
  EXPECT_EQ(BatchScheduler(model_, bad).status().code(), StatusCode::kInvalidArgument);
  bad.kv_blocks = 0;
  bad.kv_block_tokens = 10;
  EXPECT_EQ(BatchScheduler(model_, bad).status().code(), StatusCode::kInvalidArgument);
}

// gemma2-tiny: even layers attend only the last 8 positions (a window that starts inside a
// block), odd layers every position, and scores are soft-capped. A cached block holds the keys
// and values of every layer, so a reused prefix serves the local layers (which read only its last
// positions) and the global ones (which read all of it) alike.
class SlidingWindowPrefixCacheTest : public PrefixCacheTest {
 protected:
  void SetUp() override {
    const std::optional<gguf::LlamaShape> shape = gguf::LlamaShapeByName("gemma2-tiny");
    ASSERT_TRUE(shape.has_value());
    ASSERT_GT(shape->sliding_window, 0);
    ASSERT_LT(shape->sliding_window, kBlock);
    Load(*shape);
  }
};

TEST_F(SlidingWindowPrefixCacheTest, OutputsAreTheSameWithAndWithoutTheCache) {
  const std::vector<GenerateRequest> reqs = ChatRequests();
  const std::vector<std::vector<int32_t>> alone = Alone(reqs);
  struct Case {
    const char* name;
    int max_batch;
    int max_batch_tokens;
    int kv_blocks;  // 0: the default pool
    bool prefix_caching;
    bool one_at_a_time;
  };
  const Case cases[] = {
      {"one at a time", 4, 32, 0, true, true},
      {"all at once", 8, 24, 0, true, false},
      {"all at once, cache off", 8, 24, 0, false, false},
      {"all at once, a pool of 24 blocks", 8, 24, 24, true, false},
  };
  for (const Case& c : cases) {
    SchedulerOptions so;
    so.max_batch = c.max_batch;
    so.max_batch_tokens = c.max_batch_tokens;
    so.kv_blocks = c.kv_blocks;
    so.prefix_caching = c.prefix_caching;
    BatchScheduler sched(model_, so);
    ASSERT_TRUE(sched.status().ok()) << sched.status().ToString();
    Results res(reqs.size());
    for (size_t i = 0; i < reqs.size(); ++i) {
      ASSERT_TRUE(sched.Submit(reqs[i], res.OnToken(i), res.OnDone(i)).ok()) << c.name;
      if (c.one_at_a_time) {
        ASSERT_TRUE(res.Wait(i));
      }
    }
    ExpectSameAsAlone(res, alone, c.name);
    const SchedulerStats s = sched.stats();
    EXPECT_EQ(s.completed, reqs.size()) << c.name;
    EXPECT_EQ(s.kv_blocks_used, 0) << c.name;
    if (!c.prefix_caching) {
      EXPECT_EQ(s.cached_prompt_tokens, 0u) << c.name;
    } else {
      EXPECT_GT(s.cached_prompt_tokens, 0u) << c.name;
    }
    if (c.one_at_a_time) {
      EXPECT_EQ(res.Get(1).stats.cached_tokens, 96);   // the system prompt's 6 whole blocks
      EXPECT_EQ(res.Get(7).stats.cached_tokens, 128);  // request 6's prompt, 8 whole blocks
      EXPECT_EQ(res.Get(8).stats.cached_tokens, 112);  // a duplicate of request 2 (118 tokens)
    }
  }
}

}  // namespace
}  // namespace sextant::serve
