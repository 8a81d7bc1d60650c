// MetricsRegistry: a small Prometheus registry (counters, gauges, histograms with labels) that
// renders the text exposition format 0.0.4 served at the agent's GET /metrics.
//
// A family is registered once by name with its help text and label names; a series is one set
// of label values within it. Series are created on first use and live as long as the registry.
// Label values are escaped when rendered (\\, \", \n), so any value is safe; but a caller must
// never put request payload (prompt or output text) in a label: labels are read by whoever may
// scrape, which includes the vendor's control plane.
//
// Thread-safety: every method of every class here is safe to call from any thread. References
// returned by Family::WithLabels and Registry::Add* stay valid for the registry's lifetime.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/status.h"

namespace sextant::agent {

// A monotonically increasing value. Inc with a negative amount is ignored.
class Counter {
 public:
  void Inc(double amount = 1.0);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A value that goes up and down, or is set from a sample taken at scrape time.
class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Inc(double amount = 1.0);
  void Dec(double amount = 1.0) { Inc(-amount); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Cumulative histogram with fixed upper bounds (seconds, bytes ...); +Inf is implicit.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double v);

  struct Snapshot {
    std::vector<double> upper_bounds;  // without +Inf
    std::vector<uint64_t> cumulative;  // one per bound, then one for +Inf (== count)
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot snapshot() const;

 private:
  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // GUARDED_BY(mu_): per bucket (not cumulative), last is +Inf
  double sum_ = 0;                // GUARDED_BY(mu_)
  uint64_t count_ = 0;            // GUARDED_BY(mu_)
};

enum class MetricType { kCounter, kGauge, kHistogram };

// One metric name with its label names; holds one series per distinct tuple of label values.
template <typename T>
class Family {
 public:
  // Returns the series for these label values, creating it on first use.
  // REQUIRES: values.size() == label_names().size() (extra values are dropped, missing ones
  // are rendered empty; a programming error, not a crash).
  T& WithLabels(const std::vector<std::string>& values);
  // Stops rendering a series (a deleted deployment, a GPU that went away). The object stays
  // alive, so references held elsewhere remain valid; WithLabels later starts a fresh series.
  // No-op when absent.
  void Remove(const std::vector<std::string>& values);

  const std::string& name() const { return name_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

 private:
  friend class Registry;
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::function<std::unique_ptr<T>()> make)
      : name_(std::move(name)),
        help_(std::move(help)),
        label_names_(std::move(label_names)),
        make_(std::move(make)) {}
  std::vector<std::string> Normalize(const std::vector<std::string>& values) const;

  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
  const std::function<std::unique_ptr<T>()> make_;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<T>> series_;  // GUARDED_BY(mu_)
  std::vector<std::unique_ptr<T>> retired_;                        // GUARDED_BY(mu_)
};

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Registers a family, or returns the existing one of that name when its type and label
  // names agree. A name that is invalid, or reused with another type or other labels, is a
  // programming error: the call returns a detached family that is never rendered, and
  // registration_errors() says why.
  Family<Counter>& AddCounter(const std::string& name, const std::string& help,
                              const std::vector<std::string>& label_names);
  Family<Gauge>& AddGauge(const std::string& name, const std::string& help,
                          const std::vector<std::string>& label_names);
  Family<Histogram>& AddHistogram(const std::string& name, const std::string& help,
                                  const std::vector<std::string>& label_names,
                                  std::vector<double> upper_bounds);

  // A function run at the start of every RenderText, to sample values that live elsewhere
  // (queue depths, KV cache use, GPU readings) into gauges. Runs on the scraping thread.
  void AddCollectHook(std::function<void()> hook);

  // The whole registry in the Prometheus text format 0.0.4, families in registration order.
  std::string RenderText() const;

  std::vector<std::string> registration_errors() const;

 private:
  struct Entry {
    MetricType type;
    std::string name;
    std::string help;
    std::vector<std::string> label_names;
    std::unique_ptr<Family<Counter>> counter;
    std::unique_ptr<Family<Gauge>> gauge;
    std::unique_ptr<Family<Histogram>> histogram;
  };
  Entry* FindOrAdd(MetricType type, const std::string& name, const std::string& help,
                   const std::vector<std::string>& label_names, bool* created);

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Entry>> entries_;   // GUARDED_BY(mu_)
  std::vector<std::unique_ptr<Entry>> detached_;  // GUARDED_BY(mu_)
  std::vector<std::string> errors_;               // GUARDED_BY(mu_)
  std::vector<std::function<void()>> hooks_;      // GUARDED_BY(mu_)
  mutable std::mutex render_mu_;                  // one scrape at a time runs the hooks
};

// Bucket bounds for latencies in seconds: 1 ms .. 60 s, roughly x2.5 apart.
std::vector<double> LatencyBucketsSeconds();

// Metric and label names: [a-zA-Z_:][a-zA-Z0-9_:]* (labels without ':').
bool IsValidMetricName(std::string_view name);
bool IsValidLabelName(std::string_view name);

// Escapes a label value for the text format: backslash, double quote and newline.
std::string EscapeLabelValue(std::string_view value);

// A value as the text format writes it: integers without a fraction, NaN, +Inf, -Inf.
std::string FormatValue(double v);

// ---- Parsing (for scrapers and tests) -------------------------------------------------------

struct Sample {
  std::string name;                                         // e.g. "x_bucket"
  std::vector<std::pair<std::string, std::string>> labels;  // unescaped, in order
  double value = 0;
  std::string Label(std::string_view key) const;  // "" when absent
};

struct ParsedExposition {
  std::map<std::string, std::string> types;  // family name -> "counter", "gauge", ...
  std::map<std::string, std::string> helps;  // family name -> help text
  std::vector<Sample> samples;
  // Sum of the values of every sample with this name whose labels include all of `match`.
  double Sum(std::string_view name,
             const std::vector<std::pair<std::string, std::string>>& match = {}) const;
  bool Has(std::string_view name) const;
};

// Parses the Prometheus text format 0.0.4 strictly: every line is empty, a comment,
// "# HELP name text", "# TYPE name type", or "name{label="value",...} value [timestamp]".
// A sample's family must have been TYPE'd before its first sample. Errors name the line
// number and what is wrong.
Result<ParsedExposition> ParseText(std::string_view text);

// ---- Family implementation ------------------------------------------------------------------

template <typename T>
std::vector<std::string> Family<T>::Normalize(const std::vector<std::string>& values) const {
  std::vector<std::string> v(values.begin(),
                             values.begin() + std::min(values.size(), label_names_.size()));
  v.resize(label_names_.size());
  return v;
}

template <typename T>
T& Family<T>::WithLabels(const std::vector<std::string>& values) {
  std::vector<std::string> key = Normalize(values);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = series_.find(key);
  if (it == series_.end()) it = series_.emplace(std::move(key), make_()).first;
  return *it->second;
}

template <typename T>
void Family<T>::Remove(const std::vector<std::string>& values) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = series_.find(Normalize(values));
  if (it == series_.end()) return;
  retired_.push_back(std::move(it->second));
  series_.erase(it);
}

}  // namespace sextant::agent
