// ServingMetrics: the per-deployment serving metrics of the agent, registered on a
// metrics::Registry and rendered at GET /metrics. The HTTP front records requests, tokens and
// latencies; the replica manager samples queue depth, KV cache use and replica counts at scrape
// time. Every series is labelled by deployment name only (plus the HTTP status code for
// requests): never by anything taken from a request's payload.
//
//   sextant_requests_total{deployment,code}            counter
//   sextant_prompt_tokens_total{deployment}            counter
//   sextant_generated_tokens_total{deployment}         counter
//   sextant_time_to_first_token_seconds{deployment}    histogram
//   sextant_inter_token_latency_seconds{deployment}    histogram
//   sextant_prefix_cache_queries_total{deployment}     counter (prompt tokens of finished
//                                                      requests looked up in the prefix cache)
//   sextant_prefix_cache_hits_total{deployment}        counter (of those, reused from the cache)
//   sextant_queue_depth{deployment}                    gauge (requests waiting for admission)
//   sextant_active_requests{deployment}                gauge (requests generating)
//   sextant_kv_cache_usage_ratio{deployment}           gauge (0..1, KV blocks held / blocks)
//   sextant_kv_cache_blocks_used{deployment}           gauge (KV blocks held by requests)
//   sextant_kv_cache_blocks_cached{deployment}         gauge (cached prefix blocks no request
//   holds) sextant_kv_cache_blocks_total{deployment}          gauge (KV blocks of the ready
//   replicas) sextant_replicas_ready{deployment}                 gauge
//   sextant_replicas_desired{deployment}               gauge
//
// Thread-safety: every method is safe from any thread; the references For() returns stay valid
// for the lifetime of the ServingMetrics.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "app/metrics/registry.h"

namespace sextant::replicas {

class ServingMetrics {
 public:
  // The series of one deployment.
  struct Deployment {
    metrics::Family<metrics::Counter>* requests = nullptr;  // labels {deployment, code}
    std::string name;
    metrics::Counter* prompt_tokens = nullptr;
    metrics::Counter* generated_tokens = nullptr;
    metrics::Counter* prefix_cache_queries = nullptr;
    metrics::Counter* prefix_cache_hits = nullptr;
    metrics::Histogram* ttft_seconds = nullptr;
    metrics::Histogram* inter_token_seconds = nullptr;
    metrics::Gauge* queue_depth = nullptr;
    metrics::Gauge* active_requests = nullptr;
    metrics::Gauge* kv_cache_usage = nullptr;
    metrics::Gauge* kv_blocks_used = nullptr;
    metrics::Gauge* kv_blocks_cached = nullptr;
    metrics::Gauge* kv_blocks_total = nullptr;
    metrics::Gauge* replicas_ready = nullptr;
    metrics::Gauge* replicas_desired = nullptr;

    // Counts one finished HTTP request with its status code (200, 400, 429, 503 ...).
    void CountRequest(int http_code) const;
    // Total of requests_total over every code.
    double RequestsTotal() const;
    double RequestsWithCode(int http_code) const;

   private:
    friend class ServingMetrics;
    mutable std::mutex mu_;
    mutable std::map<int, metrics::Counter*> by_code_;  // GUARDED_BY(mu_)
  };

  // Registers the families on `registry`, which must outlive this object.
  explicit ServingMetrics(metrics::Registry& registry);

  // The series of `deployment`, created on first use.
  const Deployment& For(const std::string& deployment);
  // Stops rendering a deleted deployment's series.
  void Forget(const std::string& deployment);

  metrics::Registry& registry() { return registry_; }

 private:
  metrics::Registry& registry_;
  metrics::Family<metrics::Counter>& requests_;
  metrics::Family<metrics::Counter>& prompt_tokens_;
  metrics::Family<metrics::Counter>& generated_tokens_;
  metrics::Family<metrics::Counter>& prefix_queries_;
  metrics::Family<metrics::Counter>& prefix_hits_;
  metrics::Family<metrics::Histogram>& ttft_;
  metrics::Family<metrics::Histogram>& inter_token_;
  metrics::Family<metrics::Gauge>& queue_depth_;
  metrics::Family<metrics::Gauge>& active_;
  metrics::Family<metrics::Gauge>& kv_use_;
  metrics::Family<metrics::Gauge>& kv_blocks_used_;
  metrics::Family<metrics::Gauge>& kv_blocks_cached_;
  metrics::Family<metrics::Gauge>& kv_blocks_total_;
  metrics::Family<metrics::Gauge>& replicas_ready_;
  metrics::Family<metrics::Gauge>& replicas_desired_;

  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Deployment>> deployments_;  // GUARDED_BY(mu_)
  std::vector<std::unique_ptr<Deployment>> retired_;                // GUARDED_BY(mu_)
};

}  // namespace sextant::replicas
