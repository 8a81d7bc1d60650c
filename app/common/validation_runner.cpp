#include "app/common/validation_runner.h"

#include <sys/resource.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "engine/base/build_info.h"
#include "engine/base/sha256.h"
#include "engine/base/time.h"
#include "engine/chat/chat_template.h"
#include "engine/model/model.h"
#include "engine/serve/session.h"
#include "engine/tokenizer/tokenizer.h"

namespace sextant::validate {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

int64_t PeakRssBytes() {
  struct rusage ru {};
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

void Progress(const ValidateOptions& o, std::string_view stage, double f) {
  if (o.on_progress) o.on_progress(stage, f);
}

bool Cancelled(const ValidateOptions& o) { return o.cancelled && o.cancelled(); }

Status CancelledStatus(std::string_view when) {
  return Status::Cancelled("validation cancelled " + std::string(when) + "; no report was made");
}

// The model file's sha256 (lowercase hex), with progress; polls cancel between chunks so that a
// large model can be abandoned while it is read.
Result<std::string> ModelSha256(const fs::path& file, const ValidateOptions& o) {
  Result<std::string> sha = Sha256FileHex(
      file, [&](double f) { Progress(o, "checking model sha256", f); },
      [&] { return Cancelled(o); });
  if (!sha.ok() && sha.status().code() == StatusCode::kCancelled) {
    return CancelledStatus("while checking the model's sha256");
  }
  return sha;
}

}  // namespace

Result<fs::path> ResolveModelPath(const spec::ModelRef& model, const fs::path& model_dir) {
  const std::string& uri = model.uri;
  const fs::path base = model_dir.empty() ? fs::path(".") : model_dir;
  fs::path path;
  const auto scheme_end = uri.find("://");
  if (scheme_end == std::string::npos) {
    path = fs::path(uri).is_absolute() ? fs::path(uri) : base / uri;
  } else if (uri.compare(0, scheme_end, "file") == 0) {
    const fs::path rest = uri.substr(scheme_end + 3);
    path = rest.is_absolute() ? rest : base / rest;
  } else {
    const fs::path name = fs::path(uri.substr(scheme_end + 3)).filename();
    if (name.empty()) return Status::InvalidArgument("model.uri " + uri + " names no file");
    path = base / name;
  }
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    return Status::NotFound("model " + uri + ": no file at " + path.string() +
                            (model_dir.empty() ? " (pass --model-dir DIR)" : ""));
  }
  return path;
}

Result<GreedyPromptRuns> RunGreedyPrompts(const std::shared_ptr<const model::Model>& model,
                                          const spec::DeploymentSpec& spec,
                                          const std::function<void(size_t, size_t)>& on_prompt,
                                          const std::function<bool()>& cancelled) {
  serve::Session session(model, spec.engine.context_length);
  SEXTANT_RETURN_IF_ERROR(session.status());
  GreedyPromptRuns runs;
  const auto& prompts = spec.validation.prompts;
  // Conversations are formatted as every target formats them: the chat template the spec names,
  // else the model's own (engine/chat).
  std::optional<chat::ChatFormatter> formatter;
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (cancelled && cancelled()) {
      return Status::Cancelled("validation cancelled before prompt " + std::to_string(i));
    }
    if (on_prompt) on_prompt(i, prompts.size());
    serve::GenerateRequest req;
    const Tokenizer& tok = model->tokenizer();
    if (prompts[i].is_conversation()) {
      if (!formatter) {
        Result<chat::ChatFormatter> f =
            chat::ChatFormatter::ForModel(model->file(), tok, spec.engine.chat_template);
        if (!f.ok()) return f.status().WithContext("validation prompt " + std::to_string(i));
        formatter = std::move(f).value();
        runs.chat_template = formatter->origin();
      }
      Result<std::vector<int32_t>> ids = formatter->Tokenize(tok, prompts[i].messages);
      if (!ids.ok()) return ids.status().WithContext("validation prompt " + std::to_string(i));
      req.prompt = std::move(ids).value();
    } else {
      req.prompt = tok.Encode(prompts[i].text, /*add_bos=*/true);
    }
    req.max_tokens = spec.validation.max_tokens;
    req.sampling.temperature = 0.0f;  // greedy: the oracle
    req.sampling.repeat_penalty = 1.0f;
    req.sampling.seed = 0;
    req.stop_at_eos = true;

    std::vector<int32_t> out;
    std::vector<Clock::time_point> times;
    out.reserve(static_cast<size_t>(req.max_tokens));
    times.reserve(static_cast<size_t>(req.max_tokens));
    bool was_cancelled = false;
    auto stats = session.Generate(req, [&](int32_t token) {
      if (cancelled && cancelled()) {
        was_cancelled = true;
        return false;
      }
      times.push_back(Clock::now());
      out.push_back(token);
      return true;
    });
    if (!stats.ok()) {
      return stats.status().WithContext("validation prompt " + std::to_string(i));
    }
    if (was_cancelled || (cancelled && cancelled())) {
      return Status::Cancelled("validation cancelled at prompt " + std::to_string(i));
    }

    report::PromptResult p;
    p.index = static_cast<int>(i);
    p.output_digest = ToHex(TokenIdsDigest(out));
    p.prompt_tokens = stats->prompt_tokens;
    p.generated_tokens = static_cast<int>(out.size());
    p.stopped_at_eos = static_cast<int>(out.size()) < req.max_tokens;
    p.ttft_ms = stats->ttft_ms;
    if (times.size() >= 2) {
      p.inter_token_ms =
          std::chrono::duration<double, std::milli>(times.back() - times.front()).count() /
          static_cast<double>(times.size() - 1);
    }
    p.tokens_per_second = stats->decode_tps;
    runs.prompts.push_back(p);
    runs.prompt_digests.push_back(ToHex(TokenIdsDigest(req.prompt)));
    runs.outputs.push_back(std::move(out));
  }
  SEXTANT_ASSIGN_OR_RETURN(runs.output_digest, report::CombineOutputDigests(runs.prompts));
  return runs;
}

Result<ValidationRun> RunValidation(const spec::DeploymentSpec& spec,
                                    const ValidateOptions& options) {
  ValidationRun run;
  SEXTANT_ASSIGN_OR_RETURN(run.model_path, ResolveModelPath(spec.model, options.model_dir));

  // The model must be the one the spec names before anything is measured.
  if (Cancelled(options)) return CancelledStatus("before it started");
  SEXTANT_ASSIGN_OR_RETURN(std::string sha, ModelSha256(run.model_path, options));
  if (sha != spec.model.sha256) {
    return Status::FailedPrecondition("model sha256 mismatch: the spec names " + spec.model.sha256 +
                                      " but " + run.model_path.string() + " has " + sha +
                                      "; refusing to validate another model");
  }

  model::LoadOptions load;
  load.backend = options.backend.empty() ? spec.engine.backend : options.backend;
  load.threads = options.threads >= 0 ? options.threads : spec.engine.threads;
  load.context_length = spec.engine.context_length;
  load.on_progress = [&](float f) {
    Progress(options, "loading model", f);
    return !Cancelled(options);  // false cancels the load (CANCELLED)
  };
  auto loaded = model::Model::Load(run.model_path, load);
  if (!loaded.ok()) {
    if (loaded.status().code() == StatusCode::kCancelled) {
      return CancelledStatus("while the model loaded");
    }
    return loaded.status();
  }
  std::shared_ptr<const model::Model> model = std::move(loaded).value();
  if (Cancelled(options)) return CancelledStatus("after the model loaded");
  run.backend_note = model->backend_note();

  report::ValidationReport& r = run.report;
  r.spec_name = spec.name;
  r.spec_digest = spec::SpecDigest(spec);
  r.model_uri = spec.model.uri;
  r.model_sha256 = sha;
  r.engine_build_id = GetBuildInfo().BuildId();
  r.backend = std::string(model->backend_name());
  r.device = model->backend_device();
  r.threads = model->threads();
  r.created_at = FormatRfc3339(NowMs());
  r.max_tokens = spec.validation.max_tokens;
  r.max_ttft_ms_threshold = spec.validation.thresholds.max_ttft_ms;
  r.min_tokens_per_second_threshold = spec.validation.thresholds.min_tokens_per_second;

  const size_t n = spec.validation.prompts.size();
  SEXTANT_ASSIGN_OR_RETURN(
      GreedyPromptRuns runs,
      RunGreedyPrompts(
          model, spec,
          [&](size_t i, size_t count) {
            Progress(options, "prompt " + std::to_string(i + 1) + "/" + std::to_string(count),
                     static_cast<double>(i) / static_cast<double>(count));
          },
          options.cancelled));
  Progress(options, "done", 1.0);
  r.prompts = std::move(runs.prompts);
  r.output_digest = std::move(runs.output_digest);
  run.outputs = std::move(runs.outputs);
  run.chat_template = std::move(runs.chat_template);
  for (size_t i = 0; i < n; ++i) {
    run.output_texts.push_back(
        model->tokenizer().Decode(run.outputs[i], /*strip_leading_space=*/false));
  }
  r.peak_memory_bytes = PeakRssBytes();
  report::EvaluateThresholds(r);
  return run;
}

}  // namespace sextant::validate
