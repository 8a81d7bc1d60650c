// Random-weight llama GGUF files. Each row of each tensor draws from its own counter-based
// random stream (seed, tensor name, row), so rows can be generated in any order by any thread
// and the file is still a pure function of its arguments.
#include "engine/gguf/synth.h"

#include <array>
#include <cmath>
#include <cstring>
#include <set>

#include "engine/gguf/hf_vocab.h"
#include "engine/gguf/writer.h"

namespace sextant::gguf {
namespace {

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

// Fills out[0..n) with approximately normal values of the given standard deviation: each value is
// the centred sum of four 16-bit uniforms (Irwin-Hall), cheap and smooth enough for weights.
void FillRow(uint64_t stream, int64_t n, float stddev, float* out) {
  uint64_t state = stream;
  const float scale = stddev * std::sqrt(3.0f) / 65536.0f;
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t r = SplitMix64(state);
    const auto sum = static_cast<int64_t>((r & 0xffff) + ((r >> 16) & 0xffff) +
                                          ((r >> 32) & 0xffff) + (r >> 48));
    out[i] = static_cast<float>(sum - 2 * 65536 + 2) * scale;  // sum's mean is 2*65535
  }
}

// Fills `n` bytes from the stream.
void FillBytes(uint64_t& state, uint8_t* out, size_t n) {
  while (n >= 8) {
    const uint64_t r = SplitMix64(state);
    std::memcpy(out, &r, 8);
    out += 8;
    n -= 8;
  }
  if (n > 0) {
    const uint64_t r = SplitMix64(state);
    std::memcpy(out, &r, n);
  }
}

// A uniform factor in [0.75, 1.25): the block scales vary around their mean as trained ones do.
float Jitter(uint64_t& state) {
  return 0.75f + 0.5f * static_cast<float>(SplitMix64(state) >> 40) / static_cast<float>(1 << 24);
}

// Writes a row of `n` elements of a quantized type as random valid blocks: uniform random quants
// and random block scales chosen so that the dequantized values have mean ~0 and RMS ~`rms`.
// Quantizing random floats instead costs ~100x more (Q4_K's scale search dominates), which made
// a full-size Q4_K_M model take half an hour; a benchmark needs realistic bytes and shapes, not
// a particular distribution. RMS of the quants: uniform int8 73.9; 4-bit 1..15 (0 read as 8)
// minus 8: 4.18; uniform 4-bit minus 7.5: 4.61; uniform 6-bit minus 32: 18.48; the K-quant
// sub-block scales are uniform in [32, 64) (RMS 48.39) for Q4_K and [16, 32) (RMS 23.95) for Q6_K.
void FillQuantizedRow(TensorType type, uint64_t stream, int64_t n, float rms, uint8_t* out) {
  uint64_t state = stream;
  switch (type) {
    case TensorType::kQ8_0: {
      auto* b = reinterpret_cast<BlockQ8_0*>(out);
      for (int64_t i = 0; i < n / kQK8_0; ++i) {
        FillBytes(state, reinterpret_cast<uint8_t*>(b[i].qs), sizeof(b[i].qs));
        b[i].d = F32ToF16(rms / 73.9f * Jitter(state));
      }
      return;
    }
    case TensorType::kQ4_0: {
      auto* b = reinterpret_cast<BlockQ4_0*>(out);
      for (int64_t i = 0; i < n / kQK4_0; ++i) {
        FillBytes(state, b[i].qs, sizeof(b[i].qs));
        // Quants 1..15 (a 0 becomes 8), so x = d (q - 8) is centred.
        for (uint8_t& q : b[i].qs) {
          if ((q & 15) == 0) q |= 8;
          if ((q >> 4) == 0) q |= 0x80;
        }
        b[i].d = F32ToF16(rms / 4.18f * Jitter(state));
      }
      return;
    }
    case TensorType::kQ4_K: {
      auto* b = reinterpret_cast<BlockQ4_K*>(out);
      for (int64_t i = 0; i < n / kQK_K; ++i) {
        FillBytes(state, b[i].qs, sizeof(b[i].qs));
        // Each sub-block's min equals its scale and dmin = 7.5 d: x = d sc (q - 7.5).
        uint8_t sc[8];
        const uint64_t r = SplitMix64(state);
        for (int j = 0; j < 8; ++j) sc[j] = static_cast<uint8_t>(32 + ((r >> (6 * j)) & 31));
        for (int j = 0; j < 4; ++j) {
          b[i].scales[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
          b[i].scales[j + 4] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
          b[i].scales[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | ((sc[j + 4] & 15) << 4));
        }
        const float d = rms / (4.61f * 48.39f) * Jitter(state);
        b[i].d = F32ToF16(d);
        b[i].dmin = F32ToF16(7.5f * F16ToF32(b[i].d));
      }
      return;
    }
    case TensorType::kQ6_K: {
      auto* b = reinterpret_cast<BlockQ6_K*>(out);
      for (int64_t i = 0; i < n / kQK_K; ++i) {
        FillBytes(state, b[i].ql, sizeof(b[i].ql));
        FillBytes(state, b[i].qh, sizeof(b[i].qh));
        const uint64_t r = SplitMix64(state);
        for (int j = 0; j < 16; ++j)
          b[i].scales[j] = static_cast<int8_t>(16 + ((r >> (4 * j)) & 15));
        b[i].d = F32ToF16(rms / (18.48f * 23.95f) * Jitter(state));
      }
      return;
    }
    default:
      return;
  }
}

bool IsBlockQuantized(TensorType type) {
  return type == TensorType::kQ8_0 || type == TensorType::kQ4_0 || type == TensorType::kQ4_K ||
         type == TensorType::kQ6_K;
}

bool UseMoreBits(int layer, int layers) {
  return layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2;
}

uint32_t LlamaFileType(SynthType type) {
  switch (type) {
    case SynthType::kF32:
      return 0;
    case SynthType::kF16:
      return 1;
    case SynthType::kQ4_0:
      return 2;
    case SynthType::kQ8_0:
      return 7;
    case SynthType::kQ4_K_M:
      return 15;
    case SynthType::kBF16:
      return 32;
  }
  return 0;
}

std::string_view SynthTypeName(SynthType type) {
  switch (type) {
    case SynthType::kF32:
      return "f32";
    case SynthType::kF16:
      return "f16";
    case SynthType::kBF16:
      return "bf16";
    case SynthType::kQ8_0:
      return "q8_0";
    case SynthType::kQ4_0:
      return "q4_0";
    case SynthType::kQ4_K_M:
      return "q4_k_m";
  }
  return "?";
}

}  // namespace

namespace {

std::vector<LlamaShape> AllShapes() {
  std::vector<LlamaShape> v;
  v.push_back({"stories260k-like", 64, 172, 5, 8, 4, 512, 512, 10000.0f, 1e-5f});
  v.push_back({"110m", 768, 2048, 12, 12, 12, 32000, 1024, 10000.0f, 1e-5f});
  v.push_back({"tinyllama-1.1b", 2048, 5632, 22, 32, 4, 32000, 2048, 10000.0f, 1e-5f});
  // Llama 3.1 8B's shape and RoPE scaling (factor 8, low 1, high 4, original context 8192), with
  // an 8192-position context.
  LlamaShape l3{"llama3-8b", 4096, 14336, 32, 32, 8, 128256, 8192, 500000.0f, 1e-5f};
  l3.rope_scale_factor = 8.0f;
  v.push_back(l3);
  LlamaShape l3t{"llama3-tiny", 256, 768, 2, 8, 2, 512, 256, 500000.0f, 1e-5f};
  l3t.rope_scale_factor = 8.0f;
  v.push_back(l3t);
  LlamaShape q2{"qwen2.5-7b", 3584, 18944, 28, 28, 4, 152064, 32768, 1000000.0f, 1e-6f};
  q2.arch = "qwen2";
  v.push_back(q2);
  LlamaShape q2t{"qwen2-tiny", 256, 768, 2, 8, 2, 512, 256, 1000000.0f, 1e-6f};
  q2t.arch = "qwen2";
  v.push_back(q2t);
  LlamaShape q3{"qwen3-8b", 4096, 12288, 36, 32, 8, 151936, 40960, 1000000.0f, 1e-6f};
  q3.arch = "qwen3";
  q3.head_dim = 128;
  v.push_back(q3);
  LlamaShape q3t{"qwen3-tiny", 256, 768, 2, 8, 2, 512, 256, 1000000.0f, 1e-6f};
  q3t.arch = "qwen3";
  q3t.head_dim = 64;  // heads x head_dim = 512, not the embedding width
  v.push_back(q3t);
  LlamaShape p3{"phi3-mini", 3072, 8192, 32, 32, 32, 32064, 4096, 10000.0f, 1e-5f};
  p3.arch = "phi3";
  v.push_back(p3);
  LlamaShape p3t{"phi3-tiny", 256, 768, 2, 8, 8, 512, 256, 10000.0f, 1e-5f};
  p3t.arch = "phi3";
  v.push_back(p3t);
  LlamaShape g{"gemma-2b", 2048, 16384, 18, 8, 1, 256000, 8192, 10000.0f, 1e-6f};
  g.arch = "gemma";
  g.head_dim = 256;
  g.tied_output = true;
  v.push_back(g);
  LlamaShape gt{"gemma-tiny", 256, 768, 2, 2, 1, 512, 256, 10000.0f, 1e-6f};
  gt.arch = "gemma";
  gt.head_dim = 64;
  gt.tied_output = true;
  v.push_back(gt);
  LlamaShape g2{"gemma2-9b", 3584, 14336, 42, 16, 8, 256000, 8192, 10000.0f, 1e-6f};
  g2.arch = "gemma2";
  g2.head_dim = 256;
  g2.tied_output = true;
  g2.attn_softcap = 50.0f;
  g2.final_softcap = 30.0f;
  g2.sliding_window = 4096;
  v.push_back(g2);
  LlamaShape g2t{"gemma2-tiny", 256, 768, 2, 4, 2, 512, 256, 10000.0f, 1e-6f};
  g2t.arch = "gemma2";
  g2t.head_dim = 64;
  g2t.tied_output = true;
  g2t.attn_softcap = 50.0f;
  g2t.final_softcap = 30.0f;
  g2t.sliding_window = 8;  // short, so a test's sequences cross it
  v.push_back(g2t);
  return v;
}

}  // namespace

std::optional<LlamaShape> LlamaShapeByName(std::string_view name) {
  for (LlamaShape& s : AllShapes()) {
    if (s.name == name) return s;
  }
  return std::nullopt;
}

std::vector<std::string> LlamaShapeNames() {
  std::vector<std::string> names;
  for (const LlamaShape& s : AllShapes()) names.push_back(s.name);
  return names;
}

std::vector<float> Llama3RopeFactors(const LlamaShape& shape) {
  const int hd = shape.head_size();
  std::vector<float> factors;
  const double low_wavelen = shape.rope_original_context / shape.rope_low_freq_factor;
  const double high_wavelen = shape.rope_original_context / shape.rope_high_freq_factor;
  for (int i = 0; i < hd; i += 2) {
    const double freq =
        1.0 / std::pow(static_cast<double>(shape.rope_base), static_cast<double>(i) / hd);
    const double wavelen = 2.0 * M_PI / freq;
    double f;
    if (wavelen < high_wavelen) {
      f = 1.0;
    } else if (wavelen > low_wavelen) {
      f = shape.rope_scale_factor;
    } else {
      const double smooth = (shape.rope_original_context / wavelen - shape.rope_low_freq_factor) /
                            (shape.rope_high_freq_factor - shape.rope_low_freq_factor);
      f = 1.0 / ((1.0 - smooth) / shape.rope_scale_factor + smooth);
    }
    factors.push_back(static_cast<float>(f));
  }
  return factors;
}

std::optional<SynthType> SynthTypeByName(std::string_view name) {
  for (SynthType t : {SynthType::kF32, SynthType::kF16, SynthType::kBF16, SynthType::kQ8_0,
                      SynthType::kQ4_0, SynthType::kQ4_K_M}) {
    if (SynthTypeName(t) == name) return t;
  }
  return std::nullopt;
}

std::vector<std::string> SynthTypeNames() {
  return {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m"};
}

TensorType SynthTensorType(SynthType type, std::string_view tensor_name, int layer, int layers,
                           int64_t row_length) {
  const auto ends_with = [&](std::string_view suffix) {
    return tensor_name.size() >= suffix.size() &&
           tensor_name.substr(tensor_name.size() - suffix.size()) == suffix;
  };
  if (ends_with("norm.weight") || ends_with(".bias") || tensor_name == "rope_freqs.weight") {
    return TensorType::kF32;
  }
  TensorType want = TensorType::kF32;
  switch (type) {
    case SynthType::kF32:
      return TensorType::kF32;
    case SynthType::kF16:
      return TensorType::kF16;
    case SynthType::kBF16:
      return TensorType::kBF16;
    case SynthType::kQ8_0:
      want = TensorType::kQ8_0;
      break;
    case SynthType::kQ4_0:
      want = TensorType::kQ4_0;
      break;
    case SynthType::kQ4_K_M:
      want = TensorType::kQ4_K;
      if (tensor_name == "output.weight") {
        want = TensorType::kQ6_K;
      } else if ((ends_with("attn_v.weight") || ends_with("ffn_down.weight")) &&
                 UseMoreBits(layer, layers)) {
        want = TensorType::kQ6_K;
      }
      break;
  }
  if (row_length % BlockElements(want) == 0) return want;
  if ((want == TensorType::kQ4_K || want == TensorType::kQ6_K) && row_length % kQK8_0 == 0) {
    return TensorType::kQ8_0;
  }
  return TensorType::kF16;
}

SynthVocab MakeSynthVocab(int size) {
  SynthVocab v;
  std::set<std::string> seen;
  auto add = [&](std::string piece, float score, int32_t type) {
    if (static_cast<int>(v.tokens.size()) >= size || !seen.insert(piece).second) return;
    v.tokens.push_back(std::move(piece));
    v.scores.push_back(score);
    v.token_types.push_back(type);
  };
  add("<unk>", 0.0f, 2);
  add("<s>", 0.0f, 3);
  add("</s>", 0.0f, 3);
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    add(std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">", 0.0f, 6);
  }
  // Normal pieces: the earlier, the higher the score (SentencePiece merges prefer high scores).
  float score = 0.0f;
  auto piece = [&](const std::string& p) { add(p, score -= 1.0f, 1); };
  const std::string sp = "\xE2\x96\x81";  // U+2581, SentencePiece's word-boundary mark
  static const std::array<const char*, 96> kWords = {
      "the",    "a",     "and",   "to",     "was",   "he",    "she",    "it",   "of",   "in",
      "is",     "that",  "with",  "for",    "on",    "you",   "they",   "her",  "his",  "said",
      "one",    "day",   "time",  "upon",   "once",  "there", "little", "girl", "boy",  "big",
      "saw",    "had",   "were",  "very",   "happy", "play",  "went",   "not",  "but",  "so",
      "at",     "be",    "we",    "all",    "can",   "do",    "up",     "out",  "mom",  "dad",
      "friend", "named", "loved", "wanted", "park",  "tree",  "ball",   "red",  "sun",  "dog",
      "cat",    "bird",  "fish",  "toy",    "home",  "house", "sad",    "good", "new",  "old",
      "what",   "when",  "where", "who",    "how",   "this",  "from",   "have", "are",  "an",
      "my",     "me",    "him",   "them",   "their", "go",    "see",    "look", "came", "made",
      "like",   "help",  "fun",   "sky",    "water", "food"};
  // Single characters first, so every longer piece can be built from pieces in the vocabulary.
  piece(sp);
  for (char c = 'a'; c <= 'z'; ++c) piece(std::string(1, c));
  for (char c = 'A'; c <= 'Z'; ++c) piece(std::string(1, c));
  for (char c = '0'; c <= '9'; ++c) piece(std::string(1, c));
  for (char c : std::string(".,!?'\"-:;()")) piece(std::string(1, c));
  // Words behind the boundary mark, each with all its prefixes.
  for (const char* w : kWords) {
    const std::string word = w;
    for (size_t n = 1; n <= word.size(); ++n) piece(sp + word.substr(0, n));
  }
  // Then lowercase bigrams, boundary + uppercase, trigrams, four-letter pieces...
  for (char a = 'a'; a <= 'z'; ++a) {
    for (char b = 'a'; b <= 'z'; ++b) piece(std::string{a, b});
  }
  for (char c = 'A'; c <= 'Z'; ++c) piece(sp + c);
  for (char a = 'a'; a <= 'z' && static_cast<int>(v.tokens.size()) < size; ++a) {
    for (char b = 'a'; b <= 'z'; ++b) {
      for (char c = 'a'; c <= 'z'; ++c) piece(std::string{a, b, c});
    }
  }
  for (int i = 0; static_cast<int>(v.tokens.size()) < size; ++i) {
    std::string p = sp;
    for (int k = i; k >= 0; k = k / 26 - 1) p += static_cast<char>('a' + k % 26);
    piece(p);
  }
  return v;
}

Status SynthesizeLlama(const LlamaShape& shape, SynthType type, uint64_t seed,
                       const std::filesystem::path& path,
                       const std::function<bool(float)>& progress, int threads, const HfVocab* hf) {
  const int vocab_n = hf != nullptr ? static_cast<int>(hf->tokens.size()) : shape.vocab;
  const std::string& arch = shape.arch;
  const bool known_arch = arch == "llama" || arch == "qwen2" || arch == "qwen3" || arch == "phi3" ||
                          arch == "gemma" || arch == "gemma2";
  if (!known_arch || shape.dim <= 0 || shape.ff <= 0 || shape.layers <= 0 || shape.heads <= 0 ||
      shape.kv_heads <= 0 || vocab_n < (hf != nullptr ? 1 : 260) || shape.context <= 0 ||
      (shape.head_dim <= 0 && shape.dim % shape.heads != 0) || shape.heads % shape.kv_heads != 0 ||
      shape.head_size() % 2 != 0) {
    return Status::InvalidArgument("shape '" + shape.name + "' is inconsistent");
  }
  const int head_dim = shape.head_size();
  const int q_dim = head_dim * shape.heads;
  const int kv_dim = head_dim * shape.kv_heads;
  const std::string a = arch + ".";
  GgufWriter w;
  SEXTANT_RETURN_IF_ERROR(w.AddString("general.architecture", arch));
  SEXTANT_RETURN_IF_ERROR(w.AddString(
      "general.name", "synthetic " + shape.name + " " + std::string(SynthTypeName(type))));
  SEXTANT_RETURN_IF_ERROR(w.AddUint32("general.file_type", LlamaFileType(type)));
  SEXTANT_RETURN_IF_ERROR(w.AddUint32("general.quantization_version", 2));
  SEXTANT_RETURN_IF_ERROR(w.AddUint32("general.alignment", 32));
  SEXTANT_RETURN_IF_ERROR(w.AddUint64("general.synthetic_seed", seed));
  SEXTANT_RETURN_IF_ERROR(w.AddUint32(a + "context_length", static_cast<uint32_t>(shape.context)));
  SEXTANT_RETURN_IF_ERROR(w.AddUint32(a + "embedding_length", static_cast<uint32_t>(shape.dim)));
  SEXTANT_RETURN_IF_ERROR(w.AddUint32(a + "block_count", static_cast<uint32_t>(shape.layers)));
  SEXTANT_RETURN_IF_ERROR(w.AddUint32(a + "feed_forward_length", static_cast<uint32_t>(shape.ff)));
  SEXTANT_RETURN_IF_ERROR(w.AddUint32(a + "rope.dimension_count", static_cast<uint32_t>(head_dim)));
  SEXTANT_RETURN_IF_ERROR(
      w.AddUint32(a + "attention.head_count", static_cast<uint32_t>(shape.heads)));
  SEXTANT_RETURN_IF_ERROR(
      w.AddUint32(a + "attention.head_count_kv", static_cast<uint32_t>(shape.kv_heads)));
  if (shape.head_dim > 0) {
    SEXTANT_RETURN_IF_ERROR(
        w.AddUint32(a + "attention.key_length", static_cast<uint32_t>(head_dim)));
    SEXTANT_RETURN_IF_ERROR(
        w.AddUint32(a + "attention.value_length", static_cast<uint32_t>(head_dim)));
  }
  SEXTANT_RETURN_IF_ERROR(w.AddFloat32(a + "attention.layer_norm_rms_epsilon", shape.rms_eps));
  SEXTANT_RETURN_IF_ERROR(w.AddFloat32(a + "rope.freq_base", shape.rope_base));
  SEXTANT_RETURN_IF_ERROR(w.AddUint32(a + "vocab_size", static_cast<uint32_t>(vocab_n)));
  if (shape.attn_softcap > 0) {
    SEXTANT_RETURN_IF_ERROR(w.AddFloat32(a + "attn_logit_softcapping", shape.attn_softcap));
  }
  if (shape.final_softcap > 0) {
    SEXTANT_RETURN_IF_ERROR(w.AddFloat32(a + "final_logit_softcapping", shape.final_softcap));
  }
  if (shape.sliding_window > 0) {
    SEXTANT_RETURN_IF_ERROR(
        w.AddUint32(a + "attention.sliding_window", static_cast<uint32_t>(shape.sliding_window)));
  }

  if (hf != nullptr) {
    SEXTANT_RETURN_IF_ERROR(w.AddString("tokenizer.ggml.model", hf->model));
    if (!hf->pre.empty()) SEXTANT_RETURN_IF_ERROR(w.AddString("tokenizer.ggml.pre", hf->pre));
    SEXTANT_RETURN_IF_ERROR(w.AddStringArray("tokenizer.ggml.tokens", hf->tokens));
    if (!hf->scores.empty()) {
      SEXTANT_RETURN_IF_ERROR(
          w.AddArray("tokenizer.ggml.scores", ArrayValue{ValueType::kFloat32, hf->scores}));
    }
    SEXTANT_RETURN_IF_ERROR(
        w.AddArray("tokenizer.ggml.token_type", ArrayValue{ValueType::kInt32, hf->token_types}));
    if (!hf->merges.empty()) {
      SEXTANT_RETURN_IF_ERROR(w.AddStringArray("tokenizer.ggml.merges", hf->merges));
    }
    const std::pair<const char*, std::optional<uint32_t>> ids[] = {
        {"tokenizer.ggml.bos_token_id", hf->bos_id},
        {"tokenizer.ggml.eos_token_id", hf->eos_id},
        {"tokenizer.ggml.unknown_token_id", hf->unk_id},
        {"tokenizer.ggml.padding_token_id", hf->pad_id}};
    for (const auto& [key, id] : ids) {
      if (id) SEXTANT_RETURN_IF_ERROR(w.AddUint32(key, *id));
    }
    SEXTANT_RETURN_IF_ERROR(w.AddBool("tokenizer.ggml.add_bos_token", hf->add_bos));
    SEXTANT_RETURN_IF_ERROR(w.AddBool("tokenizer.ggml.add_eos_token", hf->add_eos));
    if (hf->model == "llama") {
      SEXTANT_RETURN_IF_ERROR(w.AddBool("tokenizer.ggml.add_space_prefix", hf->add_space_prefix));
    }
    if (!hf->chat_template.empty()) {
      SEXTANT_RETURN_IF_ERROR(w.AddString("tokenizer.chat_template", hf->chat_template));
    }
  } else {
    SynthVocab vocab = MakeSynthVocab(shape.vocab);
    SEXTANT_RETURN_IF_ERROR(w.AddString("tokenizer.ggml.model", "llama"));
    SEXTANT_RETURN_IF_ERROR(w.AddStringArray("tokenizer.ggml.tokens", std::move(vocab.tokens)));
    ArrayValue scores{ValueType::kFloat32, std::move(vocab.scores)};
    SEXTANT_RETURN_IF_ERROR(w.AddArray("tokenizer.ggml.scores", std::move(scores)));
    ArrayValue types{ValueType::kInt32, std::move(vocab.token_types)};
    SEXTANT_RETURN_IF_ERROR(w.AddArray("tokenizer.ggml.token_type", std::move(types)));
    SEXTANT_RETURN_IF_ERROR(w.AddUint32("tokenizer.ggml.bos_token_id", 1));
    SEXTANT_RETURN_IF_ERROR(w.AddUint32("tokenizer.ggml.eos_token_id", 2));
    SEXTANT_RETURN_IF_ERROR(w.AddUint32("tokenizer.ggml.unknown_token_id", 0));
    SEXTANT_RETURN_IF_ERROR(w.AddBool("tokenizer.ggml.add_bos_token", true));
    SEXTANT_RETURN_IF_ERROR(w.AddBool("tokenizer.ggml.add_eos_token", false));
  }

  const auto add = [&](const std::string& name, int layer, std::vector<int64_t> dims) -> Status {
    const TensorType tt = SynthTensorType(type, name, layer, shape.layers, dims[0]);
    const bool is_norm =
        name.size() >= 11 && name.compare(name.size() - 11, 11, "norm.weight") == 0;
    const uint64_t stream = seed * 0x9E3779B97F4A7C15ull ^ Fnv1a(name);
    const int64_t row_len = dims[0];
    if (!is_norm && IsBlockQuantized(tt)) {
      return w.AddTensorEncoded(
          name, tt, std::move(dims), [stream, tt, row_len](int64_t row, uint8_t* out) {
            uint64_t s = stream ^ (static_cast<uint64_t>(row) * 0xD1B54A32D192ED03ull);
            FillQuantizedRow(tt, SplitMix64(s), row_len, 0.02f, out);
          });
    }
    GgufWriter::RowSource rows;
    if (is_norm) {
      rows = [row_len](int64_t, float* out) { std::fill(out, out + row_len, 1.0f); };
    } else {
      rows = [stream, row_len](int64_t row, float* out) {
        uint64_t s = stream ^ (static_cast<uint64_t>(row) * 0xD1B54A32D192ED03ull);
        FillRow(SplitMix64(s), row_len, 0.02f, out);
      };
    }
    return w.AddTensor(name, tt, std::move(dims), std::move(rows));
  };
  const int64_t dim = shape.dim, ff = shape.ff, nv = vocab_n;
  SEXTANT_RETURN_IF_ERROR(add("token_embd.weight", 0, {dim, nv}));
  if (shape.rope_scale_factor > 0) {
    std::vector<float> factors = Llama3RopeFactors(shape);
    const int64_t n = static_cast<int64_t>(factors.size());
    SEXTANT_RETURN_IF_ERROR(w.AddTensor(
        "rope_freqs.weight", TensorType::kF32, {n},
        [factors](int64_t, float* out) { std::copy(factors.begin(), factors.end(), out); }));
  }
  for (int l = 0; l < shape.layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    SEXTANT_RETURN_IF_ERROR(add(p + "attn_norm.weight", l, {dim}));
    if (arch == "phi3") {
      SEXTANT_RETURN_IF_ERROR(add(p + "attn_qkv.weight", l, {dim, q_dim + 2 * kv_dim}));
    } else {
      SEXTANT_RETURN_IF_ERROR(add(p + "attn_q.weight", l, {dim, q_dim}));
      SEXTANT_RETURN_IF_ERROR(add(p + "attn_k.weight", l, {dim, kv_dim}));
      SEXTANT_RETURN_IF_ERROR(add(p + "attn_v.weight", l, {dim, kv_dim}));
    }
    if (arch == "qwen2") {
      SEXTANT_RETURN_IF_ERROR(add(p + "attn_q.bias", l, {q_dim}));
      SEXTANT_RETURN_IF_ERROR(add(p + "attn_k.bias", l, {kv_dim}));
      SEXTANT_RETURN_IF_ERROR(add(p + "attn_v.bias", l, {kv_dim}));
    }
    if (arch == "qwen3") {
      SEXTANT_RETURN_IF_ERROR(add(p + "attn_q_norm.weight", l, {head_dim}));
      SEXTANT_RETURN_IF_ERROR(add(p + "attn_k_norm.weight", l, {head_dim}));
    }
    SEXTANT_RETURN_IF_ERROR(add(p + "attn_output.weight", l, {q_dim, dim}));
    if (arch == "gemma2") {
      SEXTANT_RETURN_IF_ERROR(add(p + "post_attention_norm.weight", l, {dim}));
    }
    SEXTANT_RETURN_IF_ERROR(add(p + "ffn_norm.weight", l, {dim}));
    if (arch == "phi3") {
      SEXTANT_RETURN_IF_ERROR(add(p + "ffn_up.weight", l, {dim, 2 * ff}));
    } else {
      SEXTANT_RETURN_IF_ERROR(add(p + "ffn_gate.weight", l, {dim, ff}));
      SEXTANT_RETURN_IF_ERROR(add(p + "ffn_up.weight", l, {dim, ff}));
    }
    SEXTANT_RETURN_IF_ERROR(add(p + "ffn_down.weight", l, {ff, dim}));
    if (arch == "gemma2") {
      SEXTANT_RETURN_IF_ERROR(add(p + "post_ffw_norm.weight", l, {dim}));
    }
  }
  SEXTANT_RETURN_IF_ERROR(add("output_norm.weight", 0, {dim}));
  if (!shape.tied_output) SEXTANT_RETURN_IF_ERROR(add("output.weight", 0, {dim, nv}));
  return w.Write(path, threads, progress);
}

}  // namespace sextant::gguf
