// A GGUF vocabulary (tokenizer.ggml.*) from a Hugging Face tokenizer.json and, beside it,
// tokenizer_config.json (special tokens, add_bos/add_eos, chat template), built the way
// llama.cpp's converter builds it:
//   - byte-level BPE (a ByteLevel pre-tokenizer or decoder): model "gpt2", tokens by id with
//     added tokens (special ones CONTROL, others USER_DEFINED) and "[PAD<id>]" UNUSED fillers for
//     ids no token has, merges as "left right", and tokenizer.ggml.pre named after the family
//     whose splits the pre_tokenizer spells (engine/tokenizer/pretokenizer.h); a pre_tokenizer
//     of no known family is refused with its patterns in the message;
//   - SentencePiece-style BPE (byte_fallback with "▁" for spaces): model "llama", <0xNN> tokens
//     BYTE, the unknown token UNKNOWN, scores from the merge ranks (the first merge the highest),
//     add_space_prefix when the normalizer or pre-tokenizer prepends "▁".
// BOS/EOS/PAD come from tokenizer_config.json (bos_token, eos_token, pad_token, as strings or
// {content}); add_bos/add_eos from its add_bos_token/add_eos_token, else from the
// post_processor's template, else the family's default (Llama 3: BOS).
//
// Every malformed or inconsistent input is an INVALID_ARGUMENT naming the file and the field.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "engine/base/status.h"

namespace sextant::gguf {

struct HfVocab {
  std::string model;  // "gpt2" or "llama"
  std::string pre;    // gpt2: the pre-tokenizer name
  std::vector<std::string> tokens;
  std::vector<float> scores;         // llama only
  std::vector<int32_t> token_types;  // GGUF token types, one per token
  std::vector<std::string> merges;   // gpt2 only
  std::optional<uint32_t> bos_id, eos_id, unk_id, pad_id;
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = false;  // llama only
  std::string chat_template;      // empty when the config has none
};

// Parses the two texts (config may be empty: no tokenizer_config.json). `name` names the
// tokenizer.json in error messages.
Result<HfVocab> HfVocabFromJson(const std::string& tokenizer_json, const std::string& config_json,
                                const std::string& name = "tokenizer.json");
// Reads tokenizer.json and the tokenizer_config.json beside it (when present).
Result<HfVocab> HfVocabFromFile(const std::filesystem::path& tokenizer_json);

}  // namespace sextant::gguf
