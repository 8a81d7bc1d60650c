#include "app/agent/replicas/serving_metrics.h"

namespace sextant::agent {

void ServingMetrics::Deployment::CountRequest(int http_code) const {
  agent::Counter* c = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = by_code_.find(http_code);
    if (it == by_code_.end()) {
      it = by_code_.emplace(http_code, &requests->WithLabels({name, std::to_string(http_code)}))
               .first;
    }
    c = it->second;
  }
  c->Inc();
}

double ServingMetrics::Deployment::RequestsTotal() const {
  std::lock_guard<std::mutex> lock(mu_);
  double total = 0;
  for (const auto& [code, c] : by_code_) total += c->value();
  return total;
}

double ServingMetrics::Deployment::RequestsWithCode(int http_code) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_code_.find(http_code);
  return it == by_code_.end() ? 0 : it->second->value();
}

ServingMetrics::ServingMetrics(agent::Registry& registry)
    : registry_(registry),
      requests_(registry.AddCounter("sextant_requests_total",
                                    "Inference API requests finished, by HTTP status code.",
                                    {"deployment", "code"})),
      prompt_tokens_(registry.AddCounter("sextant_prompt_tokens_total",
                                         "Prompt tokens of accepted requests.", {"deployment"})),
      generated_tokens_(registry.AddCounter("sextant_generated_tokens_total", "Tokens generated.",
                                            {"deployment"})),
      prefix_queries_(registry.AddCounter(
          "sextant_prefix_cache_queries_total",
          "Prompt tokens of finished requests looked up in the prefix cache.", {"deployment"})),
      prefix_hits_(registry.AddCounter(
          "sextant_prefix_cache_hits_total",
          "Prompt tokens of finished requests whose KV cache was reused from the prefix cache.",
          {"deployment"})),
      ttft_(registry.AddHistogram("sextant_time_to_first_token_seconds",
                                  "Time from request arrival to the first generated token.",
                                  {"deployment"}, agent::LatencyBucketsSeconds())),
      inter_token_(registry.AddHistogram("sextant_inter_token_latency_seconds",
                                         "Time between consecutive generated tokens of a request.",
                                         {"deployment"}, agent::LatencyBucketsSeconds())),
      queue_depth_(registry.AddGauge("sextant_queue_depth",
                                     "Requests waiting for admission (KV cache blocks).",
                                     {"deployment"})),
      active_(registry.AddGauge("sextant_active_requests", "Requests generating.", {"deployment"})),
      kv_use_(registry.AddGauge("sextant_kv_cache_usage_ratio",
                                "KV cache blocks held by requests over all blocks (0..1).",
                                {"deployment"})),
      kv_blocks_used_(registry.AddGauge("sextant_kv_cache_blocks_used",
                                        "KV cache blocks held by requests.", {"deployment"})),
      kv_blocks_cached_(registry.AddGauge(
          "sextant_kv_cache_blocks_cached",
          "KV cache blocks of cached prefixes that no request holds (reused or evicted).",
          {"deployment"})),
      kv_blocks_total_(registry.AddGauge("sextant_kv_cache_blocks_total",
                                         "KV cache blocks of the ready replicas.", {"deployment"})),
      replicas_ready_(
          registry.AddGauge("sextant_replicas_ready", "Replicas serving.", {"deployment"})),
      replicas_desired_(registry.AddGauge("sextant_replicas_desired",
                                          "Replicas the deployment asks for.", {"deployment"})) {}

const ServingMetrics::Deployment& ServingMetrics::For(const std::string& deployment) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = deployments_.find(deployment);
  if (it != deployments_.end()) return *it->second;
  auto d = std::make_unique<Deployment>();
  d->requests = &requests_;
  d->name = deployment;
  d->prompt_tokens = &prompt_tokens_.WithLabels({deployment});
  d->generated_tokens = &generated_tokens_.WithLabels({deployment});
  d->prefix_cache_queries = &prefix_queries_.WithLabels({deployment});
  d->prefix_cache_hits = &prefix_hits_.WithLabels({deployment});
  d->ttft_seconds = &ttft_.WithLabels({deployment});
  d->inter_token_seconds = &inter_token_.WithLabels({deployment});
  d->queue_depth = &queue_depth_.WithLabels({deployment});
  d->active_requests = &active_.WithLabels({deployment});
  d->kv_cache_usage = &kv_use_.WithLabels({deployment});
  d->kv_blocks_used = &kv_blocks_used_.WithLabels({deployment});
  d->kv_blocks_cached = &kv_blocks_cached_.WithLabels({deployment});
  d->kv_blocks_total = &kv_blocks_total_.WithLabels({deployment});
  d->replicas_ready = &replicas_ready_.WithLabels({deployment});
  d->replicas_desired = &replicas_desired_.WithLabels({deployment});
  return *deployments_.emplace(deployment, std::move(d)).first->second;
}

void ServingMetrics::Forget(const std::string& deployment) {
  std::unique_ptr<Deployment> gone;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = deployments_.find(deployment);
    if (it == deployments_.end()) return;
    gone = std::move(it->second);
    deployments_.erase(it);
  }
  {
    std::lock_guard<std::mutex> lock(gone->mu_);
    for (const auto& [code, c] : gone->by_code_) {
      requests_.Remove({deployment, std::to_string(code)});
    }
  }
  for (auto* fam : {&prompt_tokens_, &generated_tokens_, &prefix_queries_, &prefix_hits_}) {
    fam->Remove({deployment});
  }
  ttft_.Remove({deployment});
  inter_token_.Remove({deployment});
  for (auto* fam : {&queue_depth_, &active_, &kv_use_, &kv_blocks_used_, &kv_blocks_cached_,
                    &kv_blocks_total_, &replicas_ready_, &replicas_desired_}) {
    fam->Remove({deployment});
  }
  // References handed out earlier stay valid: the registry keeps removed series alive; keep the
  // Deployment too, since callers may hold a reference to it.
  std::lock_guard<std::mutex> lock(mu_);
  retired_.push_back(std::move(gone));
}

}  // namespace sextant::agent
