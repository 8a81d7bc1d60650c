// Synthesized GGUF models of the llama family and its relatives (llama with Llama 3's RoPE
// scaling, qwen2, qwen3, phi3, gemma, gemma2): random weights with the full `ARCH.*` metadata and
// a vocabulary (a SentencePiece-style one made up here, or one converted from a Hugging Face
// tokenizer.json by engine/gguf/hf_vocab.h), in the tensor names and layouts llama.cpp uses.
// Tests and benchmarks use them in place of real checkpoints of the same shape.
//
// The weights are a deterministic function of (shape, type, seed): two runs with the same
// arguments give byte-identical files, whatever the thread count. F32, F16 and BF16 tensors hold
// approximately normal values (RMS 0.02); quantized tensors (Q8_0, Q4_0, Q4_K, Q6_K) are written
// directly as random valid blocks (uniform quants, random block scales, RMS 0.02 after
// dequantization), which is ~100x faster than quantizing random floats and what lets a
// full-size Q4_K_M model be made in about the time its bytes take to write.
//
// Thread-safety: pure functions; SynthesizeLlama may run concurrently for different paths.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/status.h"
#include "engine/gguf/types.h"

namespace sextant::gguf {

struct LlamaShape {
  std::string name;
  int dim = 0;       // llama.embedding_length
  int ff = 0;        // llama.feed_forward_length
  int layers = 0;    // llama.block_count
  int heads = 0;     // llama.attention.head_count
  int kv_heads = 0;  // llama.attention.head_count_kv
  int vocab = 0;     // tokens in the vocabulary
  int context = 0;   // llama.context_length
  float rope_base = 10000.0f;
  float rms_eps = 1e-5f;
  std::string arch = "llama";  // general.architecture: llama, qwen2, qwen3, phi3, gemma, gemma2
  int head_dim = 0;            // ARCH.attention.key_length; 0: dim / heads
  bool tied_output = false;    // no output.weight: logits use token_embd.weight
  // Llama 3 RoPE frequency scaling (a rope_freqs tensor); factor 0: none.
  float rope_scale_factor = 0.0f;
  float rope_low_freq_factor = 1.0f;
  float rope_high_freq_factor = 4.0f;
  int rope_original_context = 8192;
  // gemma2: soft-capping of attention scores and of the logits, sliding window of even layers.
  float attn_softcap = 0.0f;
  float final_softcap = 0.0f;
  int sliding_window = 0;

  int head_size() const { return head_dim > 0 ? head_dim : dim / heads; }
};

// Full-size shapes for benchmarks ("tinyllama-1.1b", "llama3-8b", "qwen2.5-7b", "qwen3-8b",
// "phi3-mini", "gemma-2b", "gemma2-9b") and small ones for tests ("stories260k-like", "110m",
// "llama3-tiny", "qwen2-tiny", "qwen3-tiny", "phi3-tiny", "gemma-tiny", "gemma2-tiny"); nullopt for
// any other name.
std::optional<LlamaShape> LlamaShapeByName(std::string_view name);
std::vector<std::string> LlamaShapeNames();

// What a file is quantized to, as llama.cpp's file types.
enum class SynthType { kF32, kF16, kBF16, kQ8_0, kQ4_0, kQ4_K_M };
// "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m"; nullopt otherwise.
std::optional<SynthType> SynthTypeByName(std::string_view name);
std::vector<std::string> SynthTypeNames();

// The tensor type a synthesized model stores for one tensor. Norms are always F32. Q4_K_M
// follows llama.cpp's rule: output.weight Q6_K; attn_v and ffn_down Q6_K in the first and last
// eighth of the layers and every third layer between, Q4_K elsewhere; everything else Q4_K.
// When a row length is not a multiple of the block size (e.g. ff 172), the tensor falls back:
// K-quants to Q8_0 (llama.cpp would pick Q5_0, which this engine does not read), then to F16.
TensorType SynthTensorType(SynthType type, std::string_view tensor_name, int layer, int layers,
                           int64_t row_length);

// The SentencePiece-style vocabulary: <unk>, <s>, </s>, the 256 byte tokens <0x00>..<0xFF>,
// then deterministic pieces ("▁" with letters and common words, their prefixes, bigrams...)
// up to `size` tokens. REQUIRES: size >= 259 + 1.
struct SynthVocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> token_types;  // 1 normal, 2 unknown, 3 control, 6 byte
};
SynthVocab MakeSynthVocab(int size);

struct HfVocab;  // engine/gguf/hf_vocab.h

// The RoPE frequency factors of Llama 3's scaling (rope_freqs.weight), head_dim / 2 values, as
// llama.cpp's converter computes them from rope_scaling {factor, low/high_freq_factor,
// original_max_position_embeddings}.
std::vector<float> Llama3RopeFactors(const LlamaShape& shape);

// Writes a random-weight GGUF of `shape` to `path` (atomically). With `vocab`, its tokenizer
// metadata (and chat template) replace the made-up vocabulary and the vocabulary size is its
// token count. `threads` <= 0: one per hardware thread. progress(fraction) returning false
// cancels (CANCELLED, no file written).
Status SynthesizeLlama(const LlamaShape& shape, SynthType type, uint64_t seed,
                       const std::filesystem::path& path,
                       const std::function<bool(float)>& progress = {}, int threads = 0,
                       const HfVocab* vocab = nullptr);

}  // namespace sextant::gguf
