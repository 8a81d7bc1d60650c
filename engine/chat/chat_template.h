// Conversations formatted the way a model was trained: the model file's own chat template
// (tokenizer.chat_template, a Jinja program run by engine/chat/jinja.h) or a built-in one chosen
// by name. Every front end formats through a ChatFormatter (`sextant run --chat`, validation
// prompts given as messages, the agent's /v1/chat/completions), so one conversation gives the
// same tokens, and the same validation digest, on every machine.
//
// Which template formats a conversation:
//   1. a built-in template named by the caller (--chat-template NAME, the spec's
//      engine.chat_template): for files whose own template is absent or fails;
//   2. else the file's tokenizer.chat_template; one that does not parse is an error naming the
//      offset (and suggesting a built-in);
//   3. else (no template in the file, e.g. a base model) the built-in "plain" template, and
//      origin() says so.
// The template's variables: messages (a list of {role, content}), add_generation_prompt,
// bos_token, eos_token (the vocabulary's texts, "" when it has none) and, when set,
// enable_thinking (Qwen 3). strftime_now is not defined, so a template's date is its fixed
// fallback and a rendering depends on nothing but its inputs.
//
// Thread-safety: a ChatFormatter is immutable after construction; Format and Tokenize may be
// called from several threads at once.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/status.h"
#include "engine/chat/jinja.h"

namespace sextant {
class Tokenizer;
namespace gguf {
class GgufFile;
}
}  // namespace sextant

namespace sextant::chat {

struct Message {
  std::string role;  // system, user, assistant (templates may accept others, e.g. tool)
  std::string content;

  friend bool operator==(const Message&, const Message&) = default;
};

struct FormatOptions {
  // End with the header of the assistant's turn (what a generation continues from).
  bool add_generation_prompt = true;
  // Qwen 3: false asks the template for an empty thinking block; unset leaves it undefined.
  std::optional<bool> enable_thinking;
};

// The built-in templates: "chatml", "deepseek", "gemma", "llama2", "llama3", "mistral", "phi3",
// "plain", "qwen2", "qwen2.5". nullopt for any other name.
std::optional<std::string_view> BuiltinTemplate(std::string_view name);
std::vector<std::string> BuiltinTemplateNames();
// "chatml, deepseek, ..." for error messages and --help.
std::string BuiltinTemplateList();

class ChatFormatter {
 public:
  // The formatter for a model: the built-in `override_name` when non-empty, else the file's
  // tokenizer.chat_template, else "plain". INVALID_ARGUMENT for an unknown override name, or
  // for a file template that does not parse (naming its offset and the override to use).
  static Result<ChatFormatter> ForModel(const gguf::GgufFile& file, const Tokenizer& tokenizer,
                                        std::string_view override_name = {});
  // A formatter for template text; `bos_token` / `eos_token` are the texts the template sees.
  // INVALID_ARGUMENT naming the offset when the text does not parse.
  static Result<ChatFormatter> FromSource(std::string_view source, std::string origin,
                                          std::string bos_token, std::string eos_token);
  // A built-in template by name (INVALID_ARGUMENT listing the names otherwise).
  static Result<ChatFormatter> Builtin(std::string_view name, std::string bos_token,
                                       std::string eos_token);

  // The conversation as text. INVALID_ARGUMENT for an empty conversation, or when the template
  // refuses it (raise_exception: roles out of order ...) or fails, naming the offset.
  Result<std::string> Format(std::span<const Message> messages,
                             const FormatOptions& options = {}) const;
  // Format, then the token ids of that text: control-token texts in it become those tokens and
  // nothing is added around it (the template places BOS itself, as Hugging Face's
  // apply_chat_template does). Same errors as Format.
  Result<std::vector<int32_t>> Tokenize(const Tokenizer& tokenizer,
                                        std::span<const Message> messages,
                                        const FormatOptions& options = {}) const;

  // Where the template came from: "tokenizer.chat_template", "built-in llama3", or
  // "built-in plain (the model has no tokenizer.chat_template)".
  const std::string& origin() const { return origin_; }

 private:
  ChatFormatter(jinja::Template tmpl, std::string origin, std::string bos, std::string eos)
      : template_(std::move(tmpl)),
        origin_(std::move(origin)),
        bos_(std::move(bos)),
        eos_(std::move(eos)) {}

  jinja::Template template_;
  std::string origin_;
  std::string bos_, eos_;
};

}  // namespace sextant::chat
