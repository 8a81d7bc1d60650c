// Local validation of a deployment spec on the embedded engine: resolve the model file, check
// its sha256 against the spec, load it, run every validation prompt greedily (temperature 0,
// no repetition penalty: plain argmax, the oracle every target must reproduce) and measure.
// The result is an unsigned ValidationReport plus the raw outputs; signing and storing are the
// caller's (app/common/signing.h, app/console/store/report_repository.h).
//
// Thread-safety: RunValidation may run on any thread; progress callbacks come from that thread
// (and the engine's loading thread).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "app/common/deployment_spec.h"
#include "app/common/validation_report.h"
#include "engine/base/status.h"

namespace sextant::model {
class Model;
}

namespace sextant::validate {

struct ValidateOptions {
  std::string backend;              // empty: the spec's engine.backend
  int threads = -1;                 // < 0: the spec's engine.threads
  std::filesystem::path model_dir;  // where relative model URIs resolve; empty: current dir
  // Stages: "checking model sha256", "loading model", "prompt N/M"; fraction in 0..1.
  std::function<void(std::string_view stage, double fraction)> on_progress;
  // Polled while the model's sha256 is read, while it loads and before every generated token:
  // once it returns true, RunValidation stops and returns CANCELLED (no report). Called on the
  // validating thread and the engine's loading thread; must be cheap and thread-safe.
  std::function<bool()> cancelled;
};

// Where the model of a spec is on this machine:
//   file:///abs/path          -> /abs/path
//   file://rel/path, rel/path -> model_dir/rel/path
//   s3://.../name.gguf (any other scheme: a store of the targets) -> model_dir/name.gguf
// NOT_FOUND (naming the URI and the path tried) when there is no such file.
Result<std::filesystem::path> ResolveModelPath(const spec::ModelRef& model,
                                               const std::filesystem::path& model_dir);

struct ValidationRun {
  report::ValidationReport report;  // complete, with thresholds evaluated; not signed
  std::filesystem::path model_path;
  std::string backend_note;   // why this backend, when auto chose it
  std::string chat_template;  // what formatted the conversations (ChatFormatter::origin()); "" none
  std::vector<std::vector<int32_t>> outputs;  // generated token ids per prompt
  std::vector<std::string> output_texts;      // the same, decoded
};

// The greedy prompt runs of a validation on a loaded model, shared by `sextant validate` and
// every agent's RunValidation so that both compute the same digests the same way: a text prompt
// encoded with BOS, a conversation formatted by engine.chatTemplate or else the model's own chat
// template (engine/chat/chat_template.h; an unusable template fails the run), temperature 0, no
// repetition penalty, stop at end of generation, at most validation.maxTokens; per prompt the
// sha256 of the output token ids (little-endian int32) and the figures; output_digest =
// report::CombineOutputDigests. `on_prompt` (optional) is called before prompt i of n; `cancelled`
// (optional) is polled per token: true ends with CANCELLED.
struct GreedyPromptRuns {
  std::vector<report::PromptResult> prompts;
  std::vector<std::string> prompt_digests;    // sha256 hex of each prompt's token ids
  std::vector<std::vector<int32_t>> outputs;  // generated token ids per prompt
  std::string output_digest;
  std::string chat_template;  // what formatted the conversations (ChatFormatter::origin()); "" none
};
Result<GreedyPromptRuns> RunGreedyPrompts(
    const std::shared_ptr<const model::Model>& model, const spec::DeploymentSpec& spec,
    const std::function<void(size_t index, size_t count)>& on_prompt = {},
    const std::function<bool()>& cancelled = {});

// FAILED_PRECONDITION when the model's sha256 differs from the spec's (nothing is loaded then);
// NOT_FOUND for a missing model; CANCELLED once options.cancelled returns true; the engine's
// errors otherwise (OUT_OF_RANGE when a prompt plus maxTokens exceed the context length).
Result<ValidationRun> RunValidation(const spec::DeploymentSpec& spec,
                                    const ValidateOptions& options);

}  // namespace sextant::validate
