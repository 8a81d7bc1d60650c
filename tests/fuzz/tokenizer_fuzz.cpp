// The tokenizers on any text: SentencePiece-style (with byte fallback and a user-defined token)
// and byte-level BPE. Properties every text keeps: ids are in the vocabulary, the llama
// vocabulary decodes back to the text, and EncodeAtMost agrees with Encode at any limit.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using sextant::Tokenizer;
using sextant::TokenType;
using sextant::VocabData;
using sextant::VocabKind;

std::unique_ptr<Tokenizer> Llama() {
  VocabData v;
  v.kind = VocabKind::kLlama;
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    v.tokens.push_back(name);
    v.types.push_back(TokenType::kByte);
  }
  v.scores.assign(v.tokens.size(), 0.0f);
  // "▁" is U+2581, "é" U+00E9.
  const std::string pieces[] = {"\u2581",       "a",    "b", "ab", "\u2581a", "ba", "\u00e9",
                                "\u2581\u2581", "<tag>"};
  float score = -1;
  for (const std::string& p : pieces) {
    v.tokens.push_back(p);
    v.types.push_back(p == "<tag>" ? TokenType::kUserDefined : TokenType::kNormal);
    v.scores.push_back(score--);
  }
  v.bos_id = 1;
  v.eos_id = 2;
  v.unk_id = 0;
  auto t = Tokenizer::FromVocab(v);
  return t.ok() ? std::move(t).value() : nullptr;
}

std::unique_ptr<Tokenizer> Gpt2() {
  VocabData v;
  v.kind = VocabKind::kGpt2;
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    const uint32_t cp = printable ? static_cast<uint32_t>(b) : next++;
    std::string s;
    if (cp < 0x80) {
      s.push_back(static_cast<char>(cp));
    } else {
      s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    v.tokens.push_back(s);
  }
  // "Ġ" (U+0120) is the mapped space.
  for (const char* m : {"a b", "ab c", "\u0120 a", "\u0120a b"}) {
    std::string joined = m;
    joined.erase(joined.find(' '), 1);
    v.tokens.push_back(joined);
    v.merges.push_back(m);
  }
  v.tokens.push_back("<|endoftext|>");
  v.types.assign(v.tokens.size(), TokenType::kNormal);
  v.types.back() = TokenType::kControl;
  v.bos_id = v.eos_id = static_cast<int32_t>(v.tokens.size() - 1);
  auto t = Tokenizer::FromVocab(v);
  return t.ok() ? std::move(t).value() : nullptr;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::unique_ptr<Tokenizer> llama = Llama();
  static const std::unique_ptr<Tokenizer> gpt2 = Gpt2();
  SEXTANT_FUZZ_CHECK(llama && gpt2);
  if (size < 2) return 0;
  const bool use_llama = (data[0] & 1) == 0;
  const size_t limit = data[1];
  const std::string text(reinterpret_cast<const char*>(data + 2), size - 2);
  const Tokenizer& tok = use_llama ? *llama : *gpt2;
  const std::vector<int32_t> ids = tok.Encode(text, false);
  for (int32_t id : ids) SEXTANT_FUZZ_CHECK(id >= 0 && id < tok.vocab_size());
  if (use_llama && text.find("<tag>") == std::string::npos &&
      text.find("\u2581") == std::string::npos) {
    // Every byte has a token, so nothing is lost (the user-defined token decodes as itself too,
    // but a control-token text would not, and a "▁" in the text decodes as the space it stands
    // for in SentencePiece vocabularies).
    SEXTANT_FUZZ_CHECK(tok.Decode(ids) == text);
  }
  const auto bounded = tok.EncodeAtMost(text, false, limit);
  if (ids.size() <= limit) {
    SEXTANT_FUZZ_CHECK(bounded.has_value() && *bounded == ids);
  } else {
    SEXTANT_FUZZ_CHECK(!bounded.has_value());
  }
  sextant::StreamDecoder stream(tok);
  std::string streamed;
  for (int32_t id : ids) streamed += stream.Push(id);
  streamed += stream.Flush();
  (void)streamed;
  return 0;
}
