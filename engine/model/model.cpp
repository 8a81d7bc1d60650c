#include "engine/model/model.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "engine/backends/backend.h"
#include "engine/backends/registry.h"
#include "engine/tokenizer/tokenizer.h"

namespace sextant::model {

// Weight handles of the llama graph on the model's backend.
struct GraphWeights {
  struct Layer {
    Weight attn_norm, wq, wk, wv, wo, ffn_norm, gate, down, up;
    Weight bq, bk, bv;                     // qwen2
    Weight q_norm, k_norm;                 // qwen3
    Weight post_attn_norm, post_ffn_norm;  // gemma2
  };
  Weight token_embd, output_norm, output;
  Weight rope_freqs;  // Llama 3 scaling; invalid when absent
  std::vector<Layer> layers;
  // phi3's fused tensors split into row ranges (their data stays in the file mapping).
  std::vector<std::unique_ptr<gguf::Tensor>> views;
};

// A context's activation buffers and batch staging, sized once.
struct GraphBuffers {
  Buffer x, xb, q, k, v, att, gate, up;  // max_batch_tokens rows
  Buffer sel, logits;                    // logit_rows rows
  int32_t logit_rows = 1;
  int32_t pass_rows = 1;  // tokens per pass through the graph (rows of the buffers above)
  std::vector<int32_t> tokens, positions, slots, wanted;  // max_batch_tokens entries
};

namespace {

constexpr int64_t kMaxDim = int64_t{1} << 20;  // sanity bound for every shape key

// Most tokens one pass through the graph computes; a longer batch runs as several passes. The
// activation buffers are sized by this, not by max_batch_tokens (a 512-token prefill of a 1.1B
// model would otherwise hold 36 MiB of activations). Each pass reads the weights once, so
// 128-token passes cost a prefill under 2% more weight traffic; results are the same because
// every row is computed independently.
constexpr int32_t kMaxPassRows = 128;

Result<int64_t> RequiredDim(const gguf::GgufFile& f, const std::string& key) {
  Result<uint64_t> v = f.GetUint(key);
  if (!v.ok()) {
    if (v.status().code() == StatusCode::kNotFound) {
      return Status::InvalidArgument("model metadata: required key '" + key + "' is missing");
    }
    return Status::InvalidArgument("model metadata: " + v.status().message());
  }
  if (*v == 0 || *v > static_cast<uint64_t>(kMaxDim)) {
    return Status::InvalidArgument("model metadata: '" + key + "' = " + std::to_string(*v) +
                                   " is outside 1.." + std::to_string(kMaxDim));
  }
  return static_cast<int64_t>(*v);
}

Result<int64_t> OptionalDim(const gguf::GgufFile& f, const std::string& key, int64_t fallback) {
  if (f.Find(key) == nullptr) return fallback;
  return RequiredDim(f, key);
}

Result<float> OptionalFloat(const gguf::GgufFile& f, const std::string& key, float fallback,
                            bool required) {
  if (f.Find(key) == nullptr) {
    if (required) {
      return Status::InvalidArgument("model metadata: required key '" + key + "' is missing");
    }
    return fallback;
  }
  Result<float> v = f.GetFloat(key);
  if (!v.ok()) return Status::InvalidArgument("model metadata: " + v.status().message());
  if (!std::isfinite(*v) || *v <= 0) {
    return Status::InvalidArgument("model metadata: '" + key + "' = " + std::to_string(*v) +
                                   " must be a positive number");
  }
  return *v;
}

std::string DimsString(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

// Checks presence, shape ([ne0, ne1] as in GGUF) and, for norms, type of one tensor.
Status CheckTensor(const gguf::GgufFile& f, const std::string& name, std::vector<int64_t> expected,
                   bool must_be_f32) {
  const gguf::Tensor* t = f.FindTensor(name);
  if (t == nullptr) return Status::InvalidArgument("model: tensor '" + name + "' is missing");
  std::vector<int64_t> dims = t->dims;
  while (dims.size() > expected.size() && dims.back() == 1) dims.pop_back();
  if (dims != expected) {
    return Status::InvalidArgument("model: tensor '" + name + "' has shape " + DimsString(t->dims) +
                                   ", expected " + DimsString(expected));
  }
  if (must_be_f32 && t->type != gguf::TensorType::kF32) {
    return Status::InvalidArgument("model: tensor '" + name + "' is " +
                                   std::string(gguf::TensorTypeName(t->type)) + ", expected F32");
  }
  if (!must_be_f32 && !gguf::RowBytes(t->type, expected[0]).has_value()) {
    return Status::InvalidArgument("model: tensor '" + name + "' rows of " +
                                   std::to_string(expected[0]) + " elements do not fit " +
                                   std::string(gguf::TensorTypeName(t->type)) + " blocks");
  }
  return Status::Ok();
}

std::string LayerName(int64_t i, const char* what) {
  return "blk." + std::to_string(i) + "." + what + ".weight";
}

}  // namespace

namespace {

constexpr std::string_view kArchitectures[] = {"llama", "qwen2", "qwen3",
                                               "phi3",  "gemma", "gemma2"};

std::string BiasName(int64_t i, const char* what) {
  return "blk." + std::to_string(i) + "." + what + ".bias";
}

Result<float> OptionalAnyFloat(const gguf::GgufFile& f, const std::string& key, float fallback) {
  if (f.Find(key) == nullptr) return fallback;
  Result<float> v = f.GetFloat(key);
  if (!v.ok()) return Status::InvalidArgument("model metadata: " + v.status().message());
  if (!std::isfinite(*v) || *v < 0) {
    return Status::InvalidArgument("model metadata: '" + key + "' = " + std::to_string(*v) +
                                   " must be a number >= 0");
  }
  return *v;
}

}  // namespace

Result<ModelInfo> ReadModelInfo(const gguf::GgufFile& f) {
  ModelInfo info;
  info.path = f.path();
  info.file_size = f.file_size();
  Result<std::string> arch = f.GetString("general.architecture");
  if (!arch.ok()) {
    return Status::InvalidArgument("model metadata: general.architecture: " +
                                   arch.status().message());
  }
  info.architecture = *arch;
  if (std::find(std::begin(kArchitectures), std::end(kArchitectures), info.architecture) ==
      std::end(kArchitectures)) {
    return Status::Unimplemented("model: architecture '" + info.architecture +
                                 "' is not supported (supported: llama, qwen2, qwen3, phi3, gemma, "
                                 "gemma2)");
  }
  const std::string& ar = info.architecture;
  const std::string a = ar + ".";
  if (f.Find("general.name") != nullptr) info.name = f.GetString("general.name").value_or("");
  if (f.Find("tokenizer.ggml.model") != nullptr) {
    info.vocab_kind = f.GetString("tokenizer.ggml.model").value_or("");
  }
  SEXTANT_ASSIGN_OR_RETURN(info.context_length, RequiredDim(f, a + "context_length"));
  SEXTANT_ASSIGN_OR_RETURN(info.embedding_length, RequiredDim(f, a + "embedding_length"));
  SEXTANT_ASSIGN_OR_RETURN(info.block_count, RequiredDim(f, a + "block_count"));
  SEXTANT_ASSIGN_OR_RETURN(info.feed_forward_length, RequiredDim(f, a + "feed_forward_length"));
  SEXTANT_ASSIGN_OR_RETURN(info.head_count, RequiredDim(f, a + "attention.head_count"));
  SEXTANT_ASSIGN_OR_RETURN(info.head_count_kv,
                           OptionalDim(f, a + "attention.head_count_kv", info.head_count));
  if (f.Find(a + "attention.key_length") != nullptr) {
    SEXTANT_ASSIGN_OR_RETURN(info.head_dim, RequiredDim(f, a + "attention.key_length"));
    SEXTANT_ASSIGN_OR_RETURN(const int64_t value_length,
                             OptionalDim(f, a + "attention.value_length", info.head_dim));
    if (value_length != info.head_dim) {
      return Status::Unimplemented("model metadata: " + a + "attention.value_length " +
                                   std::to_string(value_length) + " differs from key_length " +
                                   std::to_string(info.head_dim) + " (not supported)");
    }
  } else {
    if (info.embedding_length % info.head_count != 0) {
      return Status::InvalidArgument(
          "model metadata: " + a + "embedding_length " + std::to_string(info.embedding_length) +
          " is not a multiple of " + a + "attention.head_count " + std::to_string(info.head_count));
    }
    info.head_dim = info.embedding_length / info.head_count;
  }
  if (info.head_count % info.head_count_kv != 0) {
    return Status::InvalidArgument("model metadata: " + a + "attention.head_count " +
                                   std::to_string(info.head_count) + " is not a multiple of " + a +
                                   "attention.head_count_kv " + std::to_string(info.head_count_kv));
  }
  SEXTANT_ASSIGN_OR_RETURN(info.rope_dimension_count,
                           OptionalDim(f, a + "rope.dimension_count", info.head_dim));
  if (info.rope_dimension_count > info.head_dim || info.rope_dimension_count % 2 != 0) {
    return Status::InvalidArgument("model metadata: " + a + "rope.dimension_count " +
                                   std::to_string(info.rope_dimension_count) +
                                   " must be even and at most the head size " +
                                   std::to_string(info.head_dim));
  }
  SEXTANT_ASSIGN_OR_RETURN(info.rope_freq_base,
                           OptionalFloat(f, a + "rope.freq_base", 10000.0f, false));
  SEXTANT_ASSIGN_OR_RETURN(info.rms_epsilon,
                           OptionalFloat(f, a + "attention.layer_norm_rms_epsilon", 1e-5f, true));
  info.rope_neox = ar != "llama";
  // RoPE scaling: none, linear, or Llama 3's factors (rope_freqs.weight); others refused by name.
  if (f.Find(a + "rope.scaling.type") != nullptr) {
    Result<std::string> type = f.GetString(a + "rope.scaling.type");
    if (!type.ok()) return Status::InvalidArgument("model metadata: " + type.status().message());
    if (*type == "linear") {
      SEXTANT_ASSIGN_OR_RETURN(const float factor,
                               OptionalFloat(f, a + "rope.scaling.factor", 1.0f, true));
      info.rope_freq_scale = 1.0f / factor;
    } else if (*type != "none") {
      return Status::Unimplemented("model: RoPE scaling type '" + *type + "' (" + a +
                                   "rope.scaling.type) is not supported (none, linear, and Llama "
                                   "3's rope_freqs)");
    }
  }
  if (f.FindTensor("rope_factors_long.weight") != nullptr) {
    return Status::Unimplemented(
        "model: LongRoPE scaling (rope_factors_long.weight) is not supported");
  }
  SEXTANT_ASSIGN_OR_RETURN(info.attn_softcap,
                           OptionalAnyFloat(f, a + "attn_logit_softcapping", 0.0f));
  SEXTANT_ASSIGN_OR_RETURN(info.final_softcap,
                           OptionalAnyFloat(f, a + "final_logit_softcapping", 0.0f));
  if (ar == "gemma2") {
    SEXTANT_ASSIGN_OR_RETURN(info.sliding_window,
                             OptionalDim(f, a + "attention.sliding_window", 4096));
  }
  info.attention_scale = 1.0f / std::sqrt(static_cast<float>(info.head_dim));
  if (ar == "gemma2" && info.block_count == 46) {
    // Gemma 2 27B scales by the embedding width per head, as llama.cpp does.
    info.attention_scale =
        1.0f / std::sqrt(static_cast<float>(info.embedding_length / info.head_count));
  }

  const gguf::Tensor* embd = f.FindTensor("token_embd.weight");
  if (embd == nullptr)
    return Status::InvalidArgument("model: tensor 'token_embd.weight' is missing");
  if (embd->dims.size() < 2 || embd->dims[1] <= 0 || embd->dims[1] > (int64_t{1} << 24)) {
    return Status::InvalidArgument("model: tensor 'token_embd.weight' has shape " +
                                   DimsString(embd->dims) + ", expected [" +
                                   std::to_string(info.embedding_length) + ", vocab]");
  }
  info.vocab_size = embd->dims[1];
  const int64_t d = info.embedding_length;
  const int64_t qd = info.q_dim();
  const int64_t kv = info.kv_dim();
  const int64_t ff = info.feed_forward_length;
  const int64_t hd = info.head_dim;
  SEXTANT_RETURN_IF_ERROR(CheckTensor(f, "token_embd.weight", {d, info.vocab_size}, false));
  SEXTANT_RETURN_IF_ERROR(CheckTensor(f, "output_norm.weight", {d}, true));
  info.tied_output = f.FindTensor("output.weight") == nullptr;
  if (!info.tied_output) {
    SEXTANT_RETURN_IF_ERROR(CheckTensor(f, "output.weight", {d, info.vocab_size}, false));
  }
  info.rope_freq_factors = f.FindTensor("rope_freqs.weight") != nullptr;
  if (info.rope_freq_factors) {
    SEXTANT_RETURN_IF_ERROR(
        CheckTensor(f, "rope_freqs.weight", {info.rope_dimension_count / 2}, true));
  }
  for (int64_t i = 0; i < info.block_count; ++i) {
    SEXTANT_RETURN_IF_ERROR(CheckTensor(f, LayerName(i, "attn_norm"), {d}, true));
    if (ar == "phi3") {
      SEXTANT_RETURN_IF_ERROR(CheckTensor(f, LayerName(i, "attn_qkv"), {d, qd + 2 * kv}, false));
    } else {
      SEXTANT_RETURN_IF_ERROR(CheckTensor(f, LayerName(i, "attn_q"), {d, qd}, false));
      SEXTANT_RETURN_IF_ERROR(CheckTensor(f, LayerName(i, "attn_k"), {d, kv}, false));
      SEXTANT_RETURN_IF_ERROR(CheckTensor(f, LayerName(i, "attn_v"), {d, kv}, false));
    }
    if (ar == "qwen2") {
      SEXTANT_RETURN_IF_ERROR(CheckTensor(f, BiasName(i, "attn_q"), {qd}, true));
      SEXTANT_RETURN_IF_ERROR(CheckTensor(f, BiasName(i, "attn_k"), {kv}, true));
      SEXTANT_RETURN_IF_ERROR(CheckTensor(f, BiasName(i, "attn_v"), {kv}, true));
    }
    if (ar == "qwen3") {
      SEXTANT_RETURN_IF_ERROR(CheckTensor(f, LayerName(i, "attn_q_norm"), {hd}, true));
      SEXTANT_RETURN_IF_ERROR(CheckTensor(f, LayerName(i, "attn_k_norm"), {hd}, true));
    }
    SEXTANT_RETURN_IF_ERROR(CheckTensor(f, LayerName(i, "attn_output"), {qd, d}, false));
    SEXTANT_RETURN_IF_ERROR(CheckTensor(f, LayerName(i, "ffn_norm"), {d}, true));
    if (ar == "gemma2") {
      SEXTANT_RETURN_IF_ERROR(CheckTensor(f, LayerName(i, "post_attention_norm"), {d}, true));
      SEXTANT_RETURN_IF_ERROR(CheckTensor(f, LayerName(i, "post_ffw_norm"), {d}, true));
    }
    if (ar == "phi3") {
      SEXTANT_RETURN_IF_ERROR(CheckTensor(f, LayerName(i, "ffn_up"), {d, 2 * ff}, false));
    } else {
      SEXTANT_RETURN_IF_ERROR(CheckTensor(f, LayerName(i, "ffn_gate"), {d, ff}, false));
      SEXTANT_RETURN_IF_ERROR(CheckTensor(f, LayerName(i, "ffn_up"), {d, ff}, false));
    }
    SEXTANT_RETURN_IF_ERROR(CheckTensor(f, LayerName(i, "ffn_down"), {ff, d}, false));
  }

  std::map<gguf::TensorType, int> counts;
  std::map<gguf::TensorType, uint64_t> bytes;
  for (const gguf::Tensor& t : f.tensors()) {
    counts[t.type]++;
    if (t.dims.size() >= 2) bytes[t.type] += t.size_bytes;
    info.parameter_count += t.elements();
  }
  info.type_counts.assign(counts.begin(), counts.end());
  uint64_t best = 0;
  for (const auto& [type, n] : bytes) {
    if (n > best) {
      best = n;
      info.main_type = type;
    }
  }
  return info;
}

namespace {

// Makes the tensor data resident, in chunks, reporting progress. false: cancelled.
bool Prefault(const gguf::GgufFile& file, const std::function<bool(float)>& on_progress) {
  const uint8_t* lo = nullptr;
  const uint8_t* hi = nullptr;
  for (const gguf::Tensor& t : file.tensors()) {
    if (t.data == nullptr || t.size_bytes == 0) continue;
    if (lo == nullptr || t.data < lo) lo = t.data;
    if (hi == nullptr || t.data + t.size_bytes > hi) hi = t.data + t.size_bytes;
  }
  if (lo == nullptr) return on_progress ? on_progress(1.0f) : true;
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  uintptr_t begin = reinterpret_cast<uintptr_t>(lo) & ~(page - 1);
  const uintptr_t end = reinterpret_cast<uintptr_t>(hi);
  const uintptr_t total = end - begin;
  constexpr uintptr_t kChunk = uintptr_t{16} << 20;
  const uintptr_t start = begin;
  bool populate = true;
  while (begin < end) {
    const uintptr_t len = std::min(kChunk, end - begin);
#ifdef MADV_POPULATE_READ
    if (populate && madvise(reinterpret_cast<void*>(begin), len, MADV_POPULATE_READ) != 0) {
      populate = false;
    }
#else
    populate = false;
#endif
    if (!populate) {
      volatile uint8_t sink = 0;
      for (uintptr_t p = begin; p < begin + len; p += page) {
        sink = sink + *reinterpret_cast<const volatile uint8_t*>(p);
      }
    }
    begin += len;
    if (on_progress && !on_progress(static_cast<float>(static_cast<double>(begin - start) /
                                                       static_cast<double>(total)))) {
      return false;
    }
  }
  return true;
}

}  // namespace

Model::~Model() = default;

std::string_view Model::backend_name() const { return backend_->name(); }
std::string Model::backend_device() const { return backend_->device(); }
std::string Model::kernel_level() const { return backend_->kernel_level(); }
int Model::threads() const { return backend_->threads(); }

Result<std::shared_ptr<const Model>> Model::Load(const std::filesystem::path& path,
                                                 const LoadOptions& options) {
  if (options.threads < 0) return Status::InvalidArgument("threads must be >= 0");
  if (options.context_length < 0) return Status::InvalidArgument("context length must be >= 0");
  if (options.device < 0) return Status::InvalidArgument("device must be >= 0");
  BackendOptions backend_options;
  backend_options.threads = options.threads;
  backend_options.device = options.device;
  BackendChoice choice;
  if (!options.make_backend) {
    SEXTANT_ASSIGN_OR_RETURN(choice, ChooseBackend(options.backend));
  }
  std::string note = choice.note;
  Result<std::unique_ptr<Backend>> created = options.make_backend
                                                 ? options.make_backend(backend_options)
                                                 : CreateBackend(choice, backend_options);
  if (!created.ok() && !options.make_backend && choice.kind != BackendKind::kCpu &&
      options.backend == "auto") {
    note = std::string(BackendName(choice.kind)) + " device '" + choice.device +
           "' found but unusable (" + created.status().message() + "); using the CPU";
    choice = BackendChoice{BackendKind::kCpu, "cpu", note};
    created = CreateBackend(choice, backend_options);
  }
  if (!created.ok()) return created.status();
  std::unique_ptr<Backend> backend = std::move(created).value();

  std::shared_ptr<Model> model(new Model());
  model->backend_ = std::move(backend);
  model->backend_note_ = note;
  model->device_ = options.device;
  SEXTANT_ASSIGN_OR_RETURN(model->file_, gguf::GgufFile::Open(path));
  Result<ModelInfo> info = ReadModelInfo(*model->file_);
  if (!info.ok()) return info.status().WithContext(path.string());
  model->info_ = std::move(info).value();
  Result<std::unique_ptr<Tokenizer>> tok = Tokenizer::FromGguf(*model->file_);
  if (!tok.ok()) return tok.status().WithContext(path.string());
  model->tokenizer_ = std::move(tok).value();
  if (model->tokenizer_->vocab_size() != model->info_.vocab_size) {
    return Status::InvalidArgument(
        path.string() + ": the vocabulary has " + std::to_string(model->tokenizer_->vocab_size()) +
        " tokens but token_embd.weight has " + std::to_string(model->info_.vocab_size) + " rows");
  }
  model->default_context_ = options.context_length > 0
                                ? options.context_length
                                : static_cast<int>(model->info_.context_length);

  const gguf::GgufFile& f = *model->file_;
  auto add = [&](const std::string& name) -> Result<Weight> {
    return model->backend_->AddWeight(*f.FindTensor(name));
  };
  auto w = std::make_unique<GraphWeights>();
  SEXTANT_ASSIGN_OR_RETURN(w->token_embd, add("token_embd.weight"));
  SEXTANT_ASSIGN_OR_RETURN(w->output_norm, add("output_norm.weight"));
  if (model->info_.tied_output) {
    w->output = w->token_embd;
  } else {
    SEXTANT_ASSIGN_OR_RETURN(w->output, add("output.weight"));
  }
  const ModelInfo& mi = model->info_;
  if (mi.rope_freq_factors) {
    SEXTANT_ASSIGN_OR_RETURN(w->rope_freqs, add("rope_freqs.weight"));
  }
  // Rows [first, first + count) of a fused tensor as a tensor of its own.
  auto add_rows = [&](const std::string& name, int64_t first, int64_t count) -> Result<Weight> {
    const gguf::Tensor* t = f.FindTensor(name);
    auto view = std::make_unique<gguf::Tensor>(*t);
    const uint64_t row_bytes = t->row_bytes();
    view->name = name + "[" + std::to_string(first) + ":" + std::to_string(first + count) + "]";
    view->dims = {t->dims[0], count};
    view->data = t->data + static_cast<uint64_t>(first) * row_bytes;
    view->size_bytes = static_cast<uint64_t>(count) * row_bytes;
    w->views.push_back(std::move(view));
    return model->backend_->AddWeight(*w->views.back());
  };
  w->layers.resize(static_cast<size_t>(mi.block_count));
  for (int64_t i = 0; i < mi.block_count; ++i) {
    GraphWeights::Layer& l = w->layers[static_cast<size_t>(i)];
    SEXTANT_ASSIGN_OR_RETURN(l.attn_norm, add(LayerName(i, "attn_norm")));
    if (mi.architecture == "phi3") {
      SEXTANT_ASSIGN_OR_RETURN(l.wq, add_rows(LayerName(i, "attn_qkv"), 0, mi.q_dim()));
      SEXTANT_ASSIGN_OR_RETURN(l.wk, add_rows(LayerName(i, "attn_qkv"), mi.q_dim(), mi.kv_dim()));
      SEXTANT_ASSIGN_OR_RETURN(
          l.wv, add_rows(LayerName(i, "attn_qkv"), mi.q_dim() + mi.kv_dim(), mi.kv_dim()));
      SEXTANT_ASSIGN_OR_RETURN(l.gate, add_rows(LayerName(i, "ffn_up"), 0, mi.feed_forward_length));
      SEXTANT_ASSIGN_OR_RETURN(
          l.up, add_rows(LayerName(i, "ffn_up"), mi.feed_forward_length, mi.feed_forward_length));
    } else {
      SEXTANT_ASSIGN_OR_RETURN(l.wq, add(LayerName(i, "attn_q")));
      SEXTANT_ASSIGN_OR_RETURN(l.wk, add(LayerName(i, "attn_k")));
      SEXTANT_ASSIGN_OR_RETURN(l.wv, add(LayerName(i, "attn_v")));
      SEXTANT_ASSIGN_OR_RETURN(l.gate, add(LayerName(i, "ffn_gate")));
      SEXTANT_ASSIGN_OR_RETURN(l.up, add(LayerName(i, "ffn_up")));
    }
    if (mi.architecture == "qwen2") {
      SEXTANT_ASSIGN_OR_RETURN(l.bq, add(BiasName(i, "attn_q")));
      SEXTANT_ASSIGN_OR_RETURN(l.bk, add(BiasName(i, "attn_k")));
      SEXTANT_ASSIGN_OR_RETURN(l.bv, add(BiasName(i, "attn_v")));
    }
    if (mi.architecture == "qwen3") {
      SEXTANT_ASSIGN_OR_RETURN(l.q_norm, add(LayerName(i, "attn_q_norm")));
      SEXTANT_ASSIGN_OR_RETURN(l.k_norm, add(LayerName(i, "attn_k_norm")));
    }
    if (mi.architecture == "gemma2") {
      SEXTANT_ASSIGN_OR_RETURN(l.post_attn_norm, add(LayerName(i, "post_attention_norm")));
      SEXTANT_ASSIGN_OR_RETURN(l.post_ffn_norm, add(LayerName(i, "post_ffw_norm")));
    }
    SEXTANT_ASSIGN_OR_RETURN(l.wo, add(LayerName(i, "attn_output")));
    SEXTANT_ASSIGN_OR_RETURN(l.ffn_norm, add(LayerName(i, "ffn_norm")));
    SEXTANT_ASSIGN_OR_RETURN(l.down, add(LayerName(i, "ffn_down")));
  }
  model->weights_ = std::move(w);

  if (!Prefault(f, options.on_progress)) {
    return Status::Cancelled("loading " + path.string() + " was cancelled");
  }
  return std::shared_ptr<const Model>(std::move(model));
}

std::vector<std::span<const uint8_t>> Model::DecodeWeightRegions() const {
  std::vector<std::span<const uint8_t>> regions;
  for (const gguf::Tensor& t : file_->tensors()) {
    if (t.name == "token_embd.weight" && !info_.tied_output) continue;
    regions.emplace_back(t.data, static_cast<size_t>(t.size_bytes));
  }
  return regions;
}

Result<std::unique_ptr<ModelContext>> Model::NewContext(const ContextOptions& options) const {
  const int ctx_len = options.context_length > 0 ? options.context_length : default_context_;
  if (options.context_length < 0 || ctx_len > (1 << 22)) {
    return Status::InvalidArgument("context length " + std::to_string(options.context_length) +
                                   " is out of range");
  }
  if (options.slots <= 0 || options.slots > 4096) {
    return Status::InvalidArgument("slots must be in 1..4096, got " +
                                   std::to_string(options.slots));
  }
  if (options.max_batch_tokens <= 0 || options.max_batch_tokens > 65536) {
    return Status::InvalidArgument("max_batch_tokens must be in 1..65536, got " +
                                   std::to_string(options.max_batch_tokens));
  }
  if (options.threads < 0) return Status::InvalidArgument("threads must be >= 0");
  const ModelInfo& mi = info_;
  ContextConfig cfg;
  cfg.kv.layers = static_cast<int32_t>(mi.block_count);
  cfg.kv.slots = options.slots;
  cfg.kv.context_length = ctx_len;
  cfg.kv.kv_heads = static_cast<int32_t>(mi.head_count_kv);
  cfg.kv.head_dim = static_cast<int32_t>(mi.head_dim);
  const int32_t pass_rows = std::min(options.max_batch_tokens, kMaxPassRows);
  cfg.max_tokens = pass_rows;
  cfg.threads = options.threads;

  std::unique_ptr<ModelContext> ctx(new ModelContext());
  ctx->model_ = this;
  ctx->context_length_ = ctx_len;
  ctx->slots_ = options.slots;
  ctx->max_batch_tokens_ = options.max_batch_tokens;
  SEXTANT_ASSIGN_OR_RETURN(ctx->backend_, backend_->NewContext(cfg));
  auto b = std::make_unique<GraphBuffers>();
  BackendContext& be = *ctx->backend_;
  const int64_t d = mi.embedding_length;
  b->pass_rows = pass_rows;
  b->logit_rows = std::max(1, std::min(options.slots, pass_rows));
  SEXTANT_ASSIGN_OR_RETURN(b->x, be.AllocBuffer(d, 0));
  SEXTANT_ASSIGN_OR_RETURN(b->xb, be.AllocBuffer(d, 0));
  SEXTANT_ASSIGN_OR_RETURN(b->q, be.AllocBuffer(mi.q_dim(), 0));
  SEXTANT_ASSIGN_OR_RETURN(b->att, be.AllocBuffer(mi.q_dim(), 0));
  SEXTANT_ASSIGN_OR_RETURN(b->k, be.AllocBuffer(mi.kv_dim(), 0));
  SEXTANT_ASSIGN_OR_RETURN(b->v, be.AllocBuffer(mi.kv_dim(), 0));
  SEXTANT_ASSIGN_OR_RETURN(b->gate, be.AllocBuffer(mi.feed_forward_length, 0));
  SEXTANT_ASSIGN_OR_RETURN(b->up, be.AllocBuffer(mi.feed_forward_length, 0));
  SEXTANT_ASSIGN_OR_RETURN(b->sel, be.AllocBuffer(d, b->logit_rows));
  SEXTANT_ASSIGN_OR_RETURN(b->logits, be.AllocBuffer(mi.vocab_size, b->logit_rows));
  const size_t n = static_cast<size_t>(pass_rows);
  b->tokens.resize(n);
  b->positions.resize(n);
  b->slots.resize(n);
  b->wanted.reserve(n);
  ctx->buffers_ = std::move(b);
  return ctx;
}

ModelContext::~ModelContext() = default;

int64_t ModelContext::kv_bytes() const { return backend_->kv_shape().bytes(); }

Status ModelContext::Forward(std::span<const BatchToken> batch, std::span<float> logits) {
  const ModelInfo& mi = model_->info();
  const int64_t vocab = mi.vocab_size;
  if (batch.empty()) return Status::InvalidArgument("forward: empty batch");
  size_t wanted_total = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const BatchToken& t = batch[i];
    if (t.token < 0 || t.token >= vocab) {
      return Status::InvalidArgument("forward: token id " + std::to_string(t.token) +
                                     " outside the vocabulary of " + std::to_string(vocab));
    }
    if (t.slot < 0 || t.slot >= slots_) {
      return Status::InvalidArgument("forward: slot " + std::to_string(t.slot) + " outside 0.." +
                                     std::to_string(slots_ - 1));
    }
    if (t.pos < 0 || t.pos >= context_length_) {
      return Status::OutOfRange("context overflow: position " + std::to_string(t.pos) +
                                " is past the context length " + std::to_string(context_length_));
    }
    if (t.want_logits) ++wanted_total;
  }
  if (logits.size() < wanted_total * static_cast<size_t>(vocab)) {
    return Status::InvalidArgument("forward: logits span holds " + std::to_string(logits.size()) +
                                   " floats, " + std::to_string(wanted_total) + " rows of " +
                                   std::to_string(vocab) + " needed");
  }

  GraphBuffers& b = *buffers_;
  BackendContext& be = *backend_;
  const GraphWeights& w = *model_->weights_;
  RopeShape rope_q{static_cast<int32_t>(mi.head_count), static_cast<int32_t>(mi.head_dim),
                   static_cast<int32_t>(mi.rope_dimension_count), mi.rope_freq_base};
  rope_q.neox = mi.rope_neox;
  rope_q.freq_scale = mi.rope_freq_scale;
  rope_q.freq_factors = w.rope_freqs;
  RopeShape rope_k = rope_q;
  rope_k.heads = static_cast<int32_t>(mi.head_count_kv);
  AttentionShape attn{static_cast<int32_t>(mi.head_count), static_cast<int32_t>(mi.head_count_kv),
                      static_cast<int32_t>(mi.head_dim), mi.attention_scale};
  attn.softcap = mi.attn_softcap;
  const bool gemma = mi.architecture == "gemma" || mi.architecture == "gemma2";
  const bool gemma2 = mi.architecture == "gemma2";
  const int32_t hd = static_cast<int32_t>(mi.head_dim);
  const float eps = mi.rms_epsilon;
  float* out = logits.data();

  const size_t pass = static_cast<size_t>(b.pass_rows);
  for (size_t start = 0; start < batch.size(); start += pass) {
    const size_t n = std::min(batch.size() - start, pass);
    b.wanted.clear();
    for (size_t i = 0; i < n; ++i) {
      const BatchToken& t = batch[start + i];
      b.tokens[i] = t.token;
      b.positions[i] = t.pos;
      b.slots[i] = t.slot;
      if (t.want_logits) b.wanted.push_back(static_cast<int32_t>(i));
    }
    SEXTANT_RETURN_IF_ERROR(be.SetBatch(ForwardBatch{static_cast<int32_t>(n), b.tokens.data(),
                                                     b.positions.data(), b.slots.data()}));
    const int64_t rows = static_cast<int64_t>(n);
    be.GetRows(w.token_embd, b.x);
    if (gemma) be.Scale(b.x, std::sqrt(static_cast<float>(mi.embedding_length)), rows);
    for (size_t li = 0; li < w.layers.size(); ++li) {
      const GraphWeights::Layer& l = w.layers[li];
      be.RmsNorm(b.x, l.attn_norm, eps, rows, b.xb);
      be.MatMul(l.wq, b.xb, rows, b.q);
      be.MatMul(l.wk, b.xb, rows, b.k);
      be.MatMul(l.wv, b.xb, rows, b.v);
      if (l.bq.valid()) {
        be.AddBias(b.q, l.bq);
        be.AddBias(b.k, l.bk);
        be.AddBias(b.v, l.bv);
      }
      if (l.q_norm.valid()) {
        be.RmsNormHeads(b.q, l.q_norm, eps, rope_q.heads, hd);
        be.RmsNormHeads(b.k, l.k_norm, eps, rope_k.heads, hd);
      }
      be.Rope(b.q, rope_q);
      be.Rope(b.k, rope_k);
      // gemma2: even layers attend a sliding window.
      attn.window = gemma2 && li % 2 == 0 ? static_cast<int32_t>(mi.sliding_window) : 0;
      be.Attention(static_cast<int32_t>(li), b.q, b.k, b.v, attn, b.att);
      be.MatMul(l.wo, b.att, rows, b.xb);
      if (l.post_attn_norm.valid()) be.RmsNorm(b.xb, l.post_attn_norm, eps, rows, b.xb);
      be.Add(b.x, b.xb);
      be.RmsNorm(b.x, l.ffn_norm, eps, rows, b.xb);
      be.MatMul(l.gate, b.xb, rows, b.gate);
      be.MatMul(l.up, b.xb, rows, b.up);
      if (gemma) {
        be.GeGlu(b.gate, b.up);
      } else {
        be.SwiGlu(b.gate, b.up);
      }
      be.MatMul(l.down, b.gate, rows, b.xb);
      if (l.post_ffn_norm.valid()) be.RmsNorm(b.xb, l.post_ffn_norm, eps, rows, b.xb);
      be.Add(b.x, b.xb);
    }
    for (size_t g = 0; g < b.wanted.size(); g += static_cast<size_t>(b.logit_rows)) {
      const size_t m = std::min(b.wanted.size() - g, static_cast<size_t>(b.logit_rows));
      be.SelectRows(b.x, std::span<const int32_t>(b.wanted.data() + g, m), b.sel);
      be.RmsNorm(b.sel, w.output_norm, eps, static_cast<int64_t>(m), b.sel);
      be.MatMul(w.output, b.sel, static_cast<int64_t>(m), b.logits);
      if (mi.final_softcap > 0.0f) {
        be.SoftCap(b.logits, mi.final_softcap, static_cast<int64_t>(m));
      }
      SEXTANT_RETURN_IF_ERROR(be.ReadRows(b.logits, static_cast<int64_t>(m), out));
      out += m * static_cast<size_t>(vocab);
    }
  }
  return Status::Ok();
}

}  // namespace sextant::model
