#include "app/agent/state/engine_validation_runner.h"

#include <sys/resource.h>

#include "app/agent/config/json_log.h"
#include "app/agent/state/desired_state.h"
#include "app/common/deployment_spec.h"
#include "app/common/validation_runner.h"
#include "engine/base/build_info.h"
#include "engine/model/model.h"

namespace sextant::agent {

namespace {

constexpr size_t kModelsKept = 2;

int64_t PeakRssBytes() {
  struct rusage ru {};
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

}  // namespace

EngineValidationRunner::EngineValidationRunner(std::filesystem::path model_store,
                                               std::string backend_override, int threads_override)
    : store_(std::move(model_store)),
      backend_override_(std::move(backend_override)),
      threads_override_(threads_override) {}

EngineValidationRunner::~EngineValidationRunner() = default;

Result<std::shared_ptr<const model::Model>> EngineValidationRunner::ModelFor(
    const std::string& key, const std::filesystem::path& file, const std::string& backend,
    int threads, int context_length) {
  std::lock_guard<std::mutex> lock(load_mu_);
  for (auto it = models_.begin(); it != models_.end(); ++it) {
    if (it->first == key) {
      auto entry = *it;
      models_.erase(it);
      models_.push_front(entry);
      return entry.second;
    }
  }
  model::LoadOptions load;
  load.backend = backend;
  load.threads = threads;
  load.context_length = context_length;
  auto loaded = model::Model::Load(file, load);
  if (!loaded.ok()) return loaded.status().WithContext("loading " + file.filename().string());
  models_.emplace_front(key, *loaded);
  while (models_.size() > kModelsKept) models_.pop_back();
  return *loaded;
}

Result<ValidationRunResult> EngineValidationRunner::Run(const DeploymentRecord& deployment,
                                                        const std::function<bool()>& cancelled) {
  spec::SpecParseResult parsed = spec::ParseDeploymentSpec(deployment.spec_json);
  if (!parsed.ok()) {
    return Status::InvalidArgument(
        "deployment '" + deployment.name +
        "': its spec does not parse: " + parsed.errors.front().ToString());
  }
  const spec::DeploymentSpec& spec = parsed.spec;
  const std::string& uri = deployment.model_uri.empty() ? spec.model.uri : deployment.model_uri;
  const std::string& sha =
      deployment.model_sha256.empty() ? spec.model.sha256 : deployment.model_sha256;
  std::string why;
  auto verified = store_.Verify(uri, sha, &why);
  if (!verified.ok()) {
    // The caller (maybe the vendor) reads only "not available"; the cause stays in this log.
    LogEvent(spdlog::level::warn, "model_not_available",
             {{"deployment", deployment.name}, {"uri", uri}, {"detail", why}});
    return verified.status();
  }
  const ModelStore::Verified& model_file = *verified;

  const std::string backend = backend_override_.empty() ? spec.engine.backend : backend_override_;
  const int threads = threads_override_ > 0 ? threads_override_ : spec.engine.threads;
  const std::string key = model_file.file.string() + "|" + model_file.sha256 + "|" + backend + "|" +
                          std::to_string(threads) + "|" +
                          std::to_string(spec.engine.context_length);
  SEXTANT_ASSIGN_OR_RETURN(
      std::shared_ptr<const model::Model> model,
      ModelFor(key, model_file.file, backend, threads, spec.engine.context_length));

  SEXTANT_ASSIGN_OR_RETURN(validate::GreedyPromptRuns runs,
                           validate::RunGreedyPrompts(model, spec, {}, cancelled));

  ValidationRunResult result;
  result.model_sha256 = model_file.sha256;
  result.engine_build_id = GetBuildInfo().BuildId();
  result.backend = std::string(model->backend_name());
  result.device = model->backend_device();
  result.threads = model->threads();
  result.output_digest = runs.output_digest;
  for (size_t i = 0; i < runs.prompts.size(); ++i) {
    const report::PromptResult& p = runs.prompts[i];
    ValidationPromptResult out;
    out.index = p.index;
    out.prompt_digest = runs.prompt_digests[i];
    out.output_tokens_digest = p.output_digest;
    out.prompt_tokens = p.prompt_tokens;
    out.generated_tokens = p.generated_tokens;
    out.ttft_ms = p.ttft_ms;
    out.decode_tokens_per_second = p.tokens_per_second;
    out.stopped_at_eos = p.stopped_at_eos;
    out.inter_token_ms = p.inter_token_ms;
    result.prompts.push_back(std::move(out));
  }
  result.peak_memory_bytes = PeakRssBytes();
  return result;
}

}  // namespace sextant::agent
