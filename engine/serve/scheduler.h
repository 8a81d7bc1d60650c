// Continuous batching of many concurrent generation requests on one model, over a paged KV cache
// with prefix caching.
//
// A worker thread loops over named steps:
//   WaitForWork  cancellations, the shutdown deadline, and admission: queued requests are admitted
//                in order while the KV pool has blocks for their uncached tokens (admission is by
//                free blocks, not slots); a request first reuses the longest prefix of its tokens
//                whose blocks are cached, and waits while a running request is still computing
//                the next block it would reuse, instead of computing it a second time;
//   PlanStep     one batch: a decode token per generating request, then chunks of prompts within
//                max_batch_tokens; blocks for the new positions are taken from the pool, and when
//                it runs out the most recently admitted request is preempted: it gives its blocks
//                back and returns to the front of the queue, to be recomputed (mostly from the
//                prefix cache) when blocks free up. An admitted request never fails for want of
//                blocks;
//   RunStep      one forward pass;
//   ApplyStep    publishes newly full blocks to the prefix cache, samples each request from its
//                own logits row, delivers the tokens and retires finished requests;
//   Report       publishes the counters, then calls on_done of finished requests.
// Because every op computes rows independently of the batch and of where their keys and values
// live (engine/backends/backend.h), a request's greedy output does not depend on what else is in
// the batch, on preemption, or on whether its prefix was reused.
//
// Isolation: prefixes are shared only within this scheduler, and only between requests of the
// same GenerateRequest::cache_partition.
//
// Callbacks run on the worker thread: they must return quickly and must not call Submit() or
// Shutdown() (Cancel() is allowed). on_done is called exactly once per accepted request.
//
// Thread-safety: all public methods are safe from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/base/status.h"
#include "engine/model/model.h"
#include "engine/serve/kv_block_pool.h"
#include "engine/serve/session.h"

namespace sextant::serve {

struct SchedulerOptions {
  int max_batch = 16;          // requests admitted at once (sequences of one forward pass)
  int max_queue = 64;          // requests waiting for admission; beyond: RESOURCE_EXHAUSTED
  int context_length = 0;      // positions per request; 0 = the model's default
  int max_batch_tokens = 256;  // tokens in one forward pass (prefill chunks + decodes)
  int threads = 0;             // 0 = the model's
  int kv_blocks = 0;           // KV pool blocks; 0 = max_batch full contexts
  int kv_block_tokens = 16;    // positions per KV block (a positive multiple of 8)
  bool prefix_caching = true;  // reuse cached prompt prefixes (within a cache partition)
};

struct SchedulerStats {
  int queue_depth = 0;  // waiting for admission (new, or preempted and waiting to resume)
  int active = 0;       // admitted: prefilling or generating
  int max_batch = 0;
  int kv_block_tokens = 0;
  int kv_blocks_total = 0;
  int kv_blocks_used = 0;             // held by admitted requests (a shared block counts once)
  int kv_blocks_cached = 0;           // cached prefixes no request holds (reused, or evicted LRU)
  double kv_use = 0;                  // kv_blocks_used / kv_blocks_total
  uint64_t prompt_tokens = 0;         // prompt tokens of admitted requests (at first admission)
  uint64_t cached_prompt_tokens = 0;  // of those, reused from the prefix cache
  uint64_t preemptions = 0;           // requests sent back to the queue when blocks ran out
  uint64_t evictions = 0;             // cached blocks taken for other contents
  uint64_t completed = 0;             // requests finished (any outcome)
  uint64_t generated_tokens = 0;      // since start
  uint64_t steps = 0;                 // forward passes run
};

using DoneCallback = std::function<void(Result<GenerateStats>)>;

class BatchScheduler {
 public:
  // Starts the worker. A context that cannot be made leaves the scheduler refusing every
  // Submit() with that error (see status()).
  BatchScheduler(std::shared_ptr<const model::Model> model, SchedulerOptions options);
  // Shutdown(0) when still running.
  ~BatchScheduler();
  BatchScheduler(const BatchScheduler&) = delete;
  BatchScheduler& operator=(const BatchScheduler&) = delete;

  Status status() const;
  int context_length() const;

  // Queues a request; returns its id. Errors (the callbacks are then never called):
  // RESOURCE_EXHAUSTED when the queue is full, INVALID_ARGUMENT for a bad request (as
  // Session::Generate), OUT_OF_RANGE when prompt + max_tokens exceed the context length or need
  // more KV blocks than the whole pool holds, UNAVAILABLE after Shutdown().
  Result<uint64_t> Submit(GenerateRequest request, TokenCallback on_token, DoneCallback on_done);

  // Stops a queued or running request; its on_done receives CANCELLED. Unknown or finished ids
  // are ignored.
  void Cancel(uint64_t id);

  SchedulerStats stats() const;

  // Stops admitting, lets running and queued requests finish for up to `grace`, then cancels
  // the rest (on_done: UNAVAILABLE "shutting down") and joins the worker. Idempotent.
  void Shutdown(std::chrono::milliseconds grace);

 private:
  struct Request;
  using RequestPtr = std::unique_ptr<Request>;
  enum class Admission { kAdmitted, kWaitForPrefix, kNoRoom };

  void WorkerLoop();
  // The steps of one loop turn (see the file comment). WaitForWork returns true to exit.
  bool WaitForWork();
  size_t PlanStep();
  Status RunStep(size_t n_tokens);
  void ApplyStep();
  void Report();

  void TakeCancellationsLocked();
  void AdmitQueuedLocked();
  Admission TryAdmit(Request& r);
  void FinishCancelled();
  void Preempt(size_t index);
  // Hands r's blocks back to the pool (last to first) and drops its in-flight marks.
  void ReleaseBlocks(Request& r);
  // Chain hashes of r's first `n` full blocks (fewer when its tokens do not fill them).
  void EnsureHashes(Request& r, size_t n) const;
  void PublishComputedBlocks(Request& r);
  void Finish(RequestPtr r, Status st);
  void PublishStatsLocked();

  std::shared_ptr<const model::Model> model_;
  SchedulerOptions options_;
  std::unique_ptr<model::ModelContext> context_;
  Status status_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<RequestPtr> queue_;     // guarded by mu_
  std::vector<uint64_t> cancelled_;  // guarded by mu_
  bool accepting_ = true;            // guarded by mu_
  int idle_slots_ = 0;  // guarded by mu_: max_batch - admitted (as of the loop's last look)
  // guarded by mu_: while draining_, when what is still queued or running is cancelled
  std::chrono::steady_clock::time_point deadline_{};
  bool draining_ = false;  // guarded by mu_
  uint64_t next_id_ = 1;   // guarded by mu_
  SchedulerStats stats_;   // guarded by mu_
  std::thread worker_;

  // Worker-thread state (read under mu_ by PublishStatsLocked, which the worker calls).
  std::unique_ptr<KvBlockPool> pool_;
  std::vector<RequestPtr> active_;    // admitted requests, in admission order (oldest first)
  std::vector<RequestPtr> finished_;  // to report outside the lock
  std::vector<Status> finished_status_;
  std::vector<model::BatchToken> batch_;
  std::vector<model::SequenceBlocks> seqs_;  // one per active request, in order
  std::vector<float> logits_;
  uint64_t completed_ = 0, generated_ = 0, steps_ = 0, preemptions_ = 0;
  uint64_t prompt_tokens_ = 0, cached_prompt_tokens_ = 0;
};

}  // namespace sextant::serve
