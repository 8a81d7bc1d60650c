#include "engine/sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace sextant::sampling {
namespace {

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

inline uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

Status ValidateSamplingParams(const SamplingParams& p) {
  if (!std::isfinite(p.temperature) || p.temperature < 0) {
    return Status::InvalidArgument("sampling: temperature must be >= 0, got " +
                                   std::to_string(p.temperature));
  }
  if (!(p.top_p > 0 && p.top_p <= 1)) {
    return Status::InvalidArgument("sampling: top_p must be in (0, 1], got " +
                                   std::to_string(p.top_p));
  }
  if (!(p.min_p >= 0 && p.min_p <= 1)) {
    return Status::InvalidArgument("sampling: min_p must be in [0, 1], got " +
                                   std::to_string(p.min_p));
  }
  if (!std::isfinite(p.repeat_penalty) || p.repeat_penalty <= 0) {
    return Status::InvalidArgument("sampling: repeat_penalty must be > 0, got " +
                                   std::to_string(p.repeat_penalty));
  }
  if (p.repeat_last_n < 0) {
    return Status::InvalidArgument("sampling: repeat_last_n must be >= 0, got " +
                                   std::to_string(p.repeat_last_n));
  }
  return Status::Ok();
}

Rng::Rng(uint64_t seed) {
  uint64_t state = seed;
  for (uint64_t& s : s_) s = SplitMix64(state);
}

uint64_t Rng::Next() {
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

float Rng::NextFloat() { return static_cast<float>(Next() >> 40) * (1.0f / 16777216.0f); }

Sampler::Sampler(const SamplingParams& params, int64_t vocab_size)
    : params_(params), vocab_size_(vocab_size), rng_(params.seed) {
  history_.assign(static_cast<size_t>(std::max(params_.repeat_last_n, 0)), 0);
  candidates_.reserve(static_cast<size_t>(vocab_size_));
  seen_.assign(static_cast<size_t>(vocab_size_), 0);
}

void Sampler::Reset() {
  rng_ = Rng(params_.seed);
  history_pos_ = 0;
  history_len_ = 0;
}

void Sampler::Accept(int32_t token) {
  if (history_.empty()) return;
  history_[static_cast<size_t>(history_pos_)] = token;
  history_pos_ = (history_pos_ + 1) % static_cast<int64_t>(history_.size());
  history_len_ = std::min<int64_t>(history_len_ + 1, static_cast<int64_t>(history_.size()));
}

void Sampler::ApplyPenalty(std::span<float> logits) {
  if (params_.repeat_penalty == 1.0f || history_len_ == 0) return;
  // Each distinct token is penalized once, however often it occurs (as llama.cpp).
  for (int64_t i = 0; i < history_len_; ++i) {
    const int32_t id = history_[static_cast<size_t>(i)];
    if (id < 0 || id >= vocab_size_ || seen_[static_cast<size_t>(id)]) continue;
    seen_[static_cast<size_t>(id)] = 1;
    float& l = logits[static_cast<size_t>(id)];
    l = l > 0 ? l / params_.repeat_penalty : l * params_.repeat_penalty;
  }
  for (int64_t i = 0; i < history_len_; ++i) {
    const int32_t id = history_[static_cast<size_t>(i)];
    if (id >= 0 && id < vocab_size_) seen_[static_cast<size_t>(id)] = 0;
  }
}

int32_t Sampler::Greedy(std::span<const float> logits) const {
  int32_t best = 0;
  for (int64_t i = 1; i < vocab_size_; ++i) {
    if (logits[static_cast<size_t>(i)] > logits[static_cast<size_t>(best)]) {
      best = static_cast<int32_t>(i);
    }
  }
  return best;
}

int32_t Sampler::Sample(std::span<float> logits) {
  ApplyPenalty(logits);
  if (params_.temperature <= 0) return Greedy(logits);

  // A total order (logit descending, then id) so the result never depends on sort stability.
  const auto before = [](const Candidate& a, const Candidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  };
  candidates_.clear();
  for (int64_t i = 0; i < vocab_size_; ++i) {
    const float l = logits[static_cast<size_t>(i)];
    if (!std::isnan(l)) candidates_.push_back({l, static_cast<int32_t>(i)});
  }
  if (candidates_.empty()) return Greedy(logits);
  size_t n = candidates_.size();
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < n) {
    n = static_cast<size_t>(params_.top_k);
    std::partial_sort(candidates_.begin(), candidates_.begin() + static_cast<std::ptrdiff_t>(n),
                      candidates_.end(), before);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), before);
  }

  // Probabilities of the survivors (before temperature), for top-p and min-p.
  const float max_logit = candidates_[0].logit;
  double sum = 0;
  for (size_t i = 0; i < n; ++i)
    sum += std::exp(static_cast<double>(candidates_[i].logit - max_logit));
  if (params_.top_p < 1.0f) {
    double cum = 0;
    size_t keep = n;
    for (size_t i = 0; i < n; ++i) {
      cum += std::exp(static_cast<double>(candidates_[i].logit - max_logit)) / sum;
      if (cum >= params_.top_p) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
  }
  if (params_.min_p > 0) {
    // p_i >= min_p * p_max  <=>  logit_i - max_logit >= log(min_p).
    const double floor = std::log(static_cast<double>(params_.min_p));
    size_t keep = 1;
    while (keep < n && static_cast<double>(candidates_[keep].logit - max_logit) >= floor) ++keep;
    n = keep;
  }

  // Temperature, then a draw.
  const double inv_t = 1.0 / static_cast<double>(params_.temperature);
  double total = 0;
  for (size_t i = 0; i < n; ++i) {
    total += std::exp(static_cast<double>(candidates_[i].logit - max_logit) * inv_t);
  }
  const double u = static_cast<double>(rng_.NextFloat()) * total;
  double cum = 0;
  for (size_t i = 0; i < n; ++i) {
    cum += std::exp(static_cast<double>(candidates_[i].logit - max_logit) * inv_t);
    if (u < cum) return candidates_[i].id;
  }
  return candidates_[n - 1].id;
}

}  // namespace sextant::sampling
