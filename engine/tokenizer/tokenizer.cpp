#include "engine/tokenizer/tokenizer.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <queue>
#include <unordered_map>

#include "engine/gguf/gguf.h"
#include "engine/tokenizer/pretokenizer.h"
#include "engine/tokenizer/unicode.h"

namespace sextant {

namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";   // U+2581, SentencePiece's space
constexpr std::string_view kUnknownGlyph = "\xE2\x96\x85";  // U+2585, how llama.cpp shows <unk>

// Keys, for error messages.
constexpr std::string_view kKeyModel = "tokenizer.ggml.model";
constexpr std::string_view kKeyTokens = "tokenizer.ggml.tokens";
constexpr std::string_view kKeyScores = "tokenizer.ggml.scores";
constexpr std::string_view kKeyTypes = "tokenizer.ggml.token_type";
constexpr std::string_view kKeyMerges = "tokenizer.ggml.merges";
constexpr std::string_view kKeyBos = "tokenizer.ggml.bos_token_id";
constexpr std::string_view kKeyEos = "tokenizer.ggml.eos_token_id";
constexpr std::string_view kKeyUnk = "tokenizer.ggml.unknown_token_id";
constexpr std::string_view kKeyPad = "tokenizer.ggml.padding_token_id";
constexpr std::string_view kKeyEot = "tokenizer.ggml.eot_token_id";
constexpr std::string_view kKeyEom = "tokenizer.ggml.eom_token_id";
constexpr std::string_view kKeyAddBos = "tokenizer.ggml.add_bos_token";
constexpr std::string_view kKeyAddEos = "tokenizer.ggml.add_eos_token";
constexpr std::string_view kKeyAddSpace = "tokenizer.ggml.add_space_prefix";
constexpr std::string_view kKeyPre = "tokenizer.ggml.pre";

// Vocabularies larger than this are rejected as implausible (the largest real ones are ~260k).
constexpr size_t kMaxVocab = size_t{1} << 24;

// Control-token texts that end a turn in common chat templates.
constexpr std::string_view kEogTexts[] = {
    "<|eot_id|>",    "<|im_end|>",      "<|end|>", "<|endoftext|>", "<|eom_id|>",
    "<end_of_turn>", "<|end_of_text|>", "<EOT>",   "<|return|>",    "<|call|>",
};

std::string Quote(std::string_view s) {
  std::string out = "'";
  for (char c : s.substr(0, 64)) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += c;
    }
  }
  if (s.size() > 64) out += "...";
  return out + "'";
}

std::string_view TypeName(gguf::ValueType t) {
  switch (t) {
    case gguf::ValueType::kUint8:
      return "uint8";
    case gguf::ValueType::kInt8:
      return "int8";
    case gguf::ValueType::kUint16:
      return "uint16";
    case gguf::ValueType::kInt16:
      return "int16";
    case gguf::ValueType::kUint32:
      return "uint32";
    case gguf::ValueType::kInt32:
      return "int32";
    case gguf::ValueType::kFloat32:
      return "float32";
    case gguf::ValueType::kBool:
      return "bool";
    case gguf::ValueType::kString:
      return "string";
    case gguf::ValueType::kArray:
      return "array";
    case gguf::ValueType::kUint64:
      return "uint64";
    case gguf::ValueType::kInt64:
      return "int64";
    case gguf::ValueType::kFloat64:
      return "float64";
  }
  return "unknown type";
}

Status WrongType(std::string_view key, std::string_view expected, gguf::ValueType found) {
  return Status::InvalidArgument(std::string(key) + ": expected " + std::string(expected) +
                                 ", found " + std::string(TypeName(found)));
}

const gguf::Value* Lookup(const gguf::GgufFile& file, std::string_view key) {
  const auto& meta = file.metadata();
  auto it = meta.find(std::string(key));
  return it == meta.end() ? nullptr : &it->second;
}

// An integer of any GGUF integer type, as int64 (uint64 values above INT64_MAX are rejected).
template <typename T>
bool AsInt(const T& v, int64_t& out) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if constexpr (std::is_unsigned_v<T>) {
      if (static_cast<uint64_t>(v) > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return false;
      }
    }
    out = static_cast<int64_t>(v);
    return true;
  } else {
    return false;
  }
}

bool IsIntegerType(gguf::ValueType t) {
  switch (t) {
    case gguf::ValueType::kUint8:
    case gguf::ValueType::kInt8:
    case gguf::ValueType::kUint16:
    case gguf::ValueType::kInt16:
    case gguf::ValueType::kUint32:
    case gguf::ValueType::kInt32:
    case gguf::ValueType::kUint64:
    case gguf::ValueType::kInt64:
      return true;
    default:
      return false;
  }
}

// A token id key: absent -> nullopt; -1 (or 0xFFFFFFFF, as converters write "none") -> -1.
Status ReadTokenId(const gguf::GgufFile& file, std::string_view key, std::optional<int32_t>& out) {
  const gguf::Value* v = Lookup(file, key);
  if (v == nullptr) return Status::Ok();
  if (!IsIntegerType(v->type)) return WrongType(key, "an integer", v->type);
  if (v->type == gguf::ValueType::kUint64 && std::get<uint64_t>(v->data) == ~uint64_t{0}) {
    out = -1;
    return Status::Ok();
  }
  int64_t value = 0;
  if (!std::visit([&](const auto& x) { return AsInt(x, value); }, v->data)) {
    return Status::InvalidArgument(std::string(key) + ": value out of range");
  }
  if (value == -1 || value == 0xFFFFFFFFLL) {
    out = -1;
  } else if (value < 0 || value > std::numeric_limits<int32_t>::max()) {
    return Status::InvalidArgument(std::string(key) + ": token id " + std::to_string(value) +
                                   " is out of range");
  } else {
    out = static_cast<int32_t>(value);
  }
  return Status::Ok();
}

Status ReadBool(const gguf::GgufFile& file, std::string_view key, std::optional<bool>& out) {
  const gguf::Value* v = Lookup(file, key);
  if (v == nullptr) return Status::Ok();
  if (v->type != gguf::ValueType::kBool) return WrongType(key, "bool", v->type);
  out = std::get<bool>(v->data);
  return Status::Ok();
}

Result<const gguf::ArrayValue*> ReadArray(const gguf::GgufFile& file, std::string_view key,
                                          bool required) {
  const gguf::Value* v = Lookup(file, key);
  if (v == nullptr) {
    if (required) return Status::InvalidArgument(std::string(key) + ": missing");
    return static_cast<const gguf::ArrayValue*>(nullptr);
  }
  if (v->type != gguf::ValueType::kArray) return WrongType(key, "an array", v->type);
  return &std::get<gguf::ArrayValue>(v->data);
}

// The file's array of strings under `key`; nullptr when absent and not required.
Result<const std::vector<std::string>*> StringArray(const gguf::GgufFile& file,
                                                    std::string_view key, bool required) {
  SEXTANT_ASSIGN_OR_RETURN(const gguf::ArrayValue* arr, ReadArray(file, key, required));
  if (arr == nullptr) return static_cast<const std::vector<std::string>*>(nullptr);
  const auto* strings = std::get_if<std::vector<std::string>>(&arr->elements);
  if (arr->element_type != gguf::ValueType::kString || strings == nullptr) {
    return WrongType(key, "an array of string", arr->element_type);
  }
  return strings;
}

Status ReadStrings(const gguf::GgufFile& file, std::string_view key, bool required,
                   std::vector<std::string>& out) {
  SEXTANT_ASSIGN_OR_RETURN(const std::vector<std::string>* strings,
                           StringArray(file, key, required));
  if (strings != nullptr) out = *strings;
  return Status::Ok();
}

// Parses "<0xNN>" (upper- or lower-case hex); -1 when `piece` is not of that form.
int ParseByteToken(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  int value = 0;
  for (char c : piece.substr(3, 2)) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return -1;
    }
    value = value * 16 + d;
  }
  return value;
}

}  // namespace

std::string_view VocabKindName(VocabKind kind) {
  return kind == VocabKind::kGpt2 ? "gpt2" : "llama";
}

// Token texts to ids: open addressing over a power-of-two table of ids, compared against the
// vocabulary's own strings (4 bytes a slot, no copies). The first id added for a text wins.
class PieceIndex {
 public:
  // `pieces` must outlive the index and not change.
  void Reset(const std::vector<std::string>* pieces, size_t expected) {
    pieces_ = pieces;
    size_t cap = 16;
    while (cap < expected * 2) cap *= 2;
    slots_.assign(cap, -1);
  }
  void Add(int32_t id) {
    const std::string_view text = (*pieces_)[id];
    for (size_t i = Home(text);; i = (i + 1) & (slots_.size() - 1)) {
      if (slots_[i] < 0) {
        slots_[i] = id;
        return;
      }
      if ((*pieces_)[slots_[i]] == text) return;
    }
  }
  // The id of `text`, or -1.
  int32_t Find(std::string_view text) const {
    if (slots_.empty()) return -1;
    for (size_t i = Home(text);; i = (i + 1) & (slots_.size() - 1)) {
      if (slots_[i] < 0) return -1;
      if ((*pieces_)[slots_[i]] == text) return slots_[i];
    }
  }

 private:
  size_t Home(std::string_view text) const {
    return std::hash<std::string_view>{}(text) & (slots_.size() - 1);
  }
  const std::vector<std::string>* pieces_ = nullptr;
  std::vector<int32_t> slots_;  // -1: empty; at most half full
};

struct Tokenizer::Impl {
  std::vector<float> scores;     // one per token (0 when the metadata has none)
  std::vector<TokenType> types;  // one per token
  // Decoded bytes of each token: token i is bytes[bytes_end[i-1] .. bytes_end[i]) (from 0 for i =
  // 0), one buffer rather than a string per token.
  std::string bytes;
  std::vector<uint32_t> bytes_end;
  // Every token's text (the first id wins on duplicates).
  PieceIndex piece_to_id;
  // Texts BPE may produce: not control, unknown, byte or unused tokens.
  PieceIndex mergeable;
  // llama: the <0xNN> token of each byte; gpt2: the token of each byte's mapped code point.
  std::array<int32_t, 256> byte_token{};
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  std::unordered_map<uint64_t, Merge> merges;  // gpt2: (left id << 32 | right id)
  // User-defined tokens, by first byte, longest first.
  std::array<std::vector<int32_t>, 256> user_defined;
  bool has_user_defined = false;
  // llama: no mergeable token has a space marker after another character, so merges never cross
  // the start of a word and words can be encoded one by one.
  bool split_words = true;
  std::vector<int32_t> eog;  // sorted
  // Control and unknown tokens, by first byte, longest first: matched in text with parse_special.
  std::array<std::vector<int32_t>, 256> special;
  bool has_special = false;
  unicode::PreTokenizer pre;  // gpt2

  static uint64_t PairKey(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }
};

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromGguf(const gguf::GgufFile& file) {
  VocabData data;
  const gguf::Value* model = Lookup(file, kKeyModel);
  if (model == nullptr) return Status::InvalidArgument(std::string(kKeyModel) + ": missing");
  if (model->type != gguf::ValueType::kString) return WrongType(kKeyModel, "string", model->type);
  const std::string& name = std::get<std::string>(model->data);
  if (name == "llama") {
    data.kind = VocabKind::kLlama;
  } else if (name == "gpt2") {
    data.kind = VocabKind::kGpt2;
    if (const gguf::Value* pre = Lookup(file, kKeyPre)) {
      if (pre->type != gguf::ValueType::kString) return WrongType(kKeyPre, "string", pre->type);
      data.pre = std::get<std::string>(pre->data);
    }
  } else {
    return Status::Unimplemented(std::string(kKeyModel) + ": tokenizer " + Quote(name) +
                                 " is not supported (supported: llama, gpt2)");
  }

  SEXTANT_RETURN_IF_ERROR(ReadStrings(file, kKeyTokens, /*required=*/true, data.tokens));
  SEXTANT_ASSIGN_OR_RETURN(const std::vector<std::string>* merges,
                           StringArray(file, kKeyMerges, /*required=*/false));

  SEXTANT_ASSIGN_OR_RETURN(const gguf::ArrayValue* scores, ReadArray(file, kKeyScores, false));
  if (scores != nullptr) {
    if (const auto* f32 = std::get_if<std::vector<float>>(&scores->elements)) {
      data.scores = *f32;
    } else if (const auto* f64 = std::get_if<std::vector<double>>(&scores->elements)) {
      data.scores.assign(f64->begin(), f64->end());
    } else {
      return WrongType(kKeyScores, "an array of float32", scores->element_type);
    }
  }

  SEXTANT_ASSIGN_OR_RETURN(const gguf::ArrayValue* types, ReadArray(file, kKeyTypes, false));
  if (types != nullptr) {
    if (!IsIntegerType(types->element_type)) {
      return WrongType(kKeyTypes, "an array of int32", types->element_type);
    }
    Status st = std::visit(
        [&](const auto& vec) -> Status {
          using Vec = std::decay_t<decltype(vec)>;
          using T = typename Vec::value_type;
          if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
            data.types.reserve(vec.size());
            for (size_t i = 0; i < vec.size(); ++i) {
              int64_t t = 0;
              if (!AsInt(vec[i], t) || t < 0 || t > 6) {
                return Status::InvalidArgument(std::string(kKeyTypes) + "[" + std::to_string(i) +
                                               "]: unknown token type " +
                                               std::to_string(static_cast<int64_t>(vec[i])));
              }
              data.types.push_back(static_cast<TokenType>(t));
            }
            return Status::Ok();
          } else {
            return WrongType(kKeyTypes, "an array of int32", types->element_type);
          }
        },
        types->elements);
    SEXTANT_RETURN_IF_ERROR(st);
  }

  SEXTANT_RETURN_IF_ERROR(ReadTokenId(file, kKeyBos, data.bos_id));
  SEXTANT_RETURN_IF_ERROR(ReadTokenId(file, kKeyEos, data.eos_id));
  SEXTANT_RETURN_IF_ERROR(ReadTokenId(file, kKeyUnk, data.unk_id));
  SEXTANT_RETURN_IF_ERROR(ReadTokenId(file, kKeyPad, data.pad_id));
  SEXTANT_RETURN_IF_ERROR(ReadTokenId(file, kKeyEot, data.eot_id));
  SEXTANT_RETURN_IF_ERROR(ReadTokenId(file, kKeyEom, data.eom_id));
  SEXTANT_RETURN_IF_ERROR(ReadBool(file, kKeyAddBos, data.add_bos));
  SEXTANT_RETURN_IF_ERROR(ReadBool(file, kKeyAddEos, data.add_eos));
  SEXTANT_RETURN_IF_ERROR(ReadBool(file, kKeyAddSpace, data.add_space_prefix));
  return Build(std::move(data), merges != nullptr ? std::span<const std::string>(*merges)
                                                  : std::span<const std::string>());
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromVocab(VocabData data) {
  const std::vector<std::string> merges = std::move(data.merges);
  return Build(std::move(data), merges);
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::Build(VocabData data,
                                                    std::span<const std::string> merges) {
  const size_t n = data.tokens.size();
  if (n == 0) return Status::InvalidArgument(std::string(kKeyTokens) + ": empty vocabulary");
  if (n > kMaxVocab) {
    return Status::InvalidArgument(std::string(kKeyTokens) + ": " + std::to_string(n) +
                                   " tokens exceed the limit of " + std::to_string(kMaxVocab));
  }
  if (!data.scores.empty() && data.scores.size() != n) {
    return Status::InvalidArgument(std::string(kKeyScores) + ": " +
                                   std::to_string(data.scores.size()) + " scores for " +
                                   std::to_string(n) + " tokens");
  }
  if (!data.types.empty() && data.types.size() != n) {
    return Status::InvalidArgument(std::string(kKeyTypes) + ": " +
                                   std::to_string(data.types.size()) + " token types for " +
                                   std::to_string(n) + " tokens");
  }
  for (size_t i = 0; i < data.scores.size(); ++i) {
    if (std::isnan(data.scores[i])) {
      return Status::InvalidArgument(std::string(kKeyScores) + "[" + std::to_string(i) +
                                     "]: score is NaN");
    }
  }

  std::unique_ptr<Tokenizer> tok(new Tokenizer());
  auto impl = std::make_unique<Impl>();
  tok->kind_ = data.kind;
  const bool llama = data.kind == VocabKind::kLlama;
  if (!llama) {
    tok->pre_ = data.pre.empty() ? "gpt-2" : data.pre;
    Result<unicode::PreTokenizer> pre = unicode::PreTokenizer::ForName(tok->pre_);
    if (!pre.ok()) return pre.status();
    impl->pre = std::move(pre).value();
  }

  impl->scores = data.scores.empty() ? std::vector<float>(n, 0.0f) : std::move(data.scores);
  impl->types =
      data.types.empty() ? std::vector<TokenType>(n, TokenType::kNormal) : std::move(data.types);
  for (size_t i = 0; i < n; ++i) {
    const TokenType t = impl->types[i];
    if (static_cast<uint8_t>(t) > static_cast<uint8_t>(TokenType::kByte)) {
      return Status::InvalidArgument(std::string(kKeyTypes) + "[" + std::to_string(i) +
                                     "]: unknown token type " +
                                     std::to_string(static_cast<int>(t)));
    }
    if (t == TokenType::kByte && ParseByteToken(data.tokens[i]) < 0) {
      return Status::InvalidArgument(std::string(kKeyTokens) + "[" + std::to_string(i) +
                                     "]: byte token " + Quote(data.tokens[i]) +
                                     " is not of the form <0xNN>");
    }
  }

  // Special ids: absent keys take the kind's defaults, -1 means "none".
  auto check_id = [&](std::string_view key, std::optional<int32_t> id, int32_t fallback,
                      int32_t& out) -> Status {
    int32_t v = id.has_value() ? *id : fallback;
    if (!id.has_value() && v >= static_cast<int64_t>(n)) v = -1;  // a default the vocab lacks
    if (v < -1 || v >= static_cast<int64_t>(n)) {
      return Status::InvalidArgument(std::string(key) + ": token id " + std::to_string(v) +
                                     " is outside the vocabulary of " + std::to_string(n) +
                                     " tokens");
    }
    out = v;
    return Status::Ok();
  };
  int32_t eot = -1, eom = -1;
  SEXTANT_RETURN_IF_ERROR(check_id(kKeyBos, data.bos_id, llama ? 1 : -1, tok->bos_id_));
  SEXTANT_RETURN_IF_ERROR(check_id(kKeyEos, data.eos_id, llama ? 2 : -1, tok->eos_id_));
  SEXTANT_RETURN_IF_ERROR(check_id(kKeyUnk, data.unk_id, llama ? 0 : -1, tok->unk_id_));
  SEXTANT_RETURN_IF_ERROR(check_id(kKeyPad, data.pad_id, -1, tok->pad_id_));
  SEXTANT_RETURN_IF_ERROR(check_id(kKeyEot, data.eot_id, -1, eot));
  SEXTANT_RETURN_IF_ERROR(check_id(kKeyEom, data.eom_id, -1, eom));
  tok->add_bos_ = data.add_bos.value_or(llama);
  tok->add_eos_ = data.add_eos.value_or(false);
  tok->add_space_prefix_ = data.add_space_prefix.value_or(llama);
  if (tok->add_bos_ && tok->bos_id_ < 0) {
    return Status::InvalidArgument(std::string(kKeyAddBos) +
                                   ": set, but the vocabulary has no BOS token (" +
                                   std::string(kKeyBos) + ")");
  }
  if (tok->add_eos_ && tok->eos_id_ < 0) {
    return Status::InvalidArgument(std::string(kKeyAddEos) +
                                   ": set, but the vocabulary has no EOS token (" +
                                   std::string(kKeyEos) + ")");
  }

  tok->tokens_ = std::move(data.tokens);
  const auto& tokens = tok->tokens_;  // stable from here: the maps below point into it

  impl->piece_to_id.Reset(&tokens, n);
  impl->mergeable.Reset(&tokens, n);
  for (size_t i = 0; i < n; ++i) {
    const auto id = static_cast<int32_t>(i);
    impl->piece_to_id.Add(id);
    const TokenType t = impl->types[i];
    const bool mergeable =
        t == TokenType::kNormal || t == TokenType::kUndefined || t == TokenType::kUserDefined;
    if (mergeable) impl->mergeable.Add(id);
    if (llama && impl->split_words && mergeable) {
      const std::string& piece = tokens[i];
      for (size_t p = piece.find(kSpaceMarker, 1); p != std::string::npos;
           p = piece.find(kSpaceMarker, p + 1)) {
        if (p < kSpaceMarker.size() ||
            piece.compare(p - kSpaceMarker.size(), kSpaceMarker.size(), kSpaceMarker) != 0) {
          impl->split_words = false;
          break;
        }
      }
    }
    if (t == TokenType::kUserDefined && !tokens[i].empty()) {
      impl->user_defined[static_cast<uint8_t>(tokens[i][0])].push_back(id);
      impl->has_user_defined = true;
    }
    if ((t == TokenType::kUserDefined || t == TokenType::kControl || t == TokenType::kUnknown) &&
        !tokens[i].empty()) {
      impl->special[static_cast<uint8_t>(tokens[i][0])].push_back(id);
      impl->has_special = true;
    }
  }
  for (auto* table : {&impl->user_defined, &impl->special}) {
    for (auto& bucket : *table) {
      std::stable_sort(bucket.begin(), bucket.end(),
                       [&](int32_t a, int32_t b) { return tokens[a].size() > tokens[b].size(); });
    }
  }

  // Byte fallback tables.
  for (int b = 0; b < 256; ++b) {
    int32_t id = -1;
    if (llama) {
      static const char* hex = "0123456789ABCDEF";
      const char name[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
      const int32_t named = impl->piece_to_id.Find(std::string_view(name, 6));
      if (named >= 0 && impl->types[named] == TokenType::kByte) {
        id = named;
      } else {
        const char single = static_cast<char>(b);
        id = impl->mergeable.Find(std::string_view(&single, 1));
      }
    } else {
      std::string mapped;
      unicode::AppendUtf8(unicode::ByteToCodePoint(static_cast<uint8_t>(b)), mapped);
      const int32_t found = impl->piece_to_id.Find(mapped);
      if (found >= 0 && impl->types[found] != TokenType::kControl) {
        id = found;
      }
    }
    impl->byte_token[b] = id;
  }

  // Merges (byte-level BPE): both sides and their concatenation must be tokens.
  if (!llama) {
    if (merges.empty()) {
      return Status::InvalidArgument(std::string(kKeyMerges) +
                                     ": missing or empty (required by the gpt2 tokenizer)");
    }
    if (merges.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
      return Status::InvalidArgument(std::string(kKeyMerges) + ": too many merges");
    }
    impl->merges.reserve(merges.size());
    std::string joined;
    for (size_t r = 0; r < merges.size(); ++r) {
      const std::string& m = merges[r];
      const size_t space = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
      auto where = [&]() { return std::string(kKeyMerges) + "[" + std::to_string(r) + "]: "; };
      if (space == std::string::npos) {
        return Status::InvalidArgument(where() + Quote(m) + " is not two pieces split by a space");
      }
      const std::string_view left(m.data(), space);
      const std::string_view right(m.data() + space + 1, m.size() - space - 1);
      const int32_t l = impl->piece_to_id.Find(left);
      const int32_t rt = impl->piece_to_id.Find(right);
      if (l < 0 || rt < 0) {
        return Status::InvalidArgument(where() + "names unknown token " +
                                       Quote(l < 0 ? left : right));
      }
      joined.assign(left);
      joined.append(right);
      const int32_t res = impl->piece_to_id.Find(joined);
      if (res < 0) {
        return Status::InvalidArgument(where() + "result " + Quote(joined) + " is not in " +
                                       std::string(kKeyTokens));
      }
      // The first (lowest-ranked) merge of a pair wins, as in every BPE implementation.
      impl->merges.emplace(Impl::PairKey(l, rt), Impl::Merge{static_cast<int32_t>(r), res});
    }
  }

  // Decoded bytes of every token.
  impl->bytes_end.resize(n);
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    const std::string& piece = tokens[i];
    out.clear();
    switch (impl->types[i]) {
      case TokenType::kControl:
        break;
      case TokenType::kByte:
        out.push_back(static_cast<char>(ParseByteToken(piece)));
        break;
      case TokenType::kUnknown:
        out = llama ? std::string(kUnknownGlyph) : piece;
        break;
      case TokenType::kUserDefined:
        if (!llama) {
          out = piece;
          break;
        }
        [[fallthrough]];
      default:
        if (llama) {
          for (size_t p = 0; p < piece.size();) {
            if (piece.compare(p, kSpaceMarker.size(), kSpaceMarker) == 0) {
              out.push_back(' ');
              p += kSpaceMarker.size();
            } else {
              out.push_back(piece[p++]);
            }
          }
        } else {
          std::string_view rest = piece;
          while (!rest.empty()) {
            unicode::Utf8Char c = unicode::DecodeUtf8(rest);
            const size_t len = c.kind == unicode::Utf8Char::kValid ? c.length : 1;
            const int b =
                c.kind == unicode::Utf8Char::kValid ? unicode::CodePointToByte(c.code_point) : -1;
            if (b >= 0) {
              out.push_back(static_cast<char>(b));
            } else {
              out.append(rest.substr(0, len));
            }
            rest.remove_prefix(len);
          }
        }
        break;
    }
    if (impl->bytes.size() + out.size() > std::numeric_limits<uint32_t>::max()) {
      return Status::InvalidArgument(std::string(kKeyTokens) + ": decoded tokens exceed 4 GiB");
    }
    impl->bytes += out;
    impl->bytes_end[i] = static_cast<uint32_t>(impl->bytes.size());
  }
  impl->bytes.shrink_to_fit();

  // End-of-generation ids.
  for (int32_t id : {tok->eos_id_, eot, eom}) {
    if (id >= 0) impl->eog.push_back(id);
  }
  for (std::string_view text : kEogTexts) {
    const int32_t id = impl->piece_to_id.Find(text);
    if (id >= 0 &&
        (impl->types[id] == TokenType::kControl || impl->types[id] == TokenType::kUserDefined)) {
      impl->eog.push_back(id);
    }
  }
  std::sort(impl->eog.begin(), impl->eog.end());
  impl->eog.erase(std::unique(impl->eog.begin(), impl->eog.end()), impl->eog.end());

  tok->impl_ = std::move(impl);
  return tok;
}

TokenType Tokenizer::token_type(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return TokenType::kUndefined;
  return impl_->types[id];
}

bool Tokenizer::IsEog(int32_t id) const {
  return std::binary_search(impl_->eog.begin(), impl_->eog.end(), id);
}

int32_t Tokenizer::Find(std::string_view piece) const { return impl_->piece_to_id.Find(piece); }

std::string_view Tokenizer::Piece(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return {};
  return tokens_[id];
}

std::string_view Tokenizer::TokenBytes(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return {};
  const uint32_t begin = id == 0 ? 0 : impl_->bytes_end[id - 1];
  return std::string_view(impl_->bytes).substr(begin, impl_->bytes_end[id] - begin);
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool strip_leading_space) const {
  std::string out;
  bool strip_space = strip_leading_space && kind_ == VocabKind::kLlama && add_space_prefix_;
  for (int32_t id : ids) {
    std::string_view bytes = TokenBytes(id);
    if (bytes.empty()) continue;
    if (strip_space) {
      strip_space = false;
      const TokenType t = impl_->types[id];
      if (bytes[0] == ' ' && t != TokenType::kByte && t != TokenType::kUnknown) {
        bytes.remove_prefix(1);
      }
    }
    out.append(bytes);
  }
  return out;
}

namespace {

// Splits `text` around user-defined tokens (longest match first) and calls raw(text_piece) or
// special(id) in order.
template <typename RawFn, typename SpecialFn>
void SplitUserDefined(std::string_view text, const std::array<std::vector<int32_t>, 256>& table,
                      const std::vector<std::string>& tokens, RawFn raw, SpecialFn special) {
  size_t start = 0;
  for (size_t i = 0; i < text.size();) {
    int32_t match = -1;
    for (int32_t id : table[static_cast<uint8_t>(text[i])]) {
      if (text.compare(i, tokens[id].size(), tokens[id]) == 0) {
        match = id;
        break;
      }
    }
    if (match < 0) {
      ++i;
      continue;
    }
    if (i > start) raw(text.substr(start, i - start));
    special(match);
    i += tokens[match].size();
    start = i;
  }
  if (start < text.size()) raw(text.substr(start));
}

}  // namespace

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_bos) const {
  return Encode(text, EncodeOptions{add_bos, false, false});
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, const EncodeOptions& options) const {
  return EncodeUpTo(text, options, std::numeric_limits<size_t>::max());
}

std::optional<std::vector<int32_t>> Tokenizer::EncodeAtMost(std::string_view text, bool add_bos,
                                                            size_t max_tokens) const {
  return EncodeAtMost(text, EncodeOptions{add_bos, false, false}, max_tokens);
}

std::optional<std::vector<int32_t>> Tokenizer::EncodeAtMost(std::string_view text,
                                                            const EncodeOptions& options,
                                                            size_t max_tokens) const {
  size_t longest = longest_piece_.load(std::memory_order_relaxed);
  if (longest == 0) {
    longest = 1;
    for (const std::string& piece : tokens_) longest = std::max(longest, piece.size());
    longest_piece_.store(longest, std::memory_order_relaxed);
  }
  // Each id stands for at most `longest` bytes of the text (its piece as stored is never shorter
  // than the text it covers, special tokens included), plus one for the space prefix.
  if (max_tokens < std::numeric_limits<size_t>::max() / longest &&
      text.size() > max_tokens * longest + 1) {
    return std::nullopt;
  }
  std::vector<int32_t> out = EncodeUpTo(text, options, max_tokens);
  if (out.size() > max_tokens) return std::nullopt;
  return out;
}

std::vector<int32_t> Tokenizer::EncodeUpTo(std::string_view text, const EncodeOptions& options,
                                           size_t limit) const {
  std::vector<int32_t> out;
  out.reserve(std::min(text.size() / 3, limit) + 2);
  if (options.add_bos && bos_id_ >= 0) out.push_back(bos_id_);
  if (!options.parse_special || !impl_->has_special) {
    EncodeText(text, limit, out);
  } else {
    // Special tokens first, then each stretch between them as text (Hugging Face's added-token
    // extraction; llama.cpp's parse_special).
    SplitUserDefined(
        text, impl_->special, tokens_,
        [&](std::string_view raw) {
          if (out.size() <= limit) EncodeText(raw, limit, out);
        },
        [&](int32_t id) { out.push_back(id); });
  }
  if (options.add_eos && eos_id_ >= 0) out.push_back(eos_id_);
  return out;
}

void Tokenizer::EncodeText(std::string_view text, size_t limit, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  if (kind_ == VocabKind::kLlama) {
    // SentencePiece normalization: a leading space marker, then spaces as U+2581.
    std::string escaped;
    escaped.reserve(text.size() + text.size() / 2 + 3);
    if (add_space_prefix_) escaped.append(kSpaceMarker);
    for (char c : text) {
      if (c == ' ') {
        escaped.append(kSpaceMarker);
      } else {
        escaped.push_back(c);
      }
    }
    if (!impl_->has_user_defined) {
      EncodeLlama(escaped, out, limit);
    } else {
      SplitUserDefined(
          escaped, impl_->user_defined, tokens_,
          [&](std::string_view raw) { EncodeLlama(raw, out, limit); },
          [&](int32_t id) { out.push_back(id); });
    }
  } else {
    if (!impl_->has_user_defined) {
      EncodeGpt2(text, out, limit);
    } else {
      SplitUserDefined(
          text, impl_->user_defined, tokens_,
          [&](std::string_view raw) { EncodeGpt2(raw, out, limit); },
          [&](int32_t id) { out.push_back(id); });
    }
  }
}

void Tokenizer::EncodeLlama(std::string_view text, std::vector<int32_t>& out, size_t limit) const {
  // Symbols start as single characters (or single invalid bytes) in a doubly linked list; the
  // adjacent pair whose concatenation is the highest-scoring token is merged until none is left.
  // When no token has a space marker after another character, no merge crosses the start of a
  // word, so each word ("▁" run + what follows) is encoded on its own with the same result; the
  // buffers are reused across words.
  struct Symbol {
    uint32_t start;
    uint32_t len;
    int32_t prev;
    int32_t next;
    int32_t id;  // token of text[start, start+len), or -1
  };
  struct Bigram {
    float score;
    int32_t left;
    int32_t right;
    uint32_t len;
    int32_t id;
  };
  auto lower = [](const Bigram& a, const Bigram& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::vector<Symbol> symbols;
  std::vector<Bigram> heap;

  auto encode_word = [&](std::string_view word) {
    symbols.clear();
    heap.clear();
    for (size_t off = 0; off < word.size();) {
      const unicode::Utf8Char c = unicode::DecodeUtf8(word.substr(off));
      const size_t len = c.kind == unicode::Utf8Char::kValid ? c.length : 1;
      const auto index = static_cast<int32_t>(symbols.size());
      symbols.push_back({static_cast<uint32_t>(off), static_cast<uint32_t>(len), index - 1,
                         off + len == word.size() ? -1 : index + 1,
                         impl_->mergeable.Find(word.substr(off, len))});
      off += len;
    }
    auto try_add = [&](int32_t left, int32_t right) {
      if (left < 0 || right < 0) return;
      const uint32_t len = symbols[left].len + symbols[right].len;
      const int32_t id = impl_->mergeable.Find(word.substr(symbols[left].start, len));
      if (id < 0) return;
      heap.push_back({impl_->scores[id], left, right, len, id});
      std::push_heap(heap.begin(), heap.end(), lower);
    };
    for (size_t i = 1; i < symbols.size(); ++i) {
      try_add(static_cast<int32_t>(i) - 1, static_cast<int32_t>(i));
    }
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), lower);
      const Bigram b = heap.back();
      heap.pop_back();
      Symbol& left = symbols[b.left];
      Symbol& right = symbols[b.right];
      // Stale when either side has merged since (lengths only grow; a merged-away symbol is 0).
      if (left.len == 0 || right.len == 0 || left.len + right.len != b.len ||
          left.next != b.right) {
        continue;
      }
      left.len += right.len;
      left.id = b.id;
      right.len = 0;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = b.left;
      try_add(left.prev, b.left);
      try_add(b.left, left.next);
    }
    for (int32_t i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[i].next) {
      const Symbol& sym = symbols[i];
      if (sym.id >= 0) {
        out.push_back(sym.id);
        continue;
      }
      for (uint32_t k = 0; k < sym.len; ++k) {  // byte fallback
        const int32_t id = impl_->byte_token[static_cast<uint8_t>(word[sym.start + k])];
        if (id >= 0) {
          out.push_back(id);
        } else if (unk_id_ >= 0) {
          out.push_back(unk_id_);
        }
      }
    }
  };

  // Words: split before a space marker that follows another character. A word longer than 2^30
  // bytes is cut (indices are 32-bit); real text never has one.
  constexpr size_t kMaxWord = size_t{1} << 30;
  size_t start = 0;
  if (impl_->split_words) {
    for (size_t p = text.find(kSpaceMarker, 1); p != std::string_view::npos;
         p = text.find(kSpaceMarker, p + 1)) {
      const bool after_marker =
          p >= kSpaceMarker.size() &&
          text.compare(p - kSpaceMarker.size(), kSpaceMarker.size(), kSpaceMarker) == 0;
      if (!after_marker) {
        while (p - start > kMaxWord) {
          encode_word(text.substr(start, kMaxWord));
          start += kMaxWord;
        }
        encode_word(text.substr(start, p - start));
        start = p;
        if (out.size() > limit) return;
      }
    }
  }
  while (text.size() - start > kMaxWord) {
    encode_word(text.substr(start, kMaxWord));
    start += kMaxWord;
  }
  if (start < text.size()) encode_word(text.substr(start));
}

void Tokenizer::EncodeGpt2(std::string_view text, std::vector<int32_t>& out, size_t limit) const {
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
  };
  struct Bigram {
    int32_t rank;
    int32_t left;
    int32_t right;
    int32_t left_id;
    int32_t right_id;
    int32_t result;
  };
  auto later = [](const Bigram& a, const Bigram& b) {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  };
  std::vector<Symbol> symbols;
  std::priority_queue<Bigram, std::vector<Bigram>, decltype(later)> queue(later);

  auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const int32_t l = symbols[left].id, r = symbols[right].id;
    if (l < 0 || r < 0) return;
    auto it = impl_->merges.find(Impl::PairKey(l, r));
    if (it == impl_->merges.end()) return;
    queue.push({it->second.rank, left, right, l, r, it->second.result});
  };

  std::string mapped;
  for (auto [offset, length] : impl_->pre.Split(text)) {
    if (out.size() > limit) return;
    std::string_view word = text.substr(offset, length);
    if (impl_->pre.ignore_merges()) {
      // A piece that is a whole token is taken as it is (Llama 3's BPE).
      mapped.clear();
      for (char c : word)
        unicode::AppendUtf8(unicode::ByteToCodePoint(static_cast<uint8_t>(c)), mapped);
      const int32_t id = impl_->mergeable.Find(mapped);
      if (id >= 0) {
        out.push_back(id);
        continue;
      }
    }
    // A word longer than int32 symbols is split into pieces (never happens with real text).
    constexpr size_t kMaxWord = size_t{1} << 30;
    while (!word.empty()) {
      std::string_view part = word.substr(0, kMaxWord);
      word.remove_prefix(part.size());
      symbols.clear();
      const auto count = static_cast<int32_t>(part.size());
      for (int32_t i = 0; i < count; ++i) {
        symbols.push_back(
            {impl_->byte_token[static_cast<uint8_t>(part[i])], i - 1, i + 1 == count ? -1 : i + 1});
      }
      for (int32_t i = 1; i < count; ++i) try_add(i - 1, i);
      while (!queue.empty()) {
        const Bigram b = queue.top();
        queue.pop();
        Symbol& left = symbols[b.left];
        Symbol& right = symbols[b.right];
        // Stale unless both sides are unchanged and still adjacent (a symbol's id only changes
        // by growing, so an equal id means an equal span).
        if (left.id != b.left_id || right.id != b.right_id || left.next != b.right) continue;
        left.id = b.result;
        right.id = -2;  // merged away
        left.next = right.next;
        right.prev = right.next = -1;
        if (left.next >= 0) symbols[left.next].prev = b.left;
        try_add(left.prev, b.left);
        try_add(b.left, left.next);
      }
      for (int32_t i = 0; i >= 0; i = symbols[i].next) {
        const int32_t id = symbols[i].id;
        if (id >= 0) {
          out.push_back(id);
        } else if (unk_id_ >= 0) {
          out.push_back(unk_id_);
        }
      }
    }
  }
}

}  // namespace sextant
