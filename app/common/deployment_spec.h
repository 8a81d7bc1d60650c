// DeploymentSpec: what a deployment is (apiVersion sextant/v1, kind Deployment), parsed strictly
// from YAML, and its canonical JSON form whose sha256 is the spec digest. The same digest names
// the deployment on the workstation that validated it and on every target it is pushed to.
//
// Parsing is strict: an unknown field, a duplicate key, a wrong type, a missing required field
// or a value out of range is an error naming the field with its line and column. Every error
// of a file is reported, not only the first.
//
// Canonical form (docs/deployment-spec.md): every field present with its default made explicit,
// object keys sorted, no insignificant whitespace, numbers from their typed values (so `0.80`,
// `8e-1` and `0.8` agree), sha256 hex lowercase, allowedRegions sorted, durations in seconds.
// Formatting, comments, key order and omitted-versus-explicit defaults do not change the digest;
// any change of a value does.
//
// Thread-safety: free functions of their arguments; DeploymentSpec is a plain value.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/base/status.h"
#include "engine/chat/chat_template.h"

namespace sextant::spec {

inline constexpr std::string_view kApiVersion = "sextant/v1";
inline constexpr std::string_view kKind = "Deployment";

struct ModelRef {
  std::string uri;     // in the target's own store: file://PATH, s3://..., gs://..., or a path
  std::string sha256;  // 64 lowercase hex digits
};

struct SamplingDefaults {  // what a request gets when it says nothing (engine SamplingParams)
  double temperature = 0.8;
  int top_k = 40;
  double top_p = 0.95;
  double min_p = 0.05;
  double repeat_penalty = 1.0;
  int repeat_last_n = 64;
  uint64_t seed = 0;
};

struct EngineSettings {
  std::string backend = "auto";  // auto | cpu | cuda | hip
  // How conversations are formatted (validation prompts given as messages, /v1/chat/completions):
  // "" the model's own tokenizer.chat_template; else a built-in template of engine/chat.
  std::string chat_template;
  int context_length = 0;  // 0: the model's own context length
  int max_batch = 8;       // concurrent sequences per replica
  int threads = 0;         // CPU threads; 0: all cores
  SamplingDefaults sampling;
};

struct Resources {
  std::string gpu_model;  // e.g. "NVIDIA H100 80GB HBM3"; empty: any
  int gpu_count = 0;      // GPUs per replica
  int replicas_min = 1;
  int replicas_max = 1;  // default: max(replicas_min, 1)
};

struct Scaling {
  int target_queue_depth = 4;               // queued requests per replica before scaling out
  int64_t scale_to_zero_after_seconds = 0;  // idle time before scaling to zero; 0: never
  int target_in_flight = 0;                 // generating requests per replica; 0: engine.maxBatch
  int64_t scale_up_window_seconds = 5;      // load must call for more replicas this long
  int64_t scale_down_window_seconds = 300;  // load must call for fewer replicas this long
  int64_t queue_timeout_seconds = 30;       // a request waiting for a ready replica, then 503
  int max_queue = 64;                       // requests waiting for a ready replica, beyond: 503
};

struct Thresholds {
  double max_ttft_ms = 0;            // worst time to first token over the prompts; 0: unchecked
  double min_tokens_per_second = 0;  // decode tokens/s over all prompts; 0: unchecked
};

// A validation prompt: text, tokenized with BOS as it is; or a conversation, formatted by the
// model's chat template (or engine.chatTemplate) up to the start of the assistant's reply. Both
// are in the canonical form, so the digest covers the messages.
struct ValidationPrompt {
  std::string text;                     // a text prompt (messages empty)
  std::vector<chat::Message> messages;  // a conversation; empty for a text prompt

  ValidationPrompt() = default;
  ValidationPrompt(std::string t) : text(std::move(t)) {}  // NOLINT(runtime/explicit): text
  ValidationPrompt(const char* t) : text(t) {}             // NOLINT(runtime/explicit): text
  static ValidationPrompt Conversation(std::vector<chat::Message> messages) {
    ValidationPrompt p;
    p.messages = std::move(messages);
    return p;
  }
  bool is_conversation() const { return !messages.empty(); }
  friend bool operator==(const ValidationPrompt&, const ValidationPrompt&) = default;
};

struct Validation {
  std::vector<ValidationPrompt> prompts;  // at least one; run greedily in this order
  int max_tokens = 32;                    // per prompt
  Thresholds thresholds;
};

struct Policy {
  std::vector<std::string> allowed_regions;  // "aws/eu-west-1", "on-prem"; empty: anywhere
  std::map<std::string, std::string> labels;
};

struct DeploymentSpec {
  std::string name;
  ModelRef model;
  EngineSettings engine;
  Resources resources;
  Scaling scaling;
  Validation validation;
  Policy policy;
};

// One problem in a spec file. line and column are 1-based (0 when unknown).
struct SpecError {
  int line = 0;
  int column = 0;
  std::string field;  // dotted path, e.g. "engine.sampling.topK"; empty for syntax errors
  std::string message;

  // "FILE:LINE:COLUMN: FIELD: MESSAGE" (FILE omitted when empty).
  std::string ToString(std::string_view file = {}) const;
};

struct SpecParseResult {
  DeploymentSpec spec;            // meaningful only when errors is empty
  std::vector<SpecError> errors;  // in file order
  bool ok() const { return errors.empty(); }
};

// Parses YAML text (exactly one document). Never throws.
SpecParseResult ParseDeploymentSpec(std::string_view yaml_text);

// Reads and parses a file. INVALID_ARGUMENT lists every error as "FILE:LINE:COL: ..." lines;
// NOT_FOUND / UNAVAILABLE when the file cannot be read.
Result<DeploymentSpec> LoadDeploymentSpec(const std::filesystem::path& file);

// The canonical JSON object (every default explicit). Parsing its dump yields the same spec.
nlohmann::json ToCanonicalJsonValue(const DeploymentSpec& spec);
// The canonical JSON text: sorted keys, no whitespace.
std::string CanonicalJson(const DeploymentSpec& spec);
// sha256 of CanonicalJson(spec), 64 lowercase hex digits.
std::string SpecDigest(const DeploymentSpec& spec);

}  // namespace sextant::spec
