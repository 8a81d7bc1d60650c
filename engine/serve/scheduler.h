// Continuous batching of many concurrent generation requests on one model.
//
// A worker thread loops: it admits queued requests into free KV slots, builds one batch per step
// that mixes decode tokens of running requests (first, for latency) with chunks of the prompts
// of newly admitted ones (within max_batch_tokens), runs one forward pass, samples each request
// from its own logits row, delivers the tokens through the callbacks and retires finished
// requests, freeing their slots for the queue. Because every op computes rows independently
// (engine/backends/backend.h), a request's greedy output does not depend on what else is in
// the batch.
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
#include "engine/serve/session.h"

namespace sextant::serve {

struct SchedulerOptions {
  int max_batch = 16;          // requests generating at once (KV slots)
  int max_queue = 64;          // requests waiting for a slot; beyond: RESOURCE_EXHAUSTED
  int context_length = 0;      // positions per request; 0 = the model's default
  int max_batch_tokens = 256;  // tokens in one forward pass (prefill chunks + decodes)
  int threads = 0;             // 0 = the model's
};

struct SchedulerStats {
  int queue_depth = 0;  // waiting for a slot
  int active = 0;       // holding a slot
  int max_batch = 0;
  int64_t kv_tokens_used = 0;      // positions held by active requests
  int64_t kv_tokens_capacity = 0;  // max_batch * context_length
  double kv_use = 0;               // used / capacity
  uint64_t completed = 0;          // requests finished (any outcome)
  uint64_t generated_tokens = 0;   // since start
  uint64_t steps = 0;              // forward passes run
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
  // Session::Generate), OUT_OF_RANGE when prompt + max_tokens exceed the context length,
  // UNAVAILABLE after Shutdown().
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
  void WorkerLoop();

  std::shared_ptr<const model::Model> model_;
  SchedulerOptions options_;
  std::unique_ptr<model::ModelContext> context_;
  Status status_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Request>> queue_;  // guarded by mu_
  std::vector<uint64_t> cancelled_;             // guarded by mu_
  bool accepting_ = true;                       // guarded by mu_
  int idle_slots_ = 0;  // guarded by mu_: KV slots no request holds (as of the loop's last look)
  bool stop_ = false;   // guarded by mu_: cancel everything and exit
  std::chrono::steady_clock::time_point deadline_{};  // guarded by mu_: when stop_ takes effect
  bool draining_ = false;                             // guarded by mu_
  uint64_t next_id_ = 1;                              // guarded by mu_
  SchedulerStats stats_;                              // guarded by mu_
  std::thread worker_;
};

}  // namespace sextant::serve
