// Tokenizers built from a GGUF file's vocabulary metadata (tokenizer.ggml.*).
//
// Two vocabulary kinds are supported:
//   - "llama": SentencePiece-style BPE with scores. The highest-scoring adjacent pair is merged
//     repeatedly; bytes that form no token fall back to <0xNN> byte tokens; spaces become U+2581
//     ("▁") and a leading space is added when tokenizer.ggml.add_space_prefix is true (the
//     default). Matches llama.cpp's SPM tokenizer.
//   - "gpt2": byte-level BPE. Text is split by the pre-tokenizer the vocabulary declares in
//     tokenizer.ggml.pre (engine/tokenizer/pretokenizer.h: llama-bpe, qwen2, deepseek-llm,
//     deepseek-coder, deepseek-v3, falcon, starcoder, refact, gpt-2, gpt-neox, mpt, ...; absent
//     means GPT-2's), bytes are mapped to printable code points, and merges
//     (tokenizer.ggml.merges) are applied by rank. Llama 3's pre-tokenizer also takes a piece that
//     is a whole vocabulary token without merging (ignore_merges). Any other pre-tokenizer name is
//     refused as UNIMPLEMENTED naming it.
// User-defined tokens (token type 4) are matched as whole pieces in the input text before
// pre-tokenization; control tokens (BOS, EOS, <|eot_id|> ...) too when EncodeOptions::
// parse_special is set (chat templates), and are otherwise tokenized as plain text.
//
// The metadata is treated as hostile input: mismatched array lengths, ids out of range, merges
// naming unknown tokens and empty vocabularies are rejected with an error naming the key.
//
// Thread-safety: a Tokenizer is immutable after construction; Encode/Decode/Piece may be called
// from any number of threads concurrently. A StreamDecoder holds per-stream state and needs
// external synchronization (use one per stream).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/base/status.h"

namespace sextant {

namespace gguf {
class GgufFile;
}

// GGUF token types (tokenizer.ggml.token_type), with GGUF's values.
enum class TokenType : uint8_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

enum class VocabKind : uint8_t {
  kLlama,  // tokenizer.ggml.model = "llama" (SentencePiece BPE with scores)
  kGpt2,   // tokenizer.ggml.model = "gpt2" (byte-level BPE with merges)
};
std::string_view VocabKindName(VocabKind kind);  // "llama" / "gpt2"

// A vocabulary as plain data: what FromGguf reads from the metadata, and what tests build in
// code. Optional fields left unset take the defaults of the vocabulary kind.
struct VocabData {
  VocabKind kind = VocabKind::kLlama;
  std::vector<std::string> tokens;  // tokenizer.ggml.tokens; required, non-empty
  std::vector<float> scores;        // tokenizer.ggml.scores; empty or tokens.size()
  std::vector<TokenType> types;  // tokenizer.ggml.token_type; empty (all normal) or tokens.size()
  std::vector<std::string> merges;  // tokenizer.ggml.merges, "left right"; gpt2 only
  std::optional<int32_t> bos_id, eos_id, unk_id, pad_id, eot_id, eom_id;
  std::optional<bool> add_bos;           // llama: true, gpt2: false
  std::optional<bool> add_eos;           // false
  std::optional<bool> add_space_prefix;  // llama: true, gpt2: false
  std::string pre;                       // tokenizer.ggml.pre; gpt2 only; empty: GPT-2's
};

// How Encode turns text into ids.
struct EncodeOptions {
  bool add_bos = false;        // put the BOS id first (when the vocabulary has one)
  bool add_eos = false;        // put the EOS id last (when the vocabulary has one)
  bool parse_special = false;  // control-token texts in the input become those tokens
};

class Tokenizer {
 public:
  // Reads tokenizer.ggml.* from the file. Errors: INVALID_ARGUMENT naming the key for missing,
  // mistyped or inconsistent metadata; UNIMPLEMENTED for an unsupported tokenizer.ggml.model.
  static Result<std::unique_ptr<Tokenizer>> FromGguf(const gguf::GgufFile& file);
  // Validates `data` and builds the lookup tables. Same errors as FromGguf (keys named as in GGUF).
  static Result<std::unique_ptr<Tokenizer>> FromVocab(VocabData data);

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Token ids for `text` (any bytes; invalid UTF-8 is tokenized byte by byte). With add_bos, the
  // BOS id is put first when the vocabulary has one. Control-token text such as "<s>" in the input
  // is tokenized as plain text. Never fails.
  std::vector<int32_t> Encode(std::string_view text, bool add_bos) const;
  std::vector<int32_t> Encode(std::string_view text, const EncodeOptions& options) const;
  // The options of a prompt as the vocabulary's metadata asks: add_bos(), add_eos(), no special
  // parsing.
  EncodeOptions PromptOptions() const { return {add_bos_, add_eos_, false}; }
  // Encode for text from the network, where the text may be megabytes and the context only
  // thousands of tokens: nullopt as soon as the ids would be more than `max_tokens`. A text
  // longer than max_tokens times the longest vocabulary piece is refused without being looked
  // at; otherwise encoding stops after the first word that passes the limit. Otherwise equal
  // to Encode(text, options).
  std::optional<std::vector<int32_t>> EncodeAtMost(std::string_view text,
                                                   const EncodeOptions& options,
                                                   size_t max_tokens) const;
  std::optional<std::vector<int32_t>> EncodeAtMost(std::string_view text, bool add_bos,
                                                   size_t max_tokens) const;

  // The text of `ids`: "▁" becomes a space (llama), byte tokens become raw bytes, control tokens
  // produce nothing, ids out of range are skipped. With add_space_prefix (llama) and
  // strip_leading_space, the leading space of the first piece is removed, so
  // Decode(Encode(s, any)) == s; pass false to decode a continuation of earlier text (generated
  // ids), whose leading space is real. The result holds the raw bytes (it may be invalid UTF-8
  // when the ids split a character; StreamDecoder handles streaming).
  std::string Decode(std::span<const int32_t> ids, bool strip_leading_space = true) const;

  // The vocabulary string of `id` as stored in the metadata (e.g. "▁Hello", "<0x0A>", "Ġworld");
  // empty for an id out of range.
  std::string_view Piece(int32_t id) const;
  // The bytes `id` stands for in decoded text ("▁Hello" -> " Hello", "<0x0A>" -> "\n"); empty for
  // control tokens and ids out of range. Valid as long as the Tokenizer.
  std::string_view TokenBytes(int32_t id) const;

  VocabKind kind() const { return kind_; }
  int32_t vocab_size() const { return static_cast<int32_t>(tokens_.size()); }
  TokenType token_type(int32_t id) const;
  int32_t bos_id() const { return bos_id_; }  // -1 when the vocabulary has none
  int32_t eos_id() const { return eos_id_; }  // -1 when the vocabulary has none
  int32_t unk_id() const { return unk_id_; }  // -1 when the vocabulary has none
  int32_t pad_id() const { return pad_id_; }  // -1 when the vocabulary has none
  // Whether prompts should start with BOS / end with EOS (tokenizer.ggml.add_bos_token /
  // add_eos_token, or the kind's default).
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  bool add_space_prefix() const { return add_space_prefix_; }
  // The pre-tokenizer name (tokenizer.ggml.pre; "gpt-2" when absent); empty for llama vocabularies.
  const std::string& pre() const { return pre_; }
  // True for ids that end a generation: EOS, EOT, EOM and control tokens such as <|eot_id|>,
  // <|im_end|>, <|endoftext|>.
  bool IsEog(int32_t id) const;
  // Id of an exact vocabulary string, or -1.
  int32_t Find(std::string_view piece) const;

 private:
  struct Impl;
  Tokenizer();
  // FromVocab with the merges read from `merges` (data.merges is ignored), so that FromGguf need
  // not copy the file's merge list, often the largest part of a vocabulary.
  static Result<std::unique_ptr<Tokenizer>> Build(VocabData data,
                                                  std::span<const std::string> merges);
  std::vector<int32_t> EncodeUpTo(std::string_view text, const EncodeOptions& options,
                                  size_t limit) const;
  // These stop after the word that takes `out` past `limit` ids.
  // REQUIRES: text is SentencePiece-normalized (spaces as U+2581) and free of user-defined tokens.
  void EncodeLlama(std::string_view text, std::vector<int32_t>& out, size_t limit) const;
  // REQUIRES: text is free of user-defined tokens.
  void EncodeGpt2(std::string_view text, std::vector<int32_t>& out, size_t limit) const;
  void EncodeText(std::string_view text, size_t limit, std::vector<int32_t>& out) const;

  // Immutable after FromVocab returns.
  VocabKind kind_ = VocabKind::kLlama;
  int32_t bos_id_ = -1, eos_id_ = -1, unk_id_ = -1, pad_id_ = -1;
  bool add_bos_ = false, add_eos_ = false, add_space_prefix_ = false;
  std::string pre_;
  std::vector<std::string> tokens_;
  std::unique_ptr<Impl> impl_;                    // lookup tables built once
  mutable std::atomic<size_t> longest_piece_{0};  // bytes; computed on first use
};

// Turns a stream of ids into text that is always complete UTF-8: bytes of a character split over
// several tokens are held back until the character is complete. Bytes that can never form a valid
// character are emitted as U+FFFD. No leading space is removed (a stream usually continues a
// prompt). Not thread-safe: one StreamDecoder per stream; the Tokenizer must outlive it.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}

  // The text that `id` completes; may be empty while a character is incomplete.
  std::string Push(int32_t id);
  // Whatever is held back, incomplete sequences as U+FFFD; resets the decoder.
  std::string Flush();

 private:
  const Tokenizer& tokenizer_;
  std::string pending_;  // bytes not yet emitted: at most one incomplete UTF-8 sequence
};

}  // namespace sextant
