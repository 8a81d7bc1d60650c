// Test helper: a small synthesized llama model (random weights, engine/gguf/synth.h) loaded on the
// CPU, for engine tests that need *a* model rather than a trained one. Its scratch directory is
// removed with it.
#pragma once

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include "engine/base/status.h"
#include "engine/gguf/synth.h"
#include "engine/model/model.h"

namespace sextant::testing {

// A shape small enough for fast tests: 2 layers, grouped-query attention with one kv head of
// head size dim / heads, a 512-token vocabulary and context.
inline gguf::LlamaShape SmallLlamaShape(int dim = 128, int heads = 2) {
  gguf::LlamaShape s;
  s.name = "small-test";
  s.dim = dim;
  s.ff = 256;
  s.layers = 2;
  s.heads = heads;
  s.kv_heads = 1;
  s.vocab = 512;
  s.context = 512;
  return s;
}

class SynthModel {
 public:
  // Synthesizes `shape` as `type` and loads it on the CPU with `threads` threads.
  static Result<std::unique_ptr<SynthModel>> Make(const gguf::LlamaShape& shape,
                                                  gguf::SynthType type = gguf::SynthType::kQ8_0,
                                                  int threads = 2) {
    static std::atomic<int> counter{0};
    std::unique_ptr<SynthModel> m(new SynthModel());
    m->dir_ = std::filesystem::temp_directory_path() /
              ("sextant-synth-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::create_directories(m->dir_);
    const std::filesystem::path path = m->dir_ / "model.gguf";
    SEXTANT_RETURN_IF_ERROR(gguf::SynthesizeLlama(shape, type, 5, path, {}, 1));
    model::LoadOptions lo;
    lo.backend = "cpu";
    lo.threads = threads;
    SEXTANT_ASSIGN_OR_RETURN(m->model_, model::Model::Load(path, lo));
    return m;
  }
  ~SynthModel() {
    model_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  SynthModel(const SynthModel&) = delete;
  SynthModel& operator=(const SynthModel&) = delete;

  const std::shared_ptr<const model::Model>& model() const { return model_; }

 private:
  SynthModel() = default;
  std::filesystem::path dir_;
  std::shared_ptr<const model::Model> model_;
};

}  // namespace sextant::testing
