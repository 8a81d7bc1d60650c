// EngineValidationRunner: the agent's real ValidationRunner. It runs a deployment's validation
// prompts on the agent's OWN copy of the model (found and sha256-checked in its model store)
// with the embedded engine, greedily and exactly as `sextant validate` does
// (validate::RunGreedyPrompts), so that on the same backend the per-prompt output digests and
// the combined output_digest equal those of the console's signed validation report. Returns
// digests and figures only, never prompt or output text.
//
// Loaded models are cached by (file, sha256, backend, threads, context length); the two most
// recently used stay loaded.
//
// Thread-safety: Run may be called from several threads at once (each run has its own session;
// loading is serialized).
#pragma once

#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "app/agent/state/model_store.h"
#include "app/agent/state/sources.h"

namespace sextant::model {
class Model;
}

namespace sextant::agent {

class EngineValidationRunner : public ValidationRunner {
 public:
  // `backend_override` replaces the spec's engine.backend when non-empty; `threads_override`
  // replaces engine.threads when > 0 (as the replica manager's overrides).
  explicit EngineValidationRunner(std::filesystem::path model_store,
                                  std::string backend_override = {}, int threads_override = 0);
  ~EngineValidationRunner() override;

  // INVALID_ARGUMENT when the record's spec does not parse; FAILED_PRECONDITION when the model
  // is not in the store or its sha256 differs from the record's; CANCELLED when `cancelled`
  // turns true; the engine's errors otherwise.
  Result<ValidationRunResult> Run(const DeploymentRecord& deployment,
                                  const std::function<bool()>& cancelled) override;

 private:
  Result<std::shared_ptr<const model::Model>> ModelFor(const std::string& key,
                                                       const std::filesystem::path& file,
                                                       const std::string& backend, int threads,
                                                       int context_length);

  ModelStore store_;
  const std::string backend_override_;
  const int threads_override_;
  std::mutex load_mu_;  // serializes loads; guards models_
  std::deque<std::pair<std::string, std::shared_ptr<const model::Model>>> models_;  // MRU first
};

}  // namespace sextant::agent
