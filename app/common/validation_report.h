// ValidationReport: what a validation run of a deployment spec measured, in a form that can be
// signed, stored and compared: which spec (digest), which model (sha256), which engine build,
// backend and device, and per validation prompt the digest of the greedy output token ids with
// latency figures; pass/fail against the spec's thresholds.
//
// The canonical JSON form (sorted keys, no whitespace, numbers in their shortest round-trip
// form) is what is signed (report/signing.h); FromJson is strict and CanonicalJson(FromJson(x))
// reproduces the canonical text x exactly.
//
// Thread-safety: plain values and free functions.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/base/status.h"

namespace sextant::report {

inline constexpr std::string_view kReportFormat = "sextant.validation-report/v1";

struct PromptResult {
  int index = 0;              // position in the spec's validation.prompts
  std::string output_digest;  // sha256 of the output token ids as little-endian int32
  int prompt_tokens = 0;
  int generated_tokens = 0;
  bool stopped_at_eos = false;   // ended on an end-of-generation token before maxTokens
  double ttft_ms = 0;            // start of generation to the first output token
  double inter_token_ms = 0;     // mean time between consecutive output tokens
  double tokens_per_second = 0;  // decode rate: tokens after the first / their time
};

// Where a carried report's results were measured (report/carried_report.h): a passing report of
// another spec that differs from this report's spec only in scaling fields.
struct CarriedFrom {
  std::string spec_digest;    // the spec the results were measured on
  int64_t report_id = 0;      // that report's id in the console store
  std::string report_sha256;  // sha256 of that report's signed canonical JSON
  std::string reason;         // e.g. "spec differs only in scaling"
};

struct ValidationReport {
  std::string spec_name;
  std::string spec_digest;  // sha256 of the spec's canonical JSON
  std::string model_uri;
  std::string model_sha256;
  std::string engine_build_id;  // BuildInfo::BuildId()
  std::string backend;          // cpu, cuda, hip
  std::string device;           // e.g. "NVIDIA H200" or the CPU's model name
  int threads = 0;              // CPU threads used
  std::string created_at;       // RFC 3339 UTC, second precision
  int max_tokens = 0;           // per prompt, from the spec
  std::vector<PromptResult> prompts;
  // sha256 over the per-prompt output digests (32 raw bytes each, in prompt order): one value
  // that names the whole greedy output of the spec.
  std::string output_digest;
  int64_t peak_memory_bytes = 0;  // peak resident set size of the validating process
  // Thresholds from the spec (0: unchecked) and the figures checked against them.
  double max_ttft_ms_threshold = 0;
  double min_tokens_per_second_threshold = 0;
  double worst_ttft_ms = 0;
  double tokens_per_second = 0;  // decode tokens over all prompts / their decode time
  bool passed = false;
  std::vector<std::string> failures;  // why it did not pass, in words
  // Set on a carried report only; absent from the JSON otherwise, so a report measured here
  // has the same canonical bytes (and signature) as before this field existed.
  std::optional<CarriedFrom> carried_from;
};

// Combines per-prompt digests (64 hex each) into ValidationReport::output_digest.
// INVALID_ARGUMENT when one is not a sha256 hex digest.
Result<std::string> CombineOutputDigests(std::span<const PromptResult> prompts);

// Fills worst_ttft_ms, tokens_per_second, passed and failures from the prompts and thresholds.
void EvaluateThresholds(ValidationReport& report);

nlohmann::json ToJson(const ValidationReport& report);
// Strict: every field present with its type (carriedFrom only on a carried report), nothing
// else; INVALID_ARGUMENT naming the field.
Result<ValidationReport> FromJson(const nlohmann::json& json);
std::string CanonicalJson(const ValidationReport& report);

}  // namespace sextant::report
