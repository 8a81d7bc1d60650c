// Generation on one model, one stream at a time: a Session owns a ModelContext whose KV pool holds
// one sequence's full context, in fixed blocks, and turns a prompt into tokens delivered through a
// callback as they are sampled.
//
// Each Generate() starts a fresh sequence at position 0. The prompt is prefilled in chunks of
// the context's batch size (matrix-matrix products), then tokens are decoded one at a time.
//
// Thread-safety: a Session is used by one thread at a time; several sessions may share a Model
// and run concurrently on different threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/base/status.h"
#include "engine/model/model.h"
#include "engine/sampling/sampler.h"

namespace sextant::serve {

using sampling::SamplingParams;

struct GenerateRequest {
  std::vector<int32_t> prompt;  // token ids, BOS included when wanted
  int max_tokens = 128;         // tokens to generate at most
  SamplingParams sampling;
  bool stop_at_eos = true;  // stop at an end-of-generation token (not delivered)
  // BatchScheduler: requests share cached prompt prefixes only within one partition (e.g. one
  // API key), so one tenant cannot time another's prompts; "" = shared within the deployment.
  std::string cache_partition;
};

struct GenerateStats {
  int prompt_tokens = 0;
  int generated_tokens = 0;
  int cached_tokens = 0;  // prompt tokens reused from the prefix cache (BatchScheduler)
  double ttft_ms = 0;     // start of Generate to the first token sampled
  double total_ms = 0;
  double prefill_tps = 0;  // prompt tokens / prefill time
  double decode_tps = 0;   // tokens after the first / their time
};

// Receives each generated token; returning false stops generation (not an error).
using TokenCallback = std::function<bool(int32_t token)>;

// Checks a request against a model's vocabulary and a context length (shared with
// BatchScheduler): INVALID_ARGUMENT or OUT_OF_RANGE as Session::Generate.
Status ValidateRequest(const GenerateRequest& request, int64_t vocab_size, int context_length);

class Session {
 public:
  // context_length 0 = the model's default. A context that cannot be made is reported by
  // Generate() (and status()).
  explicit Session(std::shared_ptr<const model::Model> model, int context_length = 0);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // OK when the session's context could be made.
  Status status() const { return status_; }
  int context_length() const;

  // Errors: INVALID_ARGUMENT (empty prompt, token id out of range, bad sampling params,
  // max_tokens < 0), OUT_OF_RANGE when prompt + max_tokens exceed the context length (checked
  // before any work), and errors of the forward pass.
  Result<GenerateStats> Generate(const GenerateRequest& request, const TokenCallback& on_token);

 private:
  std::shared_ptr<const model::Model> model_;
  std::unique_ptr<model::ModelContext> context_;
  Status status_;
  std::vector<model::BatchToken> batch_;  // sized once
  std::vector<float> logits_;             // vocab_size floats
  std::vector<int32_t> blocks_;           // the sequence's block table (the whole pool, in order)
};

}  // namespace sextant::serve
