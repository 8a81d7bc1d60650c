#include "engine/serve/session.h"

#include <chrono>
#include <string>

#include "engine/tokenizer/tokenizer.h"

namespace sextant::serve {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace

Status ValidateRequest(const GenerateRequest& request, int64_t vocab_size, int context_length) {
  if (request.prompt.empty()) return Status::InvalidArgument("generate: the prompt is empty");
  for (size_t i = 0; i < request.prompt.size(); ++i) {
    const int32_t id = request.prompt[i];
    if (id < 0 || id >= vocab_size) {
      return Status::InvalidArgument("generate: prompt token " + std::to_string(i) + " (id " +
                                     std::to_string(id) + ") is outside the vocabulary of " +
                                     std::to_string(vocab_size));
    }
  }
  if (request.max_tokens < 0) {
    return Status::InvalidArgument("generate: max_tokens must be >= 0, got " +
                                   std::to_string(request.max_tokens));
  }
  SEXTANT_RETURN_IF_ERROR(sampling::ValidateSamplingParams(request.sampling));
  const int64_t need = static_cast<int64_t>(request.prompt.size()) + request.max_tokens;
  if (need > context_length) {
    return Status::OutOfRange("context overflow: prompt of " +
                              std::to_string(request.prompt.size()) + " tokens + max_tokens " +
                              std::to_string(request.max_tokens) + " exceed the context length " +
                              std::to_string(context_length));
  }
  return Status::Ok();
}

Session::Session(std::shared_ptr<const model::Model> model, int context_length)
    : model_(std::move(model)) {
  model::ContextOptions opts;
  opts.context_length = context_length;
  opts.max_sequences = 1;  // the default pool: one sequence's full context
  Result<std::unique_ptr<model::ModelContext>> ctx = model_->NewContext(opts);
  if (!ctx.ok()) {
    status_ = ctx.status();
    return;
  }
  context_ = std::move(ctx).value();
  batch_.resize(static_cast<size_t>(context_->context_length()));
  logits_.resize(static_cast<size_t>(context_->vocab_size()));
  blocks_ = context_->SequentialBlocks(0);
}

Session::~Session() = default;

int Session::context_length() const { return context_ ? context_->context_length() : 0; }

Result<GenerateStats> Session::Generate(const GenerateRequest& request,
                                        const TokenCallback& on_token) {
  SEXTANT_RETURN_IF_ERROR(status_);
  const int64_t vocab = context_->vocab_size();
  SEXTANT_RETURN_IF_ERROR(ValidateRequest(request, vocab, context_->context_length()));
  const Tokenizer& tok = model_->tokenizer();

  GenerateStats stats;
  stats.prompt_tokens = static_cast<int>(request.prompt.size());
  const Clock::time_point t0 = Clock::now();
  sampling::Sampler sampler(request.sampling, vocab);
  const size_t n_prompt = request.prompt.size();
  for (size_t i = 0; i < n_prompt; ++i) {
    batch_[i] = model::BatchToken{request.prompt[i], static_cast<int32_t>(i), 0, i + 1 == n_prompt};
    sampler.Accept(request.prompt[i]);
  }
  const model::SequenceBlocks seq{blocks_};
  SEXTANT_RETURN_IF_ERROR(
      context_->Forward(std::span(batch_.data(), n_prompt), std::span(&seq, 1), logits_));
  const Clock::time_point t_prefill = Clock::now();
  stats.prefill_tps = static_cast<double>(n_prompt) / (Ms(t_prefill - t0) / 1000.0);

  int32_t pos = static_cast<int32_t>(n_prompt);
  Clock::time_point t_first = t_prefill;
  Clock::time_point t_last = t_prefill;
  for (int i = 0; i < request.max_tokens; ++i) {
    const int32_t next = sampler.Sample(logits_);
    t_last = Clock::now();
    if (i == 0) {
      t_first = t_last;
      stats.ttft_ms = Ms(t_first - t0);
    }
    if (request.stop_at_eos && tok.IsEog(next)) break;
    ++stats.generated_tokens;
    if (on_token && !on_token(next)) break;
    if (i + 1 == request.max_tokens) break;
    sampler.Accept(next);
    const model::BatchToken step{next, pos++, 0, true};
    SEXTANT_RETURN_IF_ERROR(context_->Forward(std::span(&step, 1), std::span(&seq, 1), logits_));
  }
  const Clock::time_point t_end = Clock::now();
  stats.total_ms = Ms(t_end - t0);
  if (stats.generated_tokens > 1) {
    stats.decode_tps = (stats.generated_tokens - 1) / (Ms(t_last - t_first) / 1000.0);
  }
  return stats;
}

}  // namespace sextant::serve
