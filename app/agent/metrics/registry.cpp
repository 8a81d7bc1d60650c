#include "app/agent/metrics/registry.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

namespace sextant::agent {

namespace {

void AtomicAdd(std::atomic<double>& a, double amount) {
  double cur = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(cur, cur + amount, std::memory_order_relaxed)) {
  }
}

std::string EscapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string_view TypeName(MetricType t) {
  switch (t) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// Writes `name{l1="v1",...,extra}` (braces omitted when there are no labels at all).
void AppendSeriesName(std::string& out, std::string_view name,
                      const std::vector<std::string>& label_names,
                      const std::vector<std::string>& values, std::string_view extra_label = {},
                      std::string_view extra_value = {}) {
  out += name;
  if (label_names.empty() && extra_label.empty()) return;
  out += '{';
  bool first = true;
  for (size_t i = 0; i < label_names.size(); ++i) {
    if (!first) out += ',';
    first = false;
    out += label_names[i];
    out += "=\"";
    out += EscapeLabelValue(i < values.size() ? values[i] : std::string());
    out += '"';
  }
  if (!extra_label.empty()) {
    if (!first) out += ',';
    out += extra_label;
    out += "=\"";
    out += EscapeLabelValue(extra_value);
    out += '"';
  }
  out += '}';
}

}  // namespace

void Counter::Inc(double amount) {
  if (!(amount >= 0)) return;  // also rejects NaN
  AtomicAdd(value_, amount);
}

void Gauge::Inc(double amount) { AtomicAdd(value_, amount); }

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_([&] {
        std::vector<double> b;
        for (double v : upper_bounds) {
          if (std::isfinite(v)) b.push_back(v);
        }
        std::sort(b.begin(), b.end());
        b.erase(std::unique(b.begin(), b.end()), b.end());
        return b;
      }()) {
  counts_.assign(bounds_.size() + 1, 0);
}

void Histogram::Observe(double v) {
  if (std::isnan(v)) return;
  const size_t bucket =
      static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  std::lock_guard<std::mutex> lock(mu_);
  ++counts_[bucket];
  sum_ += v;
  ++count_;
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.upper_bounds = bounds_;
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t running = 0;
  for (uint64_t c : counts_) {
    running += c;
    s.cumulative.push_back(running);
  }
  s.sum = sum_;
  s.count = count_;
  return s;
}

Registry::Entry* Registry::FindOrAdd(MetricType type, const std::string& name,
                                     const std::string& help,
                                     const std::vector<std::string>& label_names, bool* created) {
  *created = false;
  std::string error;
  if (!IsValidMetricName(name)) error = "invalid metric name '" + name + "'";
  for (const std::string& l : label_names) {
    if (!IsValidLabelName(l) || (type == MetricType::kHistogram && l == "le")) {
      error = "metric '" + name + "': invalid label name '" + l + "'";
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (error.empty()) {
    for (auto& e : entries_) {
      if (e->name != name) continue;
      if (e->type == type && e->label_names == label_names) return e.get();
      error = "metric '" + name + "' registered again with another type or other labels";
      break;
    }
  }
  auto entry = std::make_unique<Entry>();
  entry->type = type;
  entry->name = name;
  entry->help = help;
  entry->label_names = label_names;
  Entry* raw = entry.get();
  *created = true;
  if (error.empty()) {
    entries_.push_back(std::move(entry));
  } else {
    errors_.push_back(error);
    detached_.push_back(std::move(entry));
  }
  return raw;
}

Family<Counter>& Registry::AddCounter(const std::string& name, const std::string& help,
                                      const std::vector<std::string>& label_names) {
  bool created = false;
  Entry* e = FindOrAdd(MetricType::kCounter, name, help, label_names, &created);
  if (created) {
    e->counter.reset(
        new Family<Counter>(name, help, label_names, [] { return std::make_unique<Counter>(); }));
  }
  return *e->counter;
}

Family<Gauge>& Registry::AddGauge(const std::string& name, const std::string& help,
                                  const std::vector<std::string>& label_names) {
  bool created = false;
  Entry* e = FindOrAdd(MetricType::kGauge, name, help, label_names, &created);
  if (created) {
    e->gauge.reset(
        new Family<Gauge>(name, help, label_names, [] { return std::make_unique<Gauge>(); }));
  }
  return *e->gauge;
}

Family<Histogram>& Registry::AddHistogram(const std::string& name, const std::string& help,
                                          const std::vector<std::string>& label_names,
                                          std::vector<double> upper_bounds) {
  bool created = false;
  Entry* e = FindOrAdd(MetricType::kHistogram, name, help, label_names, &created);
  if (created) {
    e->histogram.reset(new Family<Histogram>(
        name, help, label_names,
        [bounds = std::move(upper_bounds)] { return std::make_unique<Histogram>(bounds); }));
  }
  return *e->histogram;
}

void Registry::AddCollectHook(std::function<void()> hook) {
  std::lock_guard<std::mutex> lock(mu_);
  hooks_.push_back(std::move(hook));
}

std::vector<std::string> Registry::registration_errors() const {
  std::lock_guard<std::mutex> lock(mu_);
  return errors_;
}

std::string Registry::RenderText() const {
  std::lock_guard<std::mutex> render_lock(render_mu_);
  std::vector<std::function<void()>> hooks;
  std::vector<Entry*> entries;
  {
    std::lock_guard<std::mutex> lock(mu_);
    hooks = hooks_;
    for (const auto& e : entries_) entries.push_back(e.get());
  }
  for (const auto& hook : hooks) hook();

  std::string out;
  for (const Entry* e : entries) {
    out += "# HELP ";
    out += e->name;
    out += ' ';
    out += EscapeHelp(e->help);
    out += "\n# TYPE ";
    out += e->name;
    out += ' ';
    out += TypeName(e->type);
    out += '\n';
    if (e->type == MetricType::kCounter || e->type == MetricType::kGauge) {
      std::vector<std::pair<std::vector<std::string>, double>> rows;
      if (e->counter) {
        std::lock_guard<std::mutex> lock(e->counter->mu_);
        for (const auto& [labels, c] : e->counter->series_) rows.emplace_back(labels, c->value());
      } else {
        std::lock_guard<std::mutex> lock(e->gauge->mu_);
        for (const auto& [labels, g] : e->gauge->series_) rows.emplace_back(labels, g->value());
      }
      for (const auto& [labels, value] : rows) {
        AppendSeriesName(out, e->name, e->label_names, labels);
        out += ' ';
        out += FormatValue(value);
        out += '\n';
      }
      continue;
    }
    std::vector<std::pair<std::vector<std::string>, Histogram::Snapshot>> rows;
    {
      std::lock_guard<std::mutex> lock(e->histogram->mu_);
      for (const auto& [labels, h] : e->histogram->series_)
        rows.emplace_back(labels, h->snapshot());
    }
    for (const auto& [labels, snap] : rows) {
      const std::string bucket = e->name + "_bucket";
      for (size_t i = 0; i <= snap.upper_bounds.size(); ++i) {
        const std::string le =
            i < snap.upper_bounds.size() ? FormatValue(snap.upper_bounds[i]) : "+Inf";
        AppendSeriesName(out, bucket, e->label_names, labels, "le", le);
        out += ' ';
        out += FormatValue(static_cast<double>(snap.cumulative[i]));
        out += '\n';
      }
      AppendSeriesName(out, e->name + "_sum", e->label_names, labels);
      out += ' ';
      out += FormatValue(snap.sum);
      out += '\n';
      AppendSeriesName(out, e->name + "_count", e->label_names, labels);
      out += ' ';
      out += FormatValue(static_cast<double>(snap.count));
      out += '\n';
    }
  }
  return out;
}

std::vector<double> LatencyBucketsSeconds() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

bool IsValidMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    const bool digit = c >= '0' && c <= '9';
    if (!(alpha || (i > 0 && digit))) return false;
  }
  return true;
}

bool IsValidLabelName(std::string_view name) {
  return IsValidMetricName(name) && name.find(':') == std::string_view::npos &&
         name.substr(0, 2) != "__";
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.0f", v);
    return buf;
  }
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  // Prefer the shortest text that reads back to the same double.
  for (int prec = 6; prec < 17; ++prec) {
    char shorter[40];
    std::snprintf(shorter, sizeof(shorter), "%.*g", prec, v);
    if (std::strtod(shorter, nullptr) == v) return shorter;
  }
  return buf;
}

// ---- Parsing ---------------------------------------------------------------------------------

std::string Sample::Label(std::string_view key) const {
  for (const auto& [k, v] : labels) {
    if (k == key) return v;
  }
  return {};
}

double ParsedExposition::Sum(std::string_view name,
                             const std::vector<std::pair<std::string, std::string>>& match) const {
  double total = 0;
  for (const Sample& s : samples) {
    if (s.name != name) continue;
    bool all = true;
    for (const auto& [k, v] : match) {
      if (s.Label(k) != v) all = false;
    }
    if (all) total += s.value;
  }
  return total;
}

bool ParsedExposition::Has(std::string_view name) const {
  for (const Sample& s : samples) {
    if (s.name == name) return true;
  }
  return false;
}

namespace {

bool ParseNumber(std::string_view text, double* out) {
  if (text == "NaN") {
    *out = std::nan("");
    return true;
  }
  if (text == "+Inf" || text == "Inf") {
    *out = HUGE_VAL;
    return true;
  }
  if (text == "-Inf") {
    *out = -HUGE_VAL;
    return true;
  }
  if (text.empty()) return false;
  const std::string s(text);
  char* end = nullptr;
  *out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && std::isfinite(*out);
}

size_t NameEnd(std::string_view line, size_t pos) {
  while (pos < line.size()) {
    const char c = line[pos];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                    (c >= '0' && c <= '9');
    if (!ok) break;
    ++pos;
  }
  return pos;
}

}  // namespace

Result<ParsedExposition> ParseText(std::string_view text) {
  ParsedExposition out;
  size_t line_no = 0;
  size_t start = 0;
  auto fail = [&](const std::string& why) {
    return Status::InvalidArgument("metrics text line " + std::to_string(line_no) + ": " + why);
  };
  if (!text.empty() && text.back() != '\n') {
    return Status::InvalidArgument("metrics text: the last line does not end with a newline");
  }
  std::set<std::string> sampled_families;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (line.empty()) continue;
    if (line[0] == '#') {
      if (line.substr(0, 7) == "# HELP " || line.substr(0, 7) == "# TYPE ") {
        const bool is_type = line[2] == 'T';
        const size_t name_end = NameEnd(line, 7);
        const std::string name(line.substr(7, name_end - 7));
        if (!IsValidMetricName(name)) return fail("invalid metric name in HELP/TYPE");
        if (name_end < line.size() && line[name_end] != ' ') {
          return fail("invalid character after metric name '" + name + "'");
        }
        const std::string rest(name_end < line.size() ? line.substr(name_end + 1) : "");
        if (is_type) {
          static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                                       "untyped"};
          if (!kTypes.count(rest)) return fail("unknown type '" + rest + "' for '" + name + "'");
          if (out.types.count(name)) return fail("second TYPE line for '" + name + "'");
          if (sampled_families.count(name)) {
            return fail("TYPE line for '" + name + "' after its samples");
          }
          out.types[name] = rest;
        } else {
          if (out.helps.count(name)) return fail("second HELP line for '" + name + "'");
          out.helps[name] = rest;
        }
      }
      continue;  // other comments are allowed
    }
    Sample s;
    size_t pos = NameEnd(line, 0);
    s.name = std::string(line.substr(0, pos));
    if (!IsValidMetricName(s.name)) return fail("invalid metric name");
    if (pos < line.size() && line[pos] == '{') {
      ++pos;
      while (true) {
        if (pos < line.size() && line[pos] == '}') {
          ++pos;
          break;
        }
        const size_t lend = NameEnd(line, pos);
        const std::string lname(line.substr(pos, lend - pos));
        if (!IsValidLabelName(lname) && lname != "__name__") {
          return fail("invalid label name at column " + std::to_string(pos + 1));
        }
        pos = lend;
        if (pos + 1 >= line.size() || line[pos] != '=' || line[pos + 1] != '"') {
          return fail("expected =\" after label '" + lname + "'");
        }
        pos += 2;
        std::string value;
        bool closed = false;
        while (pos < line.size()) {
          const char c = line[pos++];
          if (c == '"') {
            closed = true;
            break;
          }
          if (c == '\\') {
            if (pos >= line.size()) break;
            const char e = line[pos++];
            if (e == 'n') {
              value += '\n';
            } else if (e == '\\' || e == '"') {
              value += e;
            } else {
              return fail("invalid escape in value of label '" + lname + "'");
            }
          } else {
            value += c;
          }
        }
        if (!closed) return fail("unterminated value of label '" + lname + "'");
        for (const auto& [k, v] : s.labels) {
          if (k == lname) return fail("label '" + lname + "' repeated");
        }
        s.labels.emplace_back(lname, std::move(value));
        if (pos < line.size() && line[pos] == ',') {
          ++pos;
        } else if (pos >= line.size() || line[pos] != '}') {
          return fail("expected , or } after label '" + lname + "'");
        }
      }
    }
    if (pos >= line.size() || line[pos] != ' ') {
      return fail("expected a space and a value after '" + s.name + "'");
    }
    ++pos;
    std::string_view rest = line.substr(pos);
    const size_t sp = rest.find(' ');
    std::string_view value_text = rest.substr(0, sp);
    if (!ParseNumber(value_text, &s.value)) {
      return fail("invalid value '" + std::string(value_text) + "' for '" + s.name + "'");
    }
    if (sp != std::string_view::npos) {
      double ts = 0;
      if (!ParseNumber(rest.substr(sp + 1), &ts) || ts != std::floor(ts)) {
        return fail("invalid timestamp for '" + s.name + "'");
      }
    }
    // The sample's family: its own name, or the base of a histogram/summary series.
    std::string family = s.name;
    if (!out.types.count(family)) {
      for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
        if (s.name.size() > suffix.size() &&
            s.name.compare(s.name.size() - suffix.size(), suffix.size(), suffix) == 0) {
          const std::string base = s.name.substr(0, s.name.size() - suffix.size());
          auto it = out.types.find(base);
          if (it != out.types.end() && (it->second == "histogram" || it->second == "summary")) {
            family = base;
          }
        }
      }
    }
    auto type = out.types.find(family);
    if (type == out.types.end()) return fail("sample '" + s.name + "' has no TYPE line before it");
    if (type->second == "histogram" && s.name == family + "_bucket" && s.Label("le").empty()) {
      return fail("histogram bucket '" + s.name + "' without an le label");
    }
    if (type->second == "counter" && s.value < 0) {
      return fail("counter '" + s.name + "' is negative");
    }
    sampled_families.insert(family);
    out.samples.push_back(std::move(s));
  }
  return out;
}

}  // namespace sextant::agent
