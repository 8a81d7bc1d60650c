// The backend interface the llama graph runs on: a Backend owns a model's weights on one device
// (the CPU uses them in place from the file mapping; a GPU backend uploads them once), and a
// BackendContext owns the per-stream state: activation buffers, the KV cache, threads or a
// stream. The model code (engine/model) drives a forward pass as a sequence of ops on buffers and
// weight handles, so a CUDA or HIP backend plugs in by implementing these two classes; nothing in
// engine/model names a device.
//
// Batches: a forward pass runs on a batch of tokens, each with a KV slot (one sequence's region
// of the cache) and a position in that sequence. SetBatch() fixes the batch; ops then work on the
// first `rows` rows of their buffers (row r = token r of the batch) unless a row count is given.
//
// Numerical contract: every op computes each row independently of the other rows and of the batch
// size (same arithmetic, same order), so a sequence's results do not depend on what else is in
// the batch. Greedy output of a request is therefore the same alone or batched.
//
// Thread-safety: a Backend is immutable after its weights are added and may be shared by many
// contexts on different threads. A BackendContext is used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "engine/backends/registry.h"
#include "engine/base/status.h"
#include "engine/gguf/gguf.h"

namespace sextant {

// Handles are indices owned by the Backend / BackendContext that issued them.
struct Weight {
  int32_t id = -1;
  bool valid() const { return id >= 0; }
};
struct Buffer {
  int32_t id = -1;
  bool valid() const { return id >= 0; }
};

// Shape of a context's KV cache: `slots` independent sequences of up to `context_length`
// positions, per layer, each position holding kv_heads * head_dim keys and as many values.
struct KvCacheShape {
  int32_t layers = 0;
  int32_t slots = 1;
  int32_t context_length = 0;
  int32_t kv_heads = 0;
  int32_t head_dim = 0;

  int64_t kv_dim() const { return int64_t{kv_heads} * head_dim; }
  // Bytes of the whole cache (K and V, f32).
  int64_t bytes() const { return int64_t{layers} * slots * context_length * kv_dim() * 2 * 4; }
};

struct ContextConfig {
  KvCacheShape kv;
  int32_t max_tokens = 512;  // most tokens in one batch
  int32_t threads = 0;       // CPU threads for this context; 0 = the backend's default
};

// One batch of tokens, host side. All three arrays have n_tokens entries.
// REQUIRES: 0 <= slots[i] < kv.slots, 0 <= positions[i] < kv.context_length, and every position
// below positions[i] of that slot was written by this or an earlier batch (causal prefix).
struct ForwardBatch {
  int32_t n_tokens = 0;
  const int32_t* tokens = nullptr;
  const int32_t* positions = nullptr;
  const int32_t* slots = nullptr;
};

struct AttentionShape {
  int32_t heads = 0;     // query heads
  int32_t kv_heads = 0;  // key/value heads (grouped-query attention: heads % kv_heads == 0)
  int32_t head_dim = 0;
  float scale = 1.0f;  // usually 1/sqrt(head_dim)
  // Sliding window (gemma2's local layers): a query at position p attends positions
  // p - window + 1 .. p only; 0 = every earlier position.
  int32_t window = 0;
  // Soft-capping of the scores (gemma2): s = softcap * tanh(s / softcap) after scaling; 0 = none.
  float softcap = 0.0f;
};

struct RopeShape {
  int32_t heads = 0;
  int32_t head_dim = 0;
  int32_t rope_dims = 0;  // leading dims of each head that rotate (llama: head_dim)
  float freq_base = 10000.0f;
  // NeoX mode (qwen2, qwen3, phi3, gemma): rotates the pairs (i, i + rope_dims / 2) instead of
  // (2i, 2i + 1).
  bool neox = false;
  // Angles are pos * freq_scale * freq_base^(-2i/rope_dims) / freq_factors[i]: freq_scale is
  // linear RoPE scaling (1 / factor), freq_factors Llama 3's per-frequency factors (an F32 weight
  // of rope_dims / 2 values; invalid = all 1).
  float freq_scale = 1.0f;
  Weight freq_factors;
};

// Per-stream execution state. Ops are enqueued in order; on the CPU they run immediately, on a
// GPU they may run asynchronously until ReadRows() or Finish().
class BackendContext {
 public:
  virtual ~BackendContext() = default;

  // An f32 activation buffer of `rows` rows (0: max_tokens) of `cols` floats, allocated once
  // (never in the decode loop). RESOURCE_EXHAUSTED when memory runs out.
  virtual Result<Buffer> AllocBuffer(int64_t cols, int64_t rows) = 0;
  virtual const KvCacheShape& kv_shape() const = 0;
  virtual int32_t max_tokens() const = 0;

  // Fixes the batch the following ops work on. INVALID_ARGUMENT when it breaks a REQUIRES above.
  virtual Status SetBatch(const ForwardBatch& batch) = 0;

  // out[r] = row tokens[r] of the table (embedding lookup, dequantized).
  virtual void GetRows(Weight table, Buffer out) = 0;
  // out[r] = x[r] / rms(x[r]) * gamma, for r < rows. out may alias x.
  virtual void RmsNorm(Buffer x, Weight gamma, float eps, int64_t rows, Buffer out) = 0;
  // y[r] = W x[r] for r < rows (W: out_features x in_features as stored in the file).
  virtual void MatMul(Weight w, Buffer x, int64_t rows, Buffer y) = 0;
  // Rotates x[r] in place (llama's normal RoPE, pairs (2i, 2i+1)) by the batch positions.
  virtual void Rope(Buffer x, const RopeShape& shape) = 0;
  // Writes k and v of every batch token to the layer's cache at (slot, position), then
  // out[r] = softmax(q[r] . K[slot, 0..position] * scale) V, per head (causal).
  virtual void Attention(int32_t layer, Buffer q, Buffer k, Buffer v, const AttentionShape& shape,
                         Buffer out) = 0;
  // gate[r] = silu(gate[r]) * up[r] (SwiGLU), batch rows.
  virtual void SwiGlu(Buffer gate, Buffer up) = 0;
  // gate[r] = gelu(gate[r]) * up[r] (GeGLU, gelu's tanh approximation as ggml), batch rows.
  virtual void GeGlu(Buffer gate, Buffer up) = 0;
  // x[r] += bias (an F32 weight of x's width), batch rows.
  virtual void AddBias(Buffer x, Weight bias) = 0;
  // Each of `heads` heads of head_dim floats of x[r] RMS-normalized with the gain gamma (head_dim
  // F32 values), in place, batch rows (qwen3's Q/K norms).
  virtual void RmsNormHeads(Buffer x, Weight gamma, float eps, int32_t heads, int32_t head_dim) = 0;
  // x[r] *= s, for r < rows.
  virtual void Scale(Buffer x, float s, int64_t rows) = 0;
  // x[r] = cap * tanh(x[r] / cap), for r < rows (gemma2's logit soft-capping).
  virtual void SoftCap(Buffer x, float cap, int64_t rows) = 0;
  // x[r] += y[r], batch rows.
  virtual void Add(Buffer x, Buffer y) = 0;
  // dst[i] = src[rows[i]]: gathers the rows whose logits are wanted.
  virtual void SelectRows(Buffer src, std::span<const int32_t> rows, Buffer dst) = 0;
  // Copies the first n_rows rows of b to host memory (n_rows * cols floats) and waits.
  virtual Status ReadRows(Buffer b, int64_t n_rows, float* host) = 0;
};

// A model's weights on one device.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;     // "cpu", "cuda", "hip"
  virtual std::string device() const = 0;        // "cpu (AVX2, 2 threads)", "NVIDIA H200"
  virtual std::string kernel_level() const = 0;  // "avx512", "avx2", "portable", "sm_90" ...
  virtual int32_t threads() const = 0;           // default threads of contexts (CPU)

  // Registers a tensor of the mapped file (which outlives the Backend). The CPU keeps a view, a
  // GPU backend uploads it. UNIMPLEMENTED for a type the backend cannot compute with.
  virtual Result<Weight> AddWeight(const gguf::Tensor& tensor) = 0;

  virtual Result<std::unique_ptr<BackendContext>> NewContext(const ContextConfig& config) const = 0;
};

struct BackendOptions {
  int32_t threads = 0;  // 0 = all cores
  int32_t device = 0;   // GPU backends: device index of that vendor's runtime
};

// Creates the backend named by a registry choice. The CPU is always available. A CUDA or HIP
// choice is FAILED_PRECONDITION when that backend was not compiled in, UNAVAILABLE when its
// runtime sees no usable device, INVALID_ARGUMENT for a device index past the device count
// (engine/backends/gpu_backend.h).
Result<std::unique_ptr<Backend>> CreateBackend(const BackendChoice& choice,
                                               const BackendOptions& options);

}  // namespace sextant
