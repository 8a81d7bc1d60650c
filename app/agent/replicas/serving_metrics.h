// ServingMetrics: the per-deployment serving metrics of the agent, registered on a
// agent::Registry and rendered at GET /metrics. The HTTP front records requests, tokens and
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
//   sextant_kv_cache_blocks_cached{deployment}         gauge (cached prefix blocks that no
//                                                      request holds)
//   sextant_kv_cache_blocks_total{deployment}          gauge (KV blocks of the ready replicas)
//   sextant_replicas_ready{deployment}                 gauge
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

#include "app/agent/metrics/registry.h"

namespace sextant::agent {

class ServingMetrics {
 public:
  // The series of one deployment.
  struct Deployment {
    agent::Family<agent::Counter>* requests = nullptr;  // labels {deployment, code}
    std::string name;
    agent::Counter* prompt_tokens = nullptr;
    agent::Counter* generated_tokens = nullptr;
    agent::Counter* prefix_cache_queries = nullptr;
    agent::Counter* prefix_cache_hits = nullptr;
    agent::Histogram* ttft_seconds = nullptr;
    agent::Histogram* inter_token_seconds = nullptr;
    agent::Gauge* queue_depth = nullptr;
    agent::Gauge* active_requests = nullptr;
    agent::Gauge* kv_cache_usage = nullptr;
    agent::Gauge* kv_blocks_used = nullptr;
    agent::Gauge* kv_blocks_cached = nullptr;
    agent::Gauge* kv_blocks_total = nullptr;
    agent::Gauge* replicas_ready = nullptr;
    agent::Gauge* replicas_desired = nullptr;

    // Counts one finished HTTP request with its status code (200, 400, 429, 503 ...).
    void CountRequest(int http_code) const;
    // Total of requests_total over every code.
    double RequestsTotal() const;
    double RequestsWithCode(int http_code) const;

   private:
    friend class ServingMetrics;
    mutable std::mutex mu_;
    mutable std::map<int, agent::Counter*> by_code_;  // GUARDED_BY(mu_)
  };

  // Registers the families on `registry`, which must outlive this object.
  explicit ServingMetrics(agent::Registry& registry);

  // The series of `deployment`, created on first use.
  const Deployment& For(const std::string& deployment);
  // Stops rendering a deleted deployment's series.
  void Forget(const std::string& deployment);

  agent::Registry& registry() { return registry_; }

 private:
  agent::Registry& registry_;
  agent::Family<agent::Counter>& requests_;
  agent::Family<agent::Counter>& prompt_tokens_;
  agent::Family<agent::Counter>& generated_tokens_;
  agent::Family<agent::Counter>& prefix_queries_;
  agent::Family<agent::Counter>& prefix_hits_;
  agent::Family<agent::Histogram>& ttft_;
  agent::Family<agent::Histogram>& inter_token_;
  agent::Family<agent::Gauge>& queue_depth_;
  agent::Family<agent::Gauge>& active_;
  agent::Family<agent::Gauge>& kv_use_;
  agent::Family<agent::Gauge>& kv_blocks_used_;
  agent::Family<agent::Gauge>& kv_blocks_cached_;
  agent::Family<agent::Gauge>& kv_blocks_total_;
  agent::Family<agent::Gauge>& replicas_ready_;
  agent::Family<agent::Gauge>& replicas_desired_;

  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Deployment>> deployments_;  // GUARDED_BY(mu_)
  std::vector<std::unique_ptr<Deployment>> retired_;                // GUARDED_BY(mu_)
};

}  // namespace sextant::agent
