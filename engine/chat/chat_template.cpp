#include "engine/chat/chat_template.h"

#include <array>
#include <utility>

#include "engine/gguf/gguf.h"
#include "engine/tokenizer/tokenizer.h"

namespace sextant::chat {
namespace {

// The built-in templates, written for this engine in the Jinja subset it runs. Each gives the
// conversation format its family was trained on; the tests render every one with the reference
// interpreter too.
constexpr std::string_view kChatMl = R"({%- for message in messages -%}
{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%})";

// Qwen 2 and Qwen 2.5: ChatML with a default system message.
constexpr std::string_view kQwen2 = R"({%- if messages[0]['role'] != 'system' -%}
{{- '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' -}}
{%- endif -%}
{%- for message in messages -%}
{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%})";

constexpr std::string_view kQwen25 = R"({%- if messages[0]['role'] != 'system' -%}
{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' -}}
{%- endif -%}
{%- for message in messages -%}
{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%})";

constexpr std::string_view kLlama3 = R"({{- bos_token -}}
{%- for message in messages -%}
{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}{%- endif -%})";

// Llama 2 chat: the system message inside the first [INST] block.
constexpr std::string_view kLlama2 = R"({%- if messages[0]['role'] == 'system' -%}
{%- set system_message = messages[0]['content'] -%}{%- set loop_messages = messages[1:] -%}
{%- else -%}
{%- set system_message = '' -%}{%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
{{- raise_exception('llama2: after an optional system message, roles must alternate user, assistant, user, ...') -}}
{%- endif -%}
{%- if message['role'] == 'user' -%}
{%- if loop.first and system_message -%}
{%- set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] -%}
{%- else -%}
{%- set content = message['content'] -%}
{%- endif -%}
{{- bos_token + '[INST] ' + content | trim + ' [/INST]' -}}
{%- else -%}
{{- ' ' + message['content'] | trim + ' ' + eos_token -}}
{%- endif -%}
{%- endfor -%})";

// Mistral Instruct: [INST] blocks; a system message goes before the first user message.
constexpr std::string_view kMistral = R"({{- bos_token -}}
{%- if messages[0]['role'] == 'system' -%}
{%- set system_message = messages[0]['content'] -%}{%- set loop_messages = messages[1:] -%}
{%- else -%}
{%- set system_message = '' -%}{%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
{{- raise_exception('mistral: after an optional system message, roles must alternate user, assistant, user, ...') -}}
{%- endif -%}
{%- if message['role'] == 'user' -%}
{%- if loop.first and system_message -%}
{{- '[INST] ' + system_message + '\n\n' + message['content'] + ' [/INST]' -}}
{%- else -%}
{{- '[INST] ' + message['content'] + ' [/INST]' -}}
{%- endif -%}
{%- else -%}
{{- ' ' + message['content'] | trim + eos_token -}}
{%- endif -%}
{%- endfor -%})";

constexpr std::string_view kPhi3 = R"({%- for message in messages -%}
{{- '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|assistant|>\n' -}}{%- else -%}{{- eos_token -}}{%- endif -%})";

// Gemma and Gemma 2: turns of user and model; a system message is put before the first user
// message (as Gemma 3 does), since these models have no system role.
constexpr std::string_view kGemma = R"({{- bos_token -}}
{%- if messages[0]['role'] == 'system' -%}
{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}{%- set loop_messages = messages[1:] -%}
{%- else -%}
{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
{{- raise_exception('gemma: after an optional system message, roles must alternate user, assistant, user, ...') -}}
{%- endif -%}
{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}
{{- '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') + message['content'] | trim + '<end_of_turn>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<start_of_turn>model\n' -}}{%- endif -%})";

// DeepSeek V2.5 / V3 / R1: system messages first, then User and Assistant markers.
constexpr std::string_view kDeepSeek = R"({{- bos_token -}}
{%- set ns = namespace(system='') -%}
{%- for message in messages if message['role'] == 'system' -%}
{%- set ns.system = ns.system + ('\n\n' if ns.system else '') + message['content'] -%}
{%- endfor -%}
{{- ns.system -}}
{%- for message in messages -%}
{%- if message['role'] == 'user' -%}
{{- '<｜User｜>' + message['content'] -}}
{%- elif message['role'] == 'assistant' -%}
{{- '<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<｜Assistant｜>' -}}{%- endif -%})";

// For models without a template (base models): labelled turns after BOS.
constexpr std::string_view kPlain = R"({{- bos_token -}}
{%- for message in messages -%}
{%- if message['role'] == 'system' -%}
{{- message['content'] + '\n\n' -}}
{%- elif message['role'] == 'user' -%}
{{- 'User: ' + message['content'] + '\n' -}}
{%- else -%}
{{- 'Assistant: ' + message['content'] + '\n' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- 'Assistant:' -}}{%- endif -%})";

constexpr std::array<std::pair<std::string_view, std::string_view>, 10> kBuiltins = {{
    {"chatml", kChatMl},
    {"deepseek", kDeepSeek},
    {"gemma", kGemma},
    {"llama2", kLlama2},
    {"llama3", kLlama3},
    {"mistral", kMistral},
    {"phi3", kPhi3},
    {"plain", kPlain},
    {"qwen2", kQwen2},
    {"qwen2.5", kQwen25},
}};

std::string TokenText(const Tokenizer& tok, int32_t id) {
  return id >= 0 ? std::string(tok.Piece(id)) : std::string();
}

}  // namespace

std::optional<std::string_view> BuiltinTemplate(std::string_view name) {
  for (const auto& [n, text] : kBuiltins) {
    if (n == name) return text;
  }
  return std::nullopt;
}

std::vector<std::string> BuiltinTemplateNames() {
  std::vector<std::string> names;
  for (const auto& [n, text] : kBuiltins) names.emplace_back(n);
  return names;
}

std::string BuiltinTemplateList() {
  std::string out;
  for (const auto& [n, text] : kBuiltins) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

Result<ChatFormatter> ChatFormatter::FromSource(std::string_view source, std::string origin,
                                                std::string bos_token, std::string eos_token) {
  Result<jinja::Template> t = jinja::Template::Parse(source);
  if (!t.ok()) return t.status().WithContext(origin);
  return ChatFormatter(std::move(t).value(), std::move(origin), std::move(bos_token),
                       std::move(eos_token));
}

Result<ChatFormatter> ChatFormatter::Builtin(std::string_view name, std::string bos_token,
                                             std::string eos_token) {
  const std::optional<std::string_view> text = BuiltinTemplate(name);
  if (!text) {
    return Status::InvalidArgument("unknown chat template '" + std::string(name) +
                                   "' (built-in templates: " + BuiltinTemplateList() + ")");
  }
  return FromSource(*text, "built-in " + std::string(name), std::move(bos_token),
                    std::move(eos_token));
}

Result<ChatFormatter> ChatFormatter::ForModel(const gguf::GgufFile& file,
                                              const Tokenizer& tokenizer,
                                              std::string_view override_name) {
  std::string bos = TokenText(tokenizer, tokenizer.bos_id());
  std::string eos = TokenText(tokenizer, tokenizer.eos_id());
  if (!override_name.empty()) return Builtin(override_name, std::move(bos), std::move(eos));
  if (file.Find("tokenizer.chat_template") == nullptr) {
    SEXTANT_ASSIGN_OR_RETURN(ChatFormatter f, Builtin("plain", std::move(bos), std::move(eos)));
    f.origin_ = "built-in plain (the model has no tokenizer.chat_template)";
    return f;
  }
  Result<std::string> source = file.GetString("tokenizer.chat_template");
  if (!source.ok()) return source.status();
  Result<ChatFormatter> f =
      FromSource(*source, "tokenizer.chat_template", std::move(bos), std::move(eos));
  if (!f.ok()) {
    return Status::InvalidArgument(f.status().message() + "; choose a built-in template instead (" +
                                   BuiltinTemplateList() + ")");
  }
  return f;
}

Result<std::string> ChatFormatter::Format(std::span<const Message> messages,
                                          const FormatOptions& options) const {
  if (messages.empty()) return Status::InvalidArgument("the conversation has no messages");
  std::vector<jinja::Value> list;
  list.reserve(messages.size());
  for (const Message& m : messages) {
    jinja::Dict d;
    d.Set("role", jinja::Value(m.role));
    d.Set("content", jinja::Value(m.content));
    list.emplace_back(std::move(d));
  }
  jinja::Dict vars;
  vars.Set("messages", jinja::Value(std::move(list)));
  vars.Set("add_generation_prompt", jinja::Value(options.add_generation_prompt));
  vars.Set("bos_token", jinja::Value(bos_));
  vars.Set("eos_token", jinja::Value(eos_));
  if (options.enable_thinking) vars.Set("enable_thinking", jinja::Value(*options.enable_thinking));
  Result<std::string> text = template_.Render(vars);
  if (!text.ok()) return text.status().WithContext(origin_);
  return text;
}

Result<std::vector<int32_t>> ChatFormatter::Tokenize(const Tokenizer& tokenizer,
                                                     std::span<const Message> messages,
                                                     const FormatOptions& options) const {
  SEXTANT_ASSIGN_OR_RETURN(std::string text, Format(messages, options));
  EncodeOptions encode;
  encode.parse_special = true;
  return tokenizer.Encode(text, encode);
}

}  // namespace sextant::chat
