#include "engine/serve/scheduler.h"

#include <algorithm>
#include <string>

#include "engine/tokenizer/tokenizer.h"

namespace sextant::serve {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace

struct BatchScheduler::Request {
  uint64_t id = 0;
  GenerateRequest req;
  TokenCallback on_token;
  DoneCallback on_done;
  Clock::time_point submitted;

  // Worker-thread state (no lock needed once admitted).
  int slot = -1;
  size_t prefilled = 0;     // prompt tokens already in the cache
  int32_t pos = 0;          // next position to write
  int32_t next_token = -1;  // sampled, not yet fed back
  int logit_row = -1;       // row of this step's logits, -1 when none
  bool cancelled = false;
  std::unique_ptr<sampling::Sampler> sampler;
  GenerateStats stats;
  Clock::time_point admitted, prefill_done, first_token, last_token;
};

BatchScheduler::BatchScheduler(std::shared_ptr<const model::Model> model, SchedulerOptions options)
    : model_(std::move(model)), options_(options) {
  if (options_.max_batch <= 0 || options_.max_queue < 0 || options_.max_batch_tokens <= 0) {
    status_ = Status::InvalidArgument(
        "scheduler: max_batch and max_batch_tokens must be > 0 and max_queue >= 0");
    return;
  }
  options_.max_batch_tokens = std::max(options_.max_batch_tokens, options_.max_batch);
  idle_slots_ = options_.max_batch;  // before the worker starts: no request holds a slot
  model::ContextOptions copts;
  copts.context_length = options_.context_length;
  copts.max_sequences = options_.max_batch;  // the default pool: a full context per slot
  copts.max_batch_tokens = options_.max_batch_tokens;
  copts.threads = options_.threads;
  Result<std::unique_ptr<model::ModelContext>> ctx = model_->NewContext(copts);
  if (!ctx.ok()) {
    status_ = ctx.status();
    return;
  }
  context_ = std::move(ctx).value();
  stats_.max_batch = options_.max_batch;
  stats_.kv_tokens_capacity = int64_t{options_.max_batch} * context_->context_length();
  worker_ = std::thread([this] { WorkerLoop(); });
}

BatchScheduler::~BatchScheduler() { Shutdown(std::chrono::milliseconds(0)); }

Status BatchScheduler::status() const { return status_; }

int BatchScheduler::context_length() const { return context_ ? context_->context_length() : 0; }

Result<uint64_t> BatchScheduler::Submit(GenerateRequest request, TokenCallback on_token,
                                        DoneCallback on_done) {
  SEXTANT_RETURN_IF_ERROR(status_);
  SEXTANT_RETURN_IF_ERROR(
      ValidateRequest(request, context_->vocab_size(), context_->context_length()));
  auto r = std::make_unique<Request>();
  r->req = std::move(request);
  r->on_token = std::move(on_token);
  r->on_done = std::move(on_done);
  r->submitted = Clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  if (!accepting_) return Status::Unavailable("scheduler: shutting down");
  // Requests waiting beyond the idle slots they are about to take must fit in max_queue.
  if (static_cast<int>(queue_.size()) >= options_.max_queue + idle_slots_) {
    return Status::ResourceExhausted("scheduler: the queue is full (" +
                                     std::to_string(options_.max_queue) + " requests waiting)");
  }
  r->id = next_id_++;
  const uint64_t id = r->id;
  queue_.push_back(std::move(r));
  stats_.queue_depth = static_cast<int>(queue_.size());
  cv_.notify_all();
  return id;
}

void BatchScheduler::Cancel(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_.push_back(id);
  cv_.notify_all();
}

SchedulerStats BatchScheduler::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void BatchScheduler::Shutdown(std::chrono::milliseconds grace) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!worker_.joinable()) return;
    accepting_ = false;
    const Clock::time_point deadline = Clock::now() + grace;
    if (!draining_ || deadline < deadline_) deadline_ = deadline;
    draining_ = true;
    cv_.notify_all();
  }
  worker_.join();
}

void BatchScheduler::WorkerLoop() {
  const int64_t vocab = context_->vocab_size();
  const int ctx_len = context_->context_length();
  const Tokenizer& tok = model_->tokenizer();
  std::vector<std::unique_ptr<Request>> active;  // at most max_batch
  std::vector<int> free_slots;
  for (int s = options_.max_batch - 1; s >= 0; --s) free_slots.push_back(s);
  std::vector<std::unique_ptr<Request>> finished;  // to report outside the lock
  std::vector<Status> finished_status;
  std::vector<model::BatchToken> batch(static_cast<size_t>(options_.max_batch_tokens));
  std::vector<std::vector<int32_t>> slot_blocks;  // slot -> its fixed blocks
  for (int s = 0; s < options_.max_batch; ++s) slot_blocks.push_back(context_->SequentialBlocks(s));
  std::vector<model::SequenceBlocks> seqs;
  std::vector<float> logits(static_cast<size_t>(options_.max_batch) * static_cast<size_t>(vocab));
  uint64_t completed = 0, generated_total = 0, steps = 0;

  const auto finish = [&](std::unique_ptr<Request> r, Status st) {
    if (r->slot >= 0) free_slots.push_back(r->slot);
    r->slot = -1;
    finished.push_back(std::move(r));
    finished_status.push_back(std::move(st));
  };
  // Publishes the counters, then calls on_done of the finished requests (outside the lock), so a
  // caller woken by on_done already sees them in stats().
  const auto report = [&] {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.queue_depth = static_cast<int>(queue_.size());
      stats_.active = static_cast<int>(active.size());
      idle_slots_ = static_cast<int>(free_slots.size());
      stats_.completed = completed + finished.size();
      stats_.generated_tokens = generated_total;
      stats_.steps = steps;
      int64_t used = 0;
      for (const auto& r : active) used += r->pos;
      stats_.kv_tokens_used = used;
      stats_.kv_use =
          stats_.kv_tokens_capacity > 0
              ? static_cast<double>(used) / static_cast<double>(stats_.kv_tokens_capacity)
              : 0.0;
    }
    for (size_t i = 0; i < finished.size(); ++i) {
      Request& r = *finished[i];
      if (r.on_done) {
        if (finished_status[i].ok()) {
          const Clock::time_point end = Clock::now();
          r.stats.total_ms = Ms(end - r.submitted);
          if (r.stats.generated_tokens > 1) {
            r.stats.decode_tps =
                (r.stats.generated_tokens - 1) / (Ms(r.last_token - r.first_token) / 1000.0);
          }
          r.on_done(r.stats);
        } else {
          r.on_done(finished_status[i]);
        }
      }
    }
    completed += finished.size();
    finished.clear();
    finished_status.clear();
  };

  for (;;) {
    bool exit_now = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      const auto has_work = [&] {
        return !cancelled_.empty() || !active.empty() || (!queue_.empty() && !free_slots.empty()) ||
               draining_;
      };
      if (draining_) {
        cv_.wait_until(lock, deadline_, has_work);
      } else {
        cv_.wait(lock, has_work);
      }
      // Cancellations, queued or running.
      for (uint64_t id : cancelled_) {
        auto q = std::find_if(queue_.begin(), queue_.end(),
                              [id](const std::unique_ptr<Request>& r) { return r->id == id; });
        if (q != queue_.end()) {
          finish(std::move(*q),
                 Status::Cancelled("request " + std::to_string(id) + " was cancelled"));
          queue_.erase(q);
          continue;
        }
        for (auto& r : active) {
          if (r->id == id) r->cancelled = true;
        }
      }
      cancelled_.clear();
      const bool past_deadline = draining_ && Clock::now() >= deadline_;
      if (past_deadline) {
        for (auto& r : queue_)
          finish(std::move(r), Status::Unavailable("scheduler: shutting down"));
        queue_.clear();
        for (auto& r : active)
          finish(std::move(r), Status::Unavailable("scheduler: shutting down"));
        active.clear();
        exit_now = true;
      }
      while (!exit_now && !free_slots.empty() && !queue_.empty()) {
        std::unique_ptr<Request> r = std::move(queue_.front());
        queue_.pop_front();
        r->slot = free_slots.back();
        free_slots.pop_back();
        r->admitted = Clock::now();
        r->sampler = std::make_unique<sampling::Sampler>(r->req.sampling, vocab);
        for (int32_t t : r->req.prompt) r->sampler->Accept(t);
        r->stats.prompt_tokens = static_cast<int>(r->req.prompt.size());
        active.push_back(std::move(r));
      }
      if (draining_ && queue_.empty() && active.empty()) exit_now = true;
      stats_.queue_depth = static_cast<int>(queue_.size());
      stats_.active = static_cast<int>(active.size());
      idle_slots_ = static_cast<int>(free_slots.size());
      stats_.completed = completed + finished.size();
      stats_.generated_tokens = generated_total;
      stats_.steps = steps;
      int64_t used = 0;
      for (const auto& r : active) used += r->pos;
      stats_.kv_tokens_used = used;
      stats_.kv_use =
          stats_.kv_tokens_capacity > 0
              ? static_cast<double>(used) / static_cast<double>(stats_.kv_tokens_capacity)
              : 0.0;
    }
    // Running requests that were cancelled.
    for (auto& r : active) {
      if (r->cancelled) {
        const uint64_t id = r->id;
        finish(std::move(r), Status::Cancelled("request " + std::to_string(id) + " was cancelled"));
      }
    }
    std::erase_if(active, [](const std::unique_ptr<Request>& r) { return r == nullptr; });
    report();
    if (exit_now) break;
    if (active.empty()) continue;

    // One step: decode tokens first (one per running request), then prompt chunks.
    size_t n = 0;
    int rows = 0;
    const size_t budget = batch.size();
    seqs.clear();
    for (auto& r : active) {
      seqs.push_back(model::SequenceBlocks{slot_blocks[static_cast<size_t>(r->slot)]});
    }
    for (size_t i = 0; i < active.size(); ++i) {
      Request* r = active[i].get();
      r->logit_row = -1;
      if (r->prefilled < r->req.prompt.size()) continue;
      batch[n++] = model::BatchToken{r->next_token, r->pos, static_cast<int32_t>(i), true};
      r->logit_row = rows++;
    }
    for (size_t a = 0; a < active.size(); ++a) {
      Request* r = active[a].get();
      const size_t left = r->req.prompt.size() - r->prefilled;
      if (left == 0 || n >= budget) continue;
      const size_t take = std::min(left, budget - n);
      for (size_t i = 0; i < take; ++i) {
        const bool last = r->prefilled + i + 1 == r->req.prompt.size();
        batch[n++] = model::BatchToken{r->req.prompt[r->prefilled + i],
                                       static_cast<int32_t>(r->prefilled + i),
                                       static_cast<int32_t>(a), last};
        if (last) r->logit_row = rows++;
      }
      r->prefilled += take;
      r->pos = static_cast<int32_t>(r->prefilled);
      if (r->logit_row >= 0) r->prefill_done = Clock::now();
    }
    Status st = context_->Forward(std::span(batch.data(), n), seqs, logits);
    ++steps;
    if (!st.ok()) {
      for (auto& r : active) finish(std::move(r), st);
      active.clear();
      report();
      continue;
    }
    const Clock::time_point now = Clock::now();
    for (auto& r : active) {
      if (r->logit_row < 0) continue;
      bool done = false;
      if (r->next_token >= 0) {  // the decode row just fed r->next_token back
        ++r->pos;
      } else {
        r->stats.prefill_tps =
            static_cast<double>(r->req.prompt.size()) / (Ms(now - r->admitted) / 1000.0);
      }
      if (r->stats.generated_tokens >= r->req.max_tokens) {
        done = true;
      } else {
        std::span<float> row(logits.data() + static_cast<size_t>(r->logit_row) * vocab,
                             static_cast<size_t>(vocab));
        const int32_t t = r->sampler->Sample(row);
        const Clock::time_point ts = Clock::now();
        if (r->stats.generated_tokens == 0) {
          r->first_token = ts;
          r->stats.ttft_ms = Ms(ts - r->submitted);
        }
        r->last_token = ts;
        if (r->req.stop_at_eos && tok.IsEog(t)) {
          done = true;
        } else {
          ++r->stats.generated_tokens;
          ++generated_total;
          const bool more = !r->on_token || r->on_token(t);
          if (!more || r->stats.generated_tokens >= r->req.max_tokens || r->pos >= ctx_len) {
            done = true;
          } else {
            r->sampler->Accept(t);
            r->next_token = t;
          }
        }
      }
      if (done) finish(std::move(r), Status::Ok());
    }
    std::erase_if(active, [](const std::unique_ptr<Request>& r) { return r == nullptr; });
    report();
  }
  report();
}

}  // namespace sextant::serve
