// `sextant tokenize MODEL.gguf (-p TEXT | -f FILE) [--no-bos]`: prints the token ids of a text,
// separated by spaces, as the engine feeds them to the model (BOS first when the vocabulary asks
// for it, unless --no-bos).
// `sextant detokenize MODEL.gguf IDS...`: prints the text of ids (each argument may hold several
// ids separated by spaces or commas), followed by a newline.
// Only the vocabulary is read, not the weights. Exit status: 0 ok, 1 failure (I/O, malformed
// file, id outside the vocabulary), 2 usage. Errors go to stderr.
#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "app/cli/verb.h"
#include "engine/gguf/gguf.h"
#include "engine/tokenizer/tokenizer.h"

namespace sextant::cli {
namespace {

struct TokenizeArgs {
  std::string model;
  std::string prompt;
  std::string file;
  bool no_bos = false;
};

struct DetokenizeArgs {
  std::string model;
  std::vector<std::string> ids;
};

Result<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& path) {
  SEXTANT_ASSIGN_OR_RETURN(auto file, gguf::GgufFile::Open(path));
  auto tok = Tokenizer::FromGguf(*file);
  if (!tok.ok()) return tok.status().WithContext(path);
  return tok;
}

int Fail(const char* verb, const Status& s) {
  std::fprintf(stderr, "sextant %s: %s\n", verb, s.ToString().c_str());
  return 1;
}

int Tokenize(const TokenizeArgs& a, bool have_prompt, bool have_file) {
  if (have_prompt == have_file) {
    std::fprintf(stderr, "sextant tokenize: give exactly one of -p TEXT or -f FILE\n");
    return 2;
  }
  std::string text = a.prompt;
  if (have_file) {
    std::ifstream in(a.file, std::ios::binary);
    if (!in) return Fail("tokenize", Status::NotFound("cannot open " + a.file));
    std::ostringstream s;
    s << in.rdbuf();
    if (in.bad()) return Fail("tokenize", Status::Unavailable("cannot read " + a.file));
    text = s.str();
  }
  auto tok = LoadTokenizer(a.model);
  if (!tok.ok()) return Fail("tokenize", tok.status());
  const std::vector<int32_t> ids = (*tok)->Encode(text, !a.no_bos && (*tok)->add_bos());
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) line += ' ';
    line += std::to_string(ids[i]);
  }
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

int Detokenize(const DetokenizeArgs& a) {
  std::vector<int32_t> ids;
  for (const std::string& arg : a.ids) {
    size_t pos = 0;
    while (pos < arg.size()) {
      const size_t end = arg.find_first_of(" ,\t\n", pos);
      const std::string_view word =
          std::string_view(arg).substr(pos, (end == std::string::npos ? arg.size() : end) - pos);
      pos = end == std::string::npos ? arg.size() : end + 1;
      if (word.empty()) continue;
      int64_t id = 0;
      auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), id);
      if (ec != std::errc() || ptr != word.data() + word.size()) {
        std::fprintf(stderr, "sextant detokenize: '%.*s' is not a token id\n",
                     static_cast<int>(word.size()), word.data());
        return 2;
      }
      if (id < 0 || id > INT32_MAX) {
        return Fail("detokenize", Status::OutOfRange("token id " + std::string(word) +
                                                     " is outside the vocabulary"));
      }
      ids.push_back(static_cast<int32_t>(id));
    }
  }
  auto tok = LoadTokenizer(a.model);
  if (!tok.ok()) return Fail("detokenize", tok.status());
  for (int32_t id : ids) {
    if (id >= (*tok)->vocab_size()) {
      return Fail(
          "detokenize",
          Status::OutOfRange("token id " + std::to_string(id) + " is outside the vocabulary of " +
                             std::to_string((*tok)->vocab_size()) + " tokens"));
    }
  }
  std::string text = (*tok)->Decode(ids);
  text += '\n';
  std::fwrite(text.data(), 1, text.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

void SetupTokenize(CLI::App& root, VerbContext& ctx) {
  auto a = std::make_shared<TokenizeArgs>();
  CLI::App* cmd = root.add_subcommand("tokenize", "Print the token ids of a text");
  cmd->add_option("model", a->model, "GGUF model (only its vocabulary is read)")->required();
  CLI::Option* prompt = cmd->add_option("-p,--prompt", a->prompt, "Text to tokenize");
  CLI::Option* file = cmd->add_option("-f,--file", a->file, "File whose bytes to tokenize");
  prompt->excludes(file);
  cmd->add_flag("--no-bos", a->no_bos, "Do not put BOS first");
  cmd->callback([a, prompt, file, &ctx] {
    ctx.exit_code = Tokenize(*a, prompt->count() > 0, file->count() > 0);
  });
}

void SetupDetokenize(CLI::App& root, VerbContext& ctx) {
  auto a = std::make_shared<DetokenizeArgs>();
  CLI::App* cmd = root.add_subcommand("detokenize", "Print the text of token ids");
  cmd->add_option("model", a->model, "GGUF model (only its vocabulary is read)")->required();
  cmd->add_option("ids", a->ids, "Token ids (spaces or commas may separate several)")->required();
  cmd->callback([a, &ctx] { ctx.exit_code = Detokenize(*a); });
}

}  // namespace

SEXTANT_REGISTER_VERB(tokenize, SetupTokenize);
SEXTANT_REGISTER_VERB(detokenize, SetupDetokenize);

}  // namespace sextant::cli
