#include "engine/serve/scheduler.h"

#include <algorithm>
#include <string>

#include "engine/tokenizer/tokenizer.h"

namespace sextant::serve {
namespace {

using Clock = std::chrono::steady_clock;
using Hash = KvBlockPool::Hash;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

size_t CeilDiv(size_t a, size_t b) { return (a + b - 1) / b; }

}  // namespace

struct BatchScheduler::Request {
  uint64_t id = 0;
  GenerateRequest req;
  TokenCallback on_token;
  DoneCallback on_done;
  Clock::time_point submitted;
  Hash root{};  // the cache partition's root hash

  // Worker-thread state.
  std::vector<int32_t> tokens;  // the prompt, then each generated token once delivered
  // tokens[0..computed) have their keys and values in `blocks`; the next forward pass feeds
  // tokens[computed..): a prompt chunk, or the one token sampled last (a decode step).
  size_t computed = 0;
  std::vector<int32_t> blocks;  // block table: the pool blocks held, in position order
  std::vector<Hash> hashes;     // chain hashes of the full blocks of `tokens` (computed lazily)
  size_t published = 0;         // blocks[0..published) are published or were reused
  std::vector<Hash> in_flight;  // hashes this request marked as being computed by it
  size_t planned = 0;           // tokens fed in this step
  int logit_row = -1;           // row of this step's logits, -1 when none
  bool cancelled = false;
  bool started = false;    // admitted at least once
  bool prefilled = false;  // its prompt's logits were computed once
  std::unique_ptr<sampling::Sampler> sampler;
  GenerateStats stats;
  Clock::time_point admitted, first_token, last_token;
};

BatchScheduler::BatchScheduler(std::shared_ptr<const model::Model> model, SchedulerOptions options)
    : model_(std::move(model)), options_(options) {
  if (options_.max_batch <= 0 || options_.max_queue < 0 || options_.max_batch_tokens <= 0 ||
      options_.kv_blocks < 0) {
    status_ = Status::InvalidArgument(
        "scheduler: max_batch and max_batch_tokens must be > 0, max_queue and kv_blocks >= 0");
    return;
  }
  options_.max_batch_tokens = std::max(options_.max_batch_tokens, options_.max_batch);
  idle_slots_ = options_.max_batch;  // before the worker starts: nothing is admitted
  model::ContextOptions copts;
  copts.context_length = options_.context_length;
  copts.max_sequences = options_.max_batch;
  copts.kv_block_tokens = options_.kv_block_tokens;
  copts.kv_blocks = options_.kv_blocks;  // 0: max_batch full contexts, the memory of fixed slots
  copts.max_batch_tokens = options_.max_batch_tokens;
  copts.threads = options_.threads;
  Result<std::unique_ptr<model::ModelContext>> ctx = model_->NewContext(copts);
  if (!ctx.ok()) {
    status_ = ctx.status();
    return;
  }
  context_ = std::move(ctx).value();
  pool_ = std::make_unique<KvBlockPool>(context_->kv_blocks(), context_->kv_block_tokens(),
                                        options_.prefix_caching);
  batch_.resize(static_cast<size_t>(options_.max_batch_tokens));
  logits_.resize(static_cast<size_t>(options_.max_batch) *
                 static_cast<size_t>(context_->vocab_size()));
  stats_.max_batch = options_.max_batch;
  stats_.kv_block_tokens = context_->kv_block_tokens();
  stats_.kv_blocks_total = context_->kv_blocks();
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
  // Alone, a request may hold every block; it must fit in them to finish.
  const size_t positions = request.prompt.size() + static_cast<size_t>(request.max_tokens);
  const size_t need = CeilDiv(positions, static_cast<size_t>(context_->kv_block_tokens()));
  if (need > static_cast<size_t>(context_->kv_blocks())) {
    return Status::OutOfRange("scheduler: prompt + max_tokens (" + std::to_string(positions) +
                              " positions) need " + std::to_string(need) +
                              " KV blocks; the pool holds " +
                              std::to_string(context_->kv_blocks()));
  }
  auto r = std::make_unique<Request>();
  r->req = std::move(request);
  r->on_token = std::move(on_token);
  r->on_done = std::move(on_done);
  r->submitted = Clock::now();
  r->root = KvBlockPool::PartitionRoot(r->req.cache_partition);
  r->tokens = r->req.prompt;
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

// ---- the worker ---------------------------------------------------------------------------------

void BatchScheduler::WorkerLoop() {
  for (;;) {
    const bool exit_now = WaitForWork();
    FinishCancelled();
    Report();
    if (exit_now) break;
    if (active_.empty()) continue;
    const size_t n = PlanStep();
    if (n == 0) continue;  // everything planned was preempted; admission comes first again
    const Status st = RunStep(n);
    if (!st.ok()) {
      for (RequestPtr& r : active_) Finish(std::move(r), st);
      active_.clear();
    } else {
      ApplyStep();
    }
    Report();
  }
  Report();
}

bool BatchScheduler::WaitForWork() {
  std::unique_lock<std::mutex> lock(mu_);
  const auto has_work = [&] {
    return !cancelled_.empty() || !active_.empty() || !queue_.empty() || draining_;
  };
  if (draining_) {
    cv_.wait_until(lock, deadline_, has_work);
  } else {
    cv_.wait(lock, has_work);
  }
  TakeCancellationsLocked();
  bool exit_now = false;
  if (draining_ && Clock::now() >= deadline_) {
    for (RequestPtr& r : queue_)
      Finish(std::move(r), Status::Unavailable("scheduler: shutting down"));
    queue_.clear();
    for (RequestPtr& r : active_) {
      Finish(std::move(r), Status::Unavailable("scheduler: shutting down"));
    }
    active_.clear();
    exit_now = true;
  } else {
    AdmitQueuedLocked();
  }
  if (draining_ && queue_.empty() && active_.empty()) exit_now = true;
  PublishStatsLocked();
  return exit_now;
}

void BatchScheduler::TakeCancellationsLocked() {
  for (uint64_t id : cancelled_) {
    auto q = std::find_if(queue_.begin(), queue_.end(),
                          [id](const RequestPtr& r) { return r->id == id; });
    if (q != queue_.end()) {
      Finish(std::move(*q), Status::Cancelled("request " + std::to_string(id) + " was cancelled"));
      queue_.erase(q);
      continue;
    }
    for (RequestPtr& r : active_) {
      if (r->id == id) r->cancelled = true;
    }
  }
  cancelled_.clear();
}

void BatchScheduler::AdmitQueuedLocked() {
  for (auto it = queue_.begin();
       it != queue_.end() && active_.size() < static_cast<size_t>(options_.max_batch);) {
    switch (TryAdmit(**it)) {
      case Admission::kAdmitted:
        active_.push_back(std::move(*it));
        it = queue_.erase(it);
        break;
      case Admission::kWaitForPrefix:  // others behind it may go first
        ++it;
        break;
      case Admission::kNoRoom:  // in order: a large request is not starved by small ones
        return;
    }
  }
}

BatchScheduler::Admission BatchScheduler::TryAdmit(Request& r) {
  const size_t bt = static_cast<size_t>(pool_->block_tokens());
  const size_t n = r.tokens.size();
  // The longest cached prefix of whole blocks, short of the last token (whose logits are needed).
  size_t matched = 0;
  int32_t matched_cached = 0;  // of those, blocks no request holds (they stop being available)
  if (pool_->prefix_caching()) {
    const size_t limit = (n - 1) / bt;
    for (; matched < limit; ++matched) {
      EnsureHashes(r, matched + 1);
      const int32_t b = pool_->Find(r.hashes[matched]);
      if (b < 0) break;
      if (pool_->ref(b) == 0) ++matched_cached;
    }
    if (matched < limit) {
      const uint64_t owner = pool_->InFlightOwner(r.hashes[matched]);
      if (owner != 0 && owner != r.id) return Admission::kWaitForPrefix;
    }
  }
  const int64_t need = static_cast<int64_t>(CeilDiv(n, bt) - matched);
  // Blocks that admitted requests will take for the tokens they have yet to compute are spoken
  // for; with others running, up to 1% of the pool is kept for the positions they (and this
  // request) may still grow by (fewer preemptions as they grow). Requests whose blocks already
  // cover prompt + max_tokens cannot grow: nothing is kept for them.
  auto growth = [&](const Request& q) {
    const size_t most = q.req.prompt.size() + static_cast<size_t>(q.req.max_tokens);
    const size_t have = CeilDiv(q.tokens.size(), bt);
    const size_t cap = CeilDiv(most, bt);
    return cap > have ? static_cast<int64_t>(cap - have) : int64_t{0};
  };
  int64_t committed = 0;
  int64_t may_grow = growth(r);
  for (const RequestPtr& a : active_) {
    committed += static_cast<int64_t>(CeilDiv(a->tokens.size(), bt)) -
                 static_cast<int64_t>(a->blocks.size());
    may_grow += growth(*a);
  }
  const int64_t reserve = active_.empty() ? 0 : std::min<int64_t>(pool_->blocks() / 100, may_grow);
  if (int64_t{pool_->available_blocks()} - matched_cached - committed < need + reserve) {
    return Admission::kNoRoom;
  }

  for (size_t i = 0; i < matched; ++i) r.blocks.push_back(pool_->Acquire(r.hashes[i]));
  r.published = matched;
  r.computed = matched * bt;
  if (pool_->prefix_caching()) {
    // Full blocks it is about to compute: a request that would reuse them waits for them.
    EnsureHashes(r, n / bt);
    for (size_t i = matched; i < n / bt; ++i) {
      if (pool_->InFlightOwner(r.hashes[i]) != 0 || pool_->Find(r.hashes[i]) >= 0) continue;
      pool_->MarkInFlight(r.hashes[i], r.id);
      r.in_flight.push_back(r.hashes[i]);
    }
  }
  if (!r.started) {
    r.started = true;
    r.admitted = Clock::now();
    r.stats.prompt_tokens = static_cast<int>(r.req.prompt.size());
    r.stats.cached_tokens = static_cast<int>(r.computed);
    prompt_tokens_ += r.req.prompt.size();
    cached_prompt_tokens_ += r.computed;
    r.sampler = std::make_unique<sampling::Sampler>(r.req.sampling, context_->vocab_size());
    for (int32_t t : r.req.prompt) r.sampler->Accept(t);
  }
  return Admission::kAdmitted;
}

void BatchScheduler::FinishCancelled() {
  for (RequestPtr& r : active_) {
    if (r->cancelled) {
      const uint64_t id = r->id;
      Finish(std::move(r), Status::Cancelled("request " + std::to_string(id) + " was cancelled"));
    }
  }
  std::erase_if(active_, [](const RequestPtr& r) { return r == nullptr; });
}

size_t BatchScheduler::PlanStep() {
  // Decode tokens first (one per generating request), then prompt chunks, within the budget.
  const size_t budget = batch_.size();
  size_t n = 0;
  for (RequestPtr& r : active_) {
    r->planned = 0;
    if (r->tokens.size() - r->computed == 1 && n < budget) {
      r->planned = 1;
      ++n;
    }
  }
  for (RequestPtr& r : active_) {
    const size_t left = r->tokens.size() - r->computed;
    if (left > 1 && n < budget) {
      r->planned = std::min(left, budget - n);
      n += r->planned;
    }
  }
  // Blocks for the planned positions, oldest request first. When the pool runs out, the most
  // recently admitted request (the last of active_) is preempted; the oldest always proceeds.
  const size_t bt = static_cast<size_t>(pool_->block_tokens());
  for (size_t i = 0; i < active_.size(); ++i) {
    Request& r = *active_[i];
    const size_t need = CeilDiv(r.computed + r.planned, bt);
    while (r.planned > 0 && r.blocks.size() < need) {
      const int32_t b = pool_->Allocate();
      if (b >= 0) {
        r.blocks.push_back(b);
        continue;
      }
      const size_t victim = active_.size() - 1;  // >= i: everything after i is newer
      Preempt(victim);
      if (victim == i) break;
    }
  }
  // The batch, from what survived.
  n = 0;
  int rows = 0;
  seqs_.clear();
  for (size_t i = 0; i < active_.size(); ++i) {
    Request& r = *active_[i];
    seqs_.push_back(model::SequenceBlocks{r.blocks});
    r.logit_row = -1;
    for (size_t k = 0; k < r.planned; ++k) {
      const size_t pos = r.computed + k;
      const bool last = pos + 1 == r.tokens.size();
      batch_[n++] = model::BatchToken{r.tokens[pos], static_cast<int32_t>(pos),
                                      static_cast<int32_t>(i), last};
      if (last) r.logit_row = rows++;
    }
  }
  return n;
}

void BatchScheduler::Preempt(size_t index) {
  RequestPtr r = std::move(active_[index]);
  active_.erase(active_.begin() + static_cast<std::ptrdiff_t>(index));
  ReleaseBlocks(*r);  // its published blocks stay cached: resuming mostly reuses them
  r->computed = 0;
  r->published = 0;
  r->planned = 0;
  r->logit_row = -1;
  ++preemptions_;
  std::lock_guard<std::mutex> lock(mu_);
  queue_.push_front(std::move(r));
}

Status BatchScheduler::RunStep(size_t n_tokens) {
  ++steps_;
  return context_->Forward(std::span(batch_.data(), n_tokens), seqs_, logits_);
}

void BatchScheduler::ApplyStep() {
  const int64_t vocab = context_->vocab_size();
  const size_t ctx_len = static_cast<size_t>(context_->context_length());
  const Tokenizer& tok = model_->tokenizer();
  for (RequestPtr& slot : active_) {
    Request& r = *slot;
    if (r.planned == 0) continue;
    r.computed += r.planned;
    r.planned = 0;
    PublishComputedBlocks(r);
    if (r.logit_row < 0) continue;  // mid-prompt
    if (!r.prefilled) {
      r.prefilled = true;
      r.stats.prefill_tps =
          static_cast<double>(r.req.prompt.size()) / (Ms(Clock::now() - r.admitted) / 1000.0);
    }
    bool done = false;
    if (r.stats.generated_tokens >= r.req.max_tokens) {
      done = true;
    } else {
      std::span<float> row(logits_.data() + static_cast<size_t>(r.logit_row) * vocab,
                           static_cast<size_t>(vocab));
      const int32_t t = r.sampler->Sample(row);
      const Clock::time_point ts = Clock::now();
      if (r.stats.generated_tokens == 0) {
        r.first_token = ts;
        r.stats.ttft_ms = Ms(ts - r.submitted);
      }
      r.last_token = ts;
      if (r.req.stop_at_eos && tok.IsEog(t)) {
        done = true;
      } else {
        ++r.stats.generated_tokens;
        ++generated_;
        const bool more = !r.on_token || r.on_token(t);
        if (!more || r.stats.generated_tokens >= r.req.max_tokens || r.computed >= ctx_len) {
          done = true;
        } else {
          r.sampler->Accept(t);
          r.tokens.push_back(t);
        }
      }
    }
    if (done) Finish(std::move(slot), Status::Ok());
  }
  std::erase_if(active_, [](const RequestPtr& r) { return r == nullptr; });
}

void BatchScheduler::Report() {
  // Publishes the counters, then calls on_done of the finished requests (outside the lock), so a
  // caller woken by on_done already sees them in stats().
  {
    std::lock_guard<std::mutex> lock(mu_);
    PublishStatsLocked();
  }
  for (size_t i = 0; i < finished_.size(); ++i) {
    Request& r = *finished_[i];
    if (!r.on_done) continue;
    if (finished_status_[i].ok()) {
      r.stats.total_ms = Ms(Clock::now() - r.submitted);
      if (r.stats.generated_tokens > 1) {
        r.stats.decode_tps =
            (r.stats.generated_tokens - 1) / (Ms(r.last_token - r.first_token) / 1000.0);
      }
      r.on_done(r.stats);
    } else {
      r.on_done(finished_status_[i]);
    }
  }
  completed_ += finished_.size();
  finished_.clear();
  finished_status_.clear();
}

void BatchScheduler::PublishStatsLocked() {
  stats_.queue_depth = static_cast<int>(queue_.size());
  stats_.active = static_cast<int>(active_.size());
  idle_slots_ = options_.max_batch - static_cast<int>(active_.size());
  stats_.kv_blocks_used = pool_->held_blocks();
  stats_.kv_blocks_cached = pool_->cached_blocks();
  stats_.kv_use = stats_.kv_blocks_total > 0 ? static_cast<double>(stats_.kv_blocks_used) /
                                                   static_cast<double>(stats_.kv_blocks_total)
                                             : 0.0;
  stats_.prompt_tokens = prompt_tokens_;
  stats_.cached_prompt_tokens = cached_prompt_tokens_;
  stats_.preemptions = preemptions_;
  stats_.evictions = pool_->evictions();
  stats_.completed = completed_ + finished_.size();
  stats_.generated_tokens = generated_;
  stats_.steps = steps_;
}

// ---- blocks and hashes --------------------------------------------------------------------------

void BatchScheduler::ReleaseBlocks(Request& r) {
  // Last to first: the tail of a prefix becomes the least recently released, evicted first.
  for (auto it = r.blocks.rbegin(); it != r.blocks.rend(); ++it) pool_->Release(*it);
  r.blocks.clear();
  for (const Hash& h : r.in_flight) pool_->ClearInFlight(h, r.id);
  r.in_flight.clear();
}

void BatchScheduler::EnsureHashes(Request& r, size_t n) const {
  const size_t bt = static_cast<size_t>(pool_->block_tokens());
  n = std::min(n, r.tokens.size() / bt);
  while (r.hashes.size() < n) {
    const size_t i = r.hashes.size();
    const Hash& parent = i == 0 ? r.root : r.hashes[i - 1];
    r.hashes.push_back(KvBlockPool::ChainHash(parent, std::span(r.tokens.data() + i * bt, bt)));
  }
}

void BatchScheduler::PublishComputedBlocks(Request& r) {
  if (!pool_->prefix_caching()) return;
  const size_t full = r.computed / static_cast<size_t>(pool_->block_tokens());
  EnsureHashes(r, full);
  for (; r.published < full; ++r.published) {
    // False when another request computed the same block first: this copy stays private.
    (void)pool_->Publish(r.blocks[r.published], r.hashes[r.published]);
    pool_->ClearInFlight(r.hashes[r.published], r.id);
  }
}

void BatchScheduler::Finish(RequestPtr r, Status st) {
  ReleaseBlocks(*r);
  finished_.push_back(std::move(r));
  finished_status_.push_back(std::move(st));
}

}  // namespace sextant::serve
