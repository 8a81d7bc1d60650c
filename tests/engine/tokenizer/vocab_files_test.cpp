// Tokenizers read from real GGUF vocabularies: llama.cpp's tokenizer test vectors
// (models/vocab/NAME.gguf.inp / .out) and the stories260K model.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/gguf/gguf.h"
#include "engine/tokenizer/tokenizer.h"

namespace sextant {
namespace {

namespace fs = std::filesystem;

fs::path ModelsDir() { return fs::path(SEXTANT_SHARED_DIR) / "models"; }

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::unique_ptr<Tokenizer> Load(const fs::path& path) {
  auto file = gguf::GgufFile::Open(path);
  EXPECT_TRUE(file.ok()) << file.status().ToString();
  if (!file.ok()) return nullptr;
  auto tok = Tokenizer::FromGguf(**file);
  EXPECT_TRUE(tok.ok()) << tok.status().ToString();
  return tok.ok() ? std::move(tok).value() : nullptr;
}

std::string Escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

struct VocabCase {
  std::string text;
  std::vector<int32_t> ids;
};

// The .inp file holds the texts, each followed by "\n__ggml_vocab_test__\n" (the newlines belong
// to the separator, so a text never carries the newline before it); the .out file one line of
// ids per text, without BOS.
std::vector<VocabCase> ReadCases(const fs::path& inp, const fs::path& out) {
  const std::string raw = ReadAll(inp);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (size_t pos = 0; pos < raw.size();) {
    const size_t next = raw.find(sep, pos);
    if (next == std::string::npos) {
      texts.push_back(raw.substr(pos));
      break;
    }
    texts.push_back(raw.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::vector<VocabCase> cases;
  std::istringstream lines(ReadAll(out));
  std::string line;
  for (size_t i = 0; std::getline(lines, line); ++i) {
    VocabCase c;
    if (i < texts.size()) c.text = texts[i];
    std::istringstream ids(line);
    for (int32_t id; ids >> id;) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  EXPECT_EQ(cases.size(), texts.size()) << inp << " and " << out << " disagree on the count";
  return cases;
}

class VocabFile : public ::testing::TestWithParam<const char*> {};

TEST_P(VocabFile, TokenizesLikeTheReference) {
  const fs::path model = ModelsDir() / "vocab" / GetParam();
  if (!fs::exists(model)) GTEST_SKIP() << model << " is absent (no ../shared checkout)";
  auto tok = Load(model);
  ASSERT_TRUE(tok);
  const auto cases = ReadCases(model.string() + ".inp", model.string() + ".out");
  ASSERT_GT(cases.size(), 10u);
  int passed = 0, round_trips = 0;
  for (const auto& c : cases) {
    const std::vector<int32_t> got = tok->Encode(c.text, /*add_bos=*/false);
    if (got == c.ids) {
      ++passed;
    } else {
      ADD_FAILURE() << "\"" << Escape(c.text) << "\": got " << ::testing::PrintToString(got)
                    << ", want " << ::testing::PrintToString(c.ids);
    }
    const std::string back = tok->Decode(tok->Encode(c.text, tok->add_bos()));
    if (back == c.text) {
      ++round_trips;
    } else {
      ADD_FAILURE() << "round trip of \"" << Escape(c.text) << "\" gave \"" << Escape(back) << "\"";
    }
  }
  std::printf("%s: %d/%zu tokenized as expected, %d/%zu round trips\n", GetParam(), passed,
              cases.size(), round_trips, cases.size());
  EXPECT_EQ(passed, static_cast<int>(cases.size()));
}

INSTANTIATE_TEST_SUITE_P(Reference, VocabFile,
                         ::testing::Values("ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf"),
                         [](const auto& param_info) {
                           std::string name = param_info.param;
                           name = name.substr(0, name.find(".gguf"));
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

TEST(VocabFile, LlamaSpmMetadata) {
  const fs::path model = ModelsDir() / "vocab" / "ggml-vocab-llama-spm.gguf";
  if (!fs::exists(model)) GTEST_SKIP() << model << " is absent (no ../shared checkout)";
  auto tok = Load(model);
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->kind(), VocabKind::kLlama);
  EXPECT_EQ(tok->vocab_size(), 32000);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->unk_id(), 0);
  EXPECT_TRUE(tok->add_bos());
  EXPECT_TRUE(tok->IsEog(2));
  EXPECT_EQ(tok->Piece(1), "<s>");
  EXPECT_EQ(tok->token_type(3), TokenType::kByte);
  // " this is 🦙.cpp" spells the llama in byte tokens (llama.cpp's test-tokenizer-0 case).
  EXPECT_EQ(tok->Encode(" this is \xF0\x9F\xA6\x99.cpp", true),
            (std::vector<int32_t>{1, 29871, 445, 338, 29871, 243, 162, 169, 156, 29889, 8223}));
}

TEST(VocabFile, Gpt2Metadata) {
  const fs::path model = ModelsDir() / "vocab" / "ggml-vocab-gpt-2.gguf";
  if (!fs::exists(model)) GTEST_SKIP() << model << " is absent (no ../shared checkout)";
  auto tok = Load(model);
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->kind(), VocabKind::kGpt2);
  EXPECT_EQ(tok->vocab_size(), 50257);
  EXPECT_EQ(tok->eos_id(), 50256);
  EXPECT_FALSE(tok->add_bos());
  EXPECT_TRUE(tok->IsEog(50256));
  EXPECT_EQ(tok->Encode("Hello world", false), (std::vector<int32_t>{15496, 995}));
  EXPECT_EQ(tok->TokenBytes(995), " world");
}

TEST(VocabFile, Stories260kOnceUponATime) {
  const fs::path model = ModelsDir() / "stories260K.gguf";
  if (!fs::exists(model)) GTEST_SKIP() << model << " is absent (no ../shared checkout)";
  auto tok = Load(model);
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_TRUE(tok->add_bos());
  const std::vector<int32_t> ids = tok->Encode("Once upon a time", tok->add_bos());
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 403, 407, 261, 378}));
  EXPECT_EQ(tok->Decode(ids), "Once upon a time");
}

TEST(VocabFile, StreamingMatchesDecodeOnRealText) {
  const fs::path model = ModelsDir() / "vocab" / "ggml-vocab-llama-spm.gguf";
  if (!fs::exists(model)) GTEST_SKIP() << model << " is absent (no ../shared checkout)";
  auto tok = Load(model);
  ASSERT_TRUE(tok);
  // Emoji and CJK fall back to byte tokens in this vocabulary.
  const std::string text =
      "I \xF0\x9F\xA6\x99 llamas, \xE4\xBD\xA0\xE5\xA5\xBD \xE2\x82\xAC"
      "5.";
  const std::vector<int32_t> ids = tok->Encode(text, false);
  StreamDecoder stream(*tok);
  std::string streamed;
  for (int32_t id : ids) {
    const std::string piece = stream.Push(id);
    // Every piece is complete UTF-8 by itself.
    for (size_t i = 0; i < piece.size(); ++i) {
      ASSERT_FALSE(i == 0 && (static_cast<unsigned char>(piece[i]) & 0xC0) == 0x80)
          << "a piece starts in the middle of a character";
    }
    streamed += piece;
  }
  streamed += stream.Flush();
  EXPECT_EQ(streamed, " " + text);  // a stream keeps the prefix space
  EXPECT_EQ(tok->Decode(ids), text);
}

}  // namespace
}  // namespace sextant
