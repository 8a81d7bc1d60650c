// Choosing the next token from logits: greedy, temperature, top-k, top-p (nucleus), min-p and a
// repetition penalty over the last n tokens, driven by the project's own PRNG (xoshiro256**
// seeded through splitmix64) so a seed gives the same tokens on every platform and library
// version (no std:: distributions).
//
// Order of the steps (as llama.cpp's default chain): repetition penalty, then temperature 0 ->
// argmax (ties: lowest id); otherwise top-k, softmax, top-p, min-p, temperature, and a draw.
//
// Thread-safety: a Sampler is used by one thread at a time; distinct samplers are independent.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/base/status.h"

namespace sextant::sampling {

struct SamplingParams {
  float temperature = 0.8f;     // 0 = greedy (argmax)
  int top_k = 40;               // <= 0: off
  float top_p = 0.95f;          // 1: off
  float min_p = 0.05f;          // 0: off; keeps tokens with p >= min_p * p_max
  float repeat_penalty = 1.0f;  // 1: off; > 1 discourages tokens among the last repeat_last_n
  int repeat_last_n = 64;       // 0: off
  uint64_t seed = 0;
};

// INVALID_ARGUMENT naming the field: temperature < 0 or not finite, top_p outside (0, 1],
// min_p outside [0, 1], repeat_penalty <= 0, repeat_last_n < 0.
Status ValidateSamplingParams(const SamplingParams& params);

// xoshiro256** (Blackman and Vigna): small, fast, and the same sequence everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t Next();
  // Uniform in [0, 1) with 24 bits of precision.
  float NextFloat();

 private:
  uint64_t s_[4];
};

class Sampler {
 public:
  // REQUIRES: ValidateSamplingParams(params).ok(), vocab_size > 0. Scratch is allocated here,
  // never in Sample().
  Sampler(const SamplingParams& params, int64_t vocab_size);

  // Picks a token from `logits` (vocab_size floats; modified in place as scratch).
  int32_t Sample(std::span<float> logits);
  // Records a token of the sequence (prompt and generated) for the repetition penalty.
  void Accept(int32_t token);
  // Forgets the history and reseeds (a new sequence).
  void Reset();

  const SamplingParams& params() const { return params_; }

 private:
  struct Candidate {
    float logit;
    int32_t id;
  };
  void ApplyPenalty(std::span<float> logits);
  int32_t Greedy(std::span<const float> logits) const;

  SamplingParams params_;
  int64_t vocab_size_;
  Rng rng_;
  std::vector<int32_t> history_;  // ring of the last repeat_last_n tokens
  int64_t history_pos_ = 0;
  int64_t history_len_ = 0;
  std::vector<Candidate> candidates_;
  std::vector<uint8_t> seen_;  // vocab_size flags, reset after each penalty pass
};

}  // namespace sextant::sampling
