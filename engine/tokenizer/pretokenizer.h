// Pre-tokenizers of byte-level BPE vocabularies: the regex splits each model family declares in
// tokenizer.ggml.pre (the same splits as the family's tokenizer.json, in the form llama.cpp's
// converter names them), run by a small regex engine over code points.
//
// SplitPattern: one compiled regex. The supported syntax is what the families' patterns use:
// alternation, groups (...), (?:...), (?i:...) (ASCII letters match either case), lookahead
// (?=...) / (?!...), greedy quantifiers ? * + {n} {n,} {n,m}, classes [...] / [^...] with ranges,
// the escapes \s \S \p{X} \P{X} (X a general category such as L, N, P, Lu, Nd) \r \n \t \f \v
// and escaped punctuation, '.', and the anchors ^ $ (start / end of the piece being split).
// Matching is leftmost-first (Perl / Oniguruma order, as Hugging Face tokenizers): the first
// alternative that lets the whole pattern match wins, quantifiers are greedy with backtracking.
// \s is the Unicode White_Space property. Bytes that are not UTF-8 count as characters outside
// every class. Anything else (backreferences, lazy or possessive quantifiers, lookbehind) is
// refused with an error naming the offset.
//
// PreTokenizer: the sequence of patterns of one family. Each pattern splits every piece the
// previous one produced into its matches and the text between them (Hugging Face's Split with
// behavior "Isolated"); the pieces are then BPE-encoded one by one. A stage marked byte_level
// runs on the byte-level mapped text (each byte as its printable code point, as Hugging Face's
// pre-tokenizers that follow ByteLevel see it: Falcon's digit splits).
//
// Thread-safety: both are immutable after construction; Split may be called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/base/status.h"

namespace sextant::unicode {

// A piece of text as code points, with each code point's byte offset (offsets has one entry
// more: the end). Invalid UTF-8 bytes are single entries with cp = kInvalidCodePoint.
struct CodePoints {
  static constexpr uint32_t kInvalidCodePoint = 0xFFFFFFFF;
  std::vector<uint32_t> cp;
  std::vector<uint32_t> offset;
  static CodePoints Decode(std::string_view text);
};

class SplitPattern {
 public:
  // INVALID_ARGUMENT naming the offset for syntax this engine does not support.
  static Result<SplitPattern> Compile(std::string_view pattern);

  // Appends to `out` the pieces of cps[begin, end): each match and each stretch between matches,
  // in order, as (first, last) code point index pairs (last exclusive). Empty matches are skipped.
  void Split(const CodePoints& cps, size_t begin, size_t end,
             std::vector<std::pair<size_t, size_t>>& out) const;

  // Length in code points of the leftmost-first match starting exactly at `pos` within
  // [begin, end), or -1. Exposed for tests.
  int64_t MatchAt(const CodePoints& cps, size_t begin, size_t end, size_t pos) const;

  const std::string& pattern() const { return pattern_; }

  struct Inst;      // one instruction of the compiled program (pretokenizer.cpp)
  struct ClassSet;  // one character class

  SplitPattern();
  ~SplitPattern();
  SplitPattern(SplitPattern&&) noexcept;
  SplitPattern& operator=(SplitPattern&&) noexcept;
  SplitPattern(const SplitPattern&);
  SplitPattern& operator=(const SplitPattern&);

 private:
  std::string pattern_;
  std::vector<Inst> program_;
  std::vector<ClassSet> classes_;
  bool Run(const CodePoints& cps, size_t begin, size_t end, size_t pc, size_t pos,
           size_t& match_end) const;
};

class PreTokenizer {
 public:
  // The pre-tokenizer of a tokenizer.ggml.pre name ("llama-bpe", "qwen2", "deepseek-llm",
  // "deepseek-coder", "falcon", "starcoder", "refact", "gpt-2", "gpt-neox", "mpt", ...).
  // UNIMPLEMENTED naming the name (and the supported ones) for any other.
  static Result<PreTokenizer> ForName(std::string_view name);
  struct Stage {
    std::string pattern;
    bool byte_level = false;
    bool operator==(const Stage&) const = default;
  };
  // From explicit stages (tests, or a converter's tokenizer.json splits).
  static Result<PreTokenizer> FromStages(const std::vector<Stage>& stages);
  // The names ForName accepts.
  static std::vector<std::string> Names();
  // The stages of a name (empty for an unknown name) and whether it ignores merges.
  static std::vector<Stage> StagesOf(std::string_view name, bool* ignore_merges = nullptr);
  // The first name whose stages are exactly `stages` (Llama 3's name for its pattern), or "".
  static std::string NameOfStages(const std::vector<Stage>& stages);

  // Byte ranges (offset, length) of the pieces of `text`, in order, covering it.
  std::vector<std::pair<size_t, size_t>> Split(std::string_view text) const;

  // Llama 3's BPE: a piece that is itself a vocabulary token is taken whole (tokenizer.json's
  // model.ignore_merges).
  bool ignore_merges() const { return ignore_merges_; }

 private:
  std::vector<std::pair<SplitPattern, bool>> patterns_;  // (pattern, byte_level)
  bool ignore_merges_ = false;
};

}  // namespace sextant::unicode
