#include "app/common/validation_report.h"

#include <cmath>
#include <set>
#include <sstream>

#include "engine/base/sha256.h"

namespace sextant::report {
namespace {

double Finite(double v) { return std::isfinite(v) ? v : 0.0; }

std::string Fmt(double v) {
  std::ostringstream os;
  os.precision(4);
  os << v;
  return os.str();
}

// Strict field access for FromJson.
class Fields {
 public:
  Fields(const nlohmann::json& obj, std::string path) : obj_(obj), path_(std::move(path)) {}

  Status CheckExactly(std::initializer_list<const char*> names,
                      std::initializer_list<const char*> optional = {}) const {
    if (!obj_.is_object()) return Status::InvalidArgument(path_ + ": expected an object");
    std::set<std::string> known(names.begin(), names.end());
    known.insert(optional.begin(), optional.end());
    for (auto it = obj_.begin(); it != obj_.end(); ++it) {
      if (known.count(it.key()) == 0) {
        return Status::InvalidArgument(path_ + "." + it.key() + ": unknown field");
      }
    }
    for (const char* n : names) {
      if (!obj_.contains(n)) return Status::InvalidArgument(path_ + "." + n + ": missing");
    }
    return Status();
  }
  Status Str(const char* n, std::string& out) const {
    const auto& v = obj_.at(n);
    if (!v.is_string()) return Bad(n, "a string");
    out = v.get<std::string>();
    return Status();
  }
  Status Digest(const char* n, std::string& out) const {
    SEXTANT_RETURN_IF_ERROR(Str(n, out));
    if (!IsLowerHexDigest(out)) return Bad(n, "64 lowercase hex digits");
    return Status();
  }
  template <typename T>
  Status Int(const char* n, T& out) const {
    const auto& v = obj_.at(n);
    if (!v.is_number_integer()) return Bad(n, "an integer");
    out = v.get<T>();
    return Status();
  }
  Status Num(const char* n, double& out) const {
    const auto& v = obj_.at(n);
    if (!v.is_number()) return Bad(n, "a number");
    out = v.get<double>();
    return Status();
  }
  Status Bool(const char* n, bool& out) const {
    const auto& v = obj_.at(n);
    if (!v.is_boolean()) return Bad(n, "true or false");
    out = v.get<bool>();
    return Status();
  }

 private:
  Status Bad(const char* n, const char* what) const {
    return Status::InvalidArgument(path_ + "." + n + ": expected " + what);
  }
  const nlohmann::json& obj_;
  std::string path_;
};

}  // namespace

Result<std::string> CombineOutputDigests(std::span<const PromptResult> prompts) {
  std::vector<uint8_t> all;
  all.reserve(prompts.size() * 32);
  for (const auto& p : prompts) {
    if (!IsLowerHexDigest(p.output_digest)) {
      return Status::InvalidArgument("prompt " + std::to_string(p.index) +
                                     ": output digest is not a sha256 hex digest");
    }
    SEXTANT_ASSIGN_OR_RETURN(auto bytes, FromHex(p.output_digest));
    all.insert(all.end(), bytes.begin(), bytes.end());
  }
  return ToHex(Sha256Digest(all));
}

void EvaluateThresholds(ValidationReport& r) {
  r.worst_ttft_ms = 0;
  double decode_tokens = 0;
  double decode_seconds = 0;
  for (const auto& p : r.prompts) {
    r.worst_ttft_ms = std::max(r.worst_ttft_ms, Finite(p.ttft_ms));
    const int after_first = std::max(p.generated_tokens - 1, 0);
    if (after_first > 0 && p.tokens_per_second > 0) {
      decode_tokens += after_first;
      decode_seconds += after_first / p.tokens_per_second;
    }
  }
  r.tokens_per_second = decode_seconds > 0 ? decode_tokens / decode_seconds : 0;
  r.failures.clear();
  if (r.prompts.empty()) r.failures.push_back("no validation prompt was run");
  if (r.max_ttft_ms_threshold > 0 && r.worst_ttft_ms > r.max_ttft_ms_threshold) {
    r.failures.push_back("time to first token " + Fmt(r.worst_ttft_ms) + " ms exceeds " +
                         Fmt(r.max_ttft_ms_threshold) + " ms");
  }
  if (r.min_tokens_per_second_threshold > 0 &&
      r.tokens_per_second < r.min_tokens_per_second_threshold) {
    r.failures.push_back("decode rate " + Fmt(r.tokens_per_second) + " tokens/s is below " +
                         Fmt(r.min_tokens_per_second_threshold) + " tokens/s");
  }
  r.passed = r.failures.empty();
}

nlohmann::json ToJson(const ValidationReport& r) {
  using nlohmann::json;
  json prompts = json::array();
  for (const auto& p : r.prompts) {
    prompts.push_back({{"index", p.index},
                       {"outputDigest", p.output_digest},
                       {"promptTokens", p.prompt_tokens},
                       {"generatedTokens", p.generated_tokens},
                       {"stoppedAtEos", p.stopped_at_eos},
                       {"ttftMs", Finite(p.ttft_ms)},
                       {"interTokenMs", Finite(p.inter_token_ms)},
                       {"tokensPerSecond", Finite(p.tokens_per_second)}});
  }
  json out{{"format", kReportFormat},
           {"specName", r.spec_name},
           {"specDigest", r.spec_digest},
           {"modelUri", r.model_uri},
           {"modelSha256", r.model_sha256},
           {"engineBuildId", r.engine_build_id},
           {"backend", r.backend},
           {"device", r.device},
           {"threads", r.threads},
           {"createdAt", r.created_at},
           {"maxTokens", r.max_tokens},
           {"prompts", prompts},
           {"outputDigest", r.output_digest},
           {"peakMemoryBytes", r.peak_memory_bytes},
           {"thresholds",
            {{"maxTimeToFirstTokenMs", Finite(r.max_ttft_ms_threshold)},
             {"minTokensPerSecond", Finite(r.min_tokens_per_second_threshold)}}},
           {"worstTtftMs", Finite(r.worst_ttft_ms)},
           {"tokensPerSecond", Finite(r.tokens_per_second)},
           {"passed", r.passed},
           {"failures", r.failures}};
  if (r.carried_from) {
    out["carriedFrom"] = {{"specDigest", r.carried_from->spec_digest},
                          {"reportId", r.carried_from->report_id},
                          {"reportSha256", r.carried_from->report_sha256},
                          {"reason", r.carried_from->reason}};
  }
  return out;
}

Result<ValidationReport> FromJson(const nlohmann::json& j) {
  ValidationReport r;
  Fields f(j, "report");
  SEXTANT_RETURN_IF_ERROR(f.CheckExactly(
      {"format", "specName", "specDigest", "modelUri", "modelSha256", "engineBuildId", "backend",
       "device", "threads", "createdAt", "maxTokens", "prompts", "outputDigest", "peakMemoryBytes",
       "thresholds", "worstTtftMs", "tokensPerSecond", "passed", "failures"},
      {"carriedFrom"}));
  std::string format;
  SEXTANT_RETURN_IF_ERROR(f.Str("format", format));
  if (format != kReportFormat) {
    return Status::InvalidArgument("report.format: expected " + std::string(kReportFormat) +
                                   ", got " + format);
  }
  SEXTANT_RETURN_IF_ERROR(f.Str("specName", r.spec_name));
  SEXTANT_RETURN_IF_ERROR(f.Digest("specDigest", r.spec_digest));
  SEXTANT_RETURN_IF_ERROR(f.Str("modelUri", r.model_uri));
  SEXTANT_RETURN_IF_ERROR(f.Digest("modelSha256", r.model_sha256));
  SEXTANT_RETURN_IF_ERROR(f.Str("engineBuildId", r.engine_build_id));
  SEXTANT_RETURN_IF_ERROR(f.Str("backend", r.backend));
  SEXTANT_RETURN_IF_ERROR(f.Str("device", r.device));
  SEXTANT_RETURN_IF_ERROR(f.Int("threads", r.threads));
  SEXTANT_RETURN_IF_ERROR(f.Str("createdAt", r.created_at));
  SEXTANT_RETURN_IF_ERROR(f.Int("maxTokens", r.max_tokens));
  SEXTANT_RETURN_IF_ERROR(f.Digest("outputDigest", r.output_digest));
  SEXTANT_RETURN_IF_ERROR(f.Int("peakMemoryBytes", r.peak_memory_bytes));
  SEXTANT_RETURN_IF_ERROR(f.Num("worstTtftMs", r.worst_ttft_ms));
  SEXTANT_RETURN_IF_ERROR(f.Num("tokensPerSecond", r.tokens_per_second));
  SEXTANT_RETURN_IF_ERROR(f.Bool("passed", r.passed));
  Fields t(j.at("thresholds"), "report.thresholds");
  SEXTANT_RETURN_IF_ERROR(t.CheckExactly({"maxTimeToFirstTokenMs", "minTokensPerSecond"}));
  SEXTANT_RETURN_IF_ERROR(t.Num("maxTimeToFirstTokenMs", r.max_ttft_ms_threshold));
  SEXTANT_RETURN_IF_ERROR(t.Num("minTokensPerSecond", r.min_tokens_per_second_threshold));
  if (j.contains("carriedFrom")) {
    CarriedFrom c;
    Fields cf(j.at("carriedFrom"), "report.carriedFrom");
    SEXTANT_RETURN_IF_ERROR(cf.CheckExactly({"specDigest", "reportId", "reportSha256", "reason"}));
    SEXTANT_RETURN_IF_ERROR(cf.Digest("specDigest", c.spec_digest));
    SEXTANT_RETURN_IF_ERROR(cf.Int("reportId", c.report_id));
    SEXTANT_RETURN_IF_ERROR(cf.Digest("reportSha256", c.report_sha256));
    SEXTANT_RETURN_IF_ERROR(cf.Str("reason", c.reason));
    r.carried_from = std::move(c);
  }
  const auto& failures = j.at("failures");
  if (!failures.is_array()) return Status::InvalidArgument("report.failures: expected a list");
  for (const auto& x : failures) {
    if (!x.is_string()) return Status::InvalidArgument("report.failures: expected strings");
    r.failures.push_back(x.get<std::string>());
  }
  const auto& prompts = j.at("prompts");
  if (!prompts.is_array()) return Status::InvalidArgument("report.prompts: expected a list");
  for (size_t i = 0; i < prompts.size(); ++i) {
    PromptResult p;
    Fields pf(prompts[i], "report.prompts[" + std::to_string(i) + "]");
    SEXTANT_RETURN_IF_ERROR(
        pf.CheckExactly({"index", "outputDigest", "promptTokens", "generatedTokens", "stoppedAtEos",
                         "ttftMs", "interTokenMs", "tokensPerSecond"}));
    SEXTANT_RETURN_IF_ERROR(pf.Int("index", p.index));
    SEXTANT_RETURN_IF_ERROR(pf.Digest("outputDigest", p.output_digest));
    SEXTANT_RETURN_IF_ERROR(pf.Int("promptTokens", p.prompt_tokens));
    SEXTANT_RETURN_IF_ERROR(pf.Int("generatedTokens", p.generated_tokens));
    SEXTANT_RETURN_IF_ERROR(pf.Bool("stoppedAtEos", p.stopped_at_eos));
    SEXTANT_RETURN_IF_ERROR(pf.Num("ttftMs", p.ttft_ms));
    SEXTANT_RETURN_IF_ERROR(pf.Num("interTokenMs", p.inter_token_ms));
    SEXTANT_RETURN_IF_ERROR(pf.Num("tokensPerSecond", p.tokens_per_second));
    r.prompts.push_back(std::move(p));
  }
  return r;
}

std::string CanonicalJson(const ValidationReport& report) {
  return ToJson(report).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace sextant::report
