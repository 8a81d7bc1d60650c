// A llama-family model loaded from a GGUF file: its shape (ModelInfo, from the `ARCH.*`
// metadata), its tokenizer, and its weights on a backend. Architectures: llama (with linear RoPE
// scaling and Llama 3's rope_freqs factors), qwen2 (Q/K/V biases), qwen3 (Q/K RMS norms), phi3
// (fused QKV and gate/up; LongRoPE files are refused), gemma (embedding scaling, GeGLU) and
// gemma2 (post-norms, attention and logit soft-capping, sliding-window layers); any other is
// refused by name. Model is immutable after Load() and is
// shared (std::shared_ptr<const Model>) by any number of sessions and schedulers; each of those
// owns a ModelContext (KV cache and scratch buffers) that runs forward passes.
//
// Memory: weights are used in place from the read-only file mapping on the CPU (no copy); a
// context's scratch buffers are sized once when it is made; its KV cache is
// slots x context_length x layers x kv_heads x head_dim x 2 (K and V) x 4 bytes, mapped lazily so
// only the positions written become resident.
//
// Thread-safety: Model is safe for concurrent use from any thread. A ModelContext is used by one
// thread at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/base/status.h"
#include "engine/gguf/gguf.h"

namespace sextant {
class Tokenizer;  // engine/tokenizer/tokenizer.h
class Backend;
class BackendContext;
struct BackendOptions;
}  // namespace sextant

namespace sextant::model {

// The shape of a llama model, read and checked from its metadata.
struct ModelInfo {
  std::string architecture;  // "llama", "qwen2", "qwen3", "phi3", "gemma", "gemma2"
  std::string name;          // general.name; may be empty
  std::filesystem::path path;
  uint64_t file_size = 0;

  int64_t context_length = 0;       // llama.context_length (training context)
  int64_t embedding_length = 0;     // llama.embedding_length (n_embd)
  int64_t block_count = 0;          // llama.block_count (layers)
  int64_t feed_forward_length = 0;  // llama.feed_forward_length
  int64_t head_count = 0;           // llama.attention.head_count
  int64_t head_count_kv = 0;        // llama.attention.head_count_kv (== head_count without GQA)
  int64_t head_dim = 0;             // ARCH.attention.key_length, else embedding_length / head_count
  int64_t rope_dimension_count = 0;  // llama.rope.dimension_count (default head_dim)
  float rope_freq_base = 10000.0f;   // llama.rope.freq_base
  float rms_epsilon = 1e-5f;         // llama.attention.layer_norm_rms_epsilon
  int64_t vocab_size = 0;            // rows of token_embd.weight
  std::string vocab_kind;            // tokenizer.ggml.model: "llama" or "gpt2"
  bool tied_output = false;          // output.weight absent: logits use token_embd.weight
  bool rope_neox = false;            // qwen2, qwen3, phi3, gemma*: NeoX RoPE pairs
  float rope_freq_scale = 1.0f;      // 1 / ARCH.rope.scaling.factor for linear scaling
  bool rope_freq_factors = false;    // rope_freqs.weight present (Llama 3 scaling)
  float attn_softcap = 0.0f;         // gemma2.attn_logit_softcapping; 0 = none
  float final_softcap = 0.0f;        // gemma2.final_logit_softcapping; 0 = none
  int64_t sliding_window = 0;        // gemma2.attention.sliding_window (even layers); 0 = none
  float attention_scale = 0.0f;      // score scale (1 / sqrt(head_dim) for most)

  int64_t parameter_count = 0;
  // The type most weight bytes are stored in (a Q4_K_M file mixes Q4_K and Q6_K: Q4_K).
  gguf::TensorType main_type = gguf::TensorType::kF32;
  // Tensor count per type, for `model info`.
  std::vector<std::pair<gguf::TensorType, int>> type_counts;

  int64_t kv_dim() const { return head_count_kv * head_dim; }
  int64_t q_dim() const { return head_count * head_dim; }
  // Bytes of the KV cache of one sequence of `context` positions.
  int64_t kv_bytes_per_sequence(int64_t context) const {
    return context * block_count * kv_dim() * 2 * 4;
  }
};

// Reads the `ARCH.*` metadata and checks every tensor of the graph for presence, type and shape.
// INVALID_ARGUMENT / NOT_FOUND naming the key or tensor; UNIMPLEMENTED naming an architecture or
// RoPE scaling type this engine does not run.
Result<ModelInfo> ReadModelInfo(const gguf::GgufFile& file);

struct LoadOptions {
  std::string backend = "auto";  // auto | cpu | cuda | hip (engine/backends/registry.h)
  int threads = 0;               // CPU threads; 0 = all cores
  int device = 0;                // GPU backends: which device of that vendor (0 = the first)
  int context_length = 0;        // default context of new contexts; 0 = the model's
  // Called with the fraction loaded (0..1) from the loading thread; returning false cancels the
  // load, which then returns CANCELLED.
  std::function<bool(float fraction)> on_progress;
  // Creates the backend instead of the registry (then `backend` is ignored): for a backend the
  // registry does not offer, such as the tests' GPU simulator. Empty: the registry decides.
  std::function<Result<std::unique_ptr<Backend>>(const BackendOptions&)> make_backend;
};

// One token of a forward batch: which sequence (KV slot), which position in it, and whether its
// logits are wanted.
struct BatchToken {
  int32_t token = 0;
  int32_t pos = 0;
  int32_t slot = 0;
  bool want_logits = false;
};

struct ContextOptions {
  int context_length = 0;      // positions per slot; 0 = LoadOptions::context_length
  int slots = 1;               // independent sequences (KV regions)
  int max_batch_tokens = 512;  // most tokens in one Forward()
  int threads = 0;             // 0 = LoadOptions::threads
};

class ModelContext;
struct GraphWeights;  // model.cpp
struct GraphBuffers;  // model.cpp

class Model {
 public:
  // Opens, validates and maps the file, builds the tokenizer and registers the weights on the
  // chosen backend, touching every page of the mapping (with progress) so that a loaded model
  // is resident. With backend "auto", a GPU the registry found that cannot be used falls back
  // to the CPU (backend_note() says why). Errors: those of the GGUF reader, the metadata and
  // tensor checks, backend choice and creation (engine/backends/backend.h), CANCELLED.
  static Result<std::shared_ptr<const Model>> Load(const std::filesystem::path& path,
                                                   const LoadOptions& options);
  ~Model();

  const ModelInfo& info() const { return info_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const gguf::GgufFile& file() const { return *file_; }
  std::string_view backend_name() const;
  std::string backend_device() const;
  std::string kernel_level() const;
  // Why this backend ("no GPU found; using the CPU"); empty when it was asked for.
  const std::string& backend_note() const { return backend_note_; }
  int threads() const;
  // LoadOptions::device the model was loaded with (which GPU of its vendor; a CPU model says 0).
  int device() const { return device_; }
  int default_context_length() const { return default_context_; }
  // sha256 of the file, lowercase hex (computed once, then cached).
  Result<std::string> Sha256() const { return file_->Sha256(); }

  // The weight bytes one decode step reads, as regions of the file mapping: every tensor of the
  // file but the token embedding (read a row per token), unless it doubles as the output matrix.
  // `sextant bench` times reading them as the bandwidth bound of generation.
  std::vector<std::span<const uint8_t>> DecodeWeightRegions() const;

  // A new context (KV cache + scratch). INVALID_ARGUMENT for a bad option,
  // RESOURCE_EXHAUSTED when memory cannot be had.
  Result<std::unique_ptr<ModelContext>> NewContext(const ContextOptions& options) const;

 private:
  friend class ModelContext;
  Model() = default;

  ModelInfo info_;
  std::unique_ptr<gguf::GgufFile> file_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Backend> backend_;
  std::string backend_note_;
  int device_ = 0;
  int default_context_ = 0;
  std::unique_ptr<GraphWeights> weights_;
};

// Runs forward passes of one model. Not thread-safe: one thread at a time.
class ModelContext {
 public:
  ~ModelContext();

  int context_length() const { return context_length_; }
  int slots() const { return slots_; }
  int max_batch_tokens() const { return max_batch_tokens_; }
  int64_t vocab_size() const { return model_->info().vocab_size; }
  int64_t kv_bytes() const;
  const Model& model() const { return *model_; }

  // Runs the batch. For each token with want_logits, in batch order, writes vocab_size() floats
  // to `logits` (which holds at least that many rows). Positions of a slot must continue its
  // sequence: a token at position p needs positions 0..p-1 of its slot written by this or
  // an earlier batch (a new sequence in a slot starts again at 0, overwriting).
  // Errors: OUT_OF_RANGE when a position is at or past context_length() (context overflow),
  // INVALID_ARGUMENT for a bad token id, slot, batch size or too small logits span.
  Status Forward(std::span<const BatchToken> batch, std::span<float> logits);

 private:
  friend class Model;
  ModelContext() = default;

  const Model* model_ = nullptr;
  std::unique_ptr<BackendContext> backend_;
  int context_length_ = 0;
  int slots_ = 0;
  int max_batch_tokens_ = 0;
  std::unique_ptr<GraphBuffers> buffers_;
};

}  // namespace sextant::model
