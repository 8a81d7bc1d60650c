// `sextant model synth|info`: write a random-weight llama GGUF of a known shape, and describe a
// GGUF file (architecture, shapes, tensor types, vocabulary, size, sha256).
// Exit status: 0 ok, 1 failure (I/O, malformed file), 2 usage. Errors go to stderr.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>

#include "app/cli/verb.h"
#include "engine/gguf/gguf.h"
#include "engine/gguf/hf_vocab.h"
#include "engine/gguf/synth.h"

namespace sextant::cli {
namespace {

struct SynthArgs {
  std::string shape;
  std::string type;
  uint64_t seed = 0;
  std::string out;
  int threads = 0;
  std::string vocab_from;  // tokenizer.json (tokenizer_config.json beside it)
};

struct InfoArgs {
  std::string model;
  std::string output = "table";
};

int Synth(const SynthArgs& a) {
  const auto shape = gguf::LlamaShapeByName(a.shape);
  const auto type = gguf::SynthTypeByName(a.type);
  if (!shape || !type) {  // CLI11 checks membership; this guards the tables drifting apart
    std::fprintf(stderr, "sextant model synth: unknown shape or type\n");
    return 2;
  }
  std::optional<gguf::HfVocab> vocab;
  if (!a.vocab_from.empty()) {
    auto v = gguf::HfVocabFromFile(a.vocab_from);
    if (!v.ok()) {
      std::fprintf(stderr, "sextant model synth: --vocab-from: %s\n",
                   v.status().ToString().c_str());
      return 1;
    }
    vocab = std::move(v).value();
  }
  const bool tty = isatty(STDERR_FILENO) == 1;
  int last_pct = -1;
  std::function<bool(float)> progress;
  if (tty) {
    progress = [&last_pct](float f) {
      const int pct = static_cast<int>(f * 100.0f);
      if (pct != last_pct) {
        std::fprintf(stderr, "\rwriting %3d%%", pct);
        last_pct = pct;
      }
      return true;
    };
  }
  const auto t0 = std::chrono::steady_clock::now();
  const Status st = gguf::SynthesizeLlama(*shape, *type, a.seed, a.out, progress, a.threads,
                                          vocab ? &*vocab : nullptr);
  if (tty) std::fprintf(stderr, "\r\033[K");
  if (!st.ok()) {
    std::fprintf(stderr, "sextant model synth: %s\n", st.ToString().c_str());
    return 1;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(a.out, ec);
  std::printf("wrote %s: %s %s, seed %llu, %.1f MiB in %.1f s\n", a.out.c_str(), a.shape.c_str(),
              a.type.c_str(), static_cast<unsigned long long>(a.seed),
              ec ? 0.0 : static_cast<double>(bytes) / (1024.0 * 1024.0), secs);
  return 0;
}

// A metadata value as JSON (arrays summarized by type and length: vocabularies are large).
nlohmann::ordered_json ScalarJson(const gguf::Value& v) {
  return std::visit(
      [](const auto& x) -> nlohmann::ordered_json {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, gguf::ArrayValue>) {
          return {{"array", std::string(gguf::ValueTypeName(x.element_type))}, {"size", x.size()}};
        } else {
          return x;
        }
      },
      v.data);
}

int Info(const InfoArgs& a) {
  if (a.output != "table" && a.output != "json") {
    std::fprintf(stderr, "sextant model info: -o must be table or json, not '%s'\n",
                 a.output.c_str());
    return 2;
  }
  auto opened = gguf::GgufFile::Open(a.model);
  if (!opened.ok()) {
    std::fprintf(stderr, "sextant model info: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  const gguf::GgufFile& f = **opened;
  auto sha = f.Sha256();
  if (!sha.ok()) {
    std::fprintf(stderr, "sextant model info: %s\n", sha.status().ToString().c_str());
    return 1;
  }
  const std::string arch = f.GetString("general.architecture").value_or("");

  // Shapes from the architecture's own keys; a key absent from the file is left out.
  struct ShapeKey {
    const char* field;
    const char* key;
  };
  static constexpr ShapeKey kShapeKeys[] = {
      {"context_length", "context_length"},
      {"embedding_length", "embedding_length"},
      {"block_count", "block_count"},
      {"feed_forward_length", "feed_forward_length"},
      {"head_count", "attention.head_count"},
      {"head_count_kv", "attention.head_count_kv"},
      {"rope_dimension_count", "rope.dimension_count"},
  };
  nlohmann::ordered_json shapes = nlohmann::ordered_json::object();
  for (const ShapeKey& k : kShapeKeys) {
    auto v = f.GetUint(arch + "." + k.key);
    if (v.ok()) shapes[k.field] = *v;
  }
  for (const auto& [field, key] : {std::pair{"rope_freq_base", "rope.freq_base"},
                                   std::pair{"rms_epsilon", "attention.layer_norm_rms_epsilon"}}) {
    auto v = f.GetFloat(arch + "." + key);
    if (v.ok()) shapes[field] = *v;
  }

  std::map<std::string, int> histogram;
  uint64_t params = 0;
  for (const gguf::Tensor& t : f.tensors()) {
    ++histogram[std::string(gguf::TensorTypeName(t.type))];
    params += static_cast<uint64_t>(t.elements());
  }
  const std::string vocab_kind = f.GetString("tokenizer.ggml.model").value_or("");
  auto tokens = f.GetArray("tokenizer.ggml.tokens");
  const uint64_t vocab_size = tokens.ok() ? (*tokens)->size() : 0;

  nlohmann::ordered_json j;
  j["path"] = a.model;
  j["file_size"] = f.file_size();
  j["sha256"] = *sha;
  j["gguf_version"] = f.version();
  j["architecture"] = arch;
  if (auto name = f.GetString("general.name"); name.ok()) j["name"] = *name;
  if (auto ft = f.GetUint("general.file_type"); ft.ok()) j["file_type"] = *ft;
  j["shapes"] = shapes;
  j["tensor_count"] = f.tensors().size();
  j["parameters"] = params;
  j["tensor_types"] = histogram;
  j["vocabulary"] = {{"kind", vocab_kind}, {"size", vocab_size}};
  j["metadata_count"] = f.metadata().size();

  if (a.output == "json") {
    nlohmann::ordered_json md = nlohmann::ordered_json::object();
    for (const auto& [key, value] : f.metadata()) md[key] = ScalarJson(value);
    j["metadata"] = md;
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  auto row = [](const std::string& k, const std::string& v) {
    std::printf("%-21s %s\n", k.c_str(), v.c_str());
  };
  row("file", a.model);
  std::ostringstream size;
  size.precision(1);
  size << std::fixed << static_cast<double>(f.file_size()) / (1024.0 * 1024.0) << " MiB ("
       << f.file_size() << " bytes)";
  row("size", size.str());
  row("sha256", *sha);
  row("gguf version", std::to_string(f.version()));
  row("architecture", arch.empty() ? "(none)" : arch);
  if (j.contains("name")) row("name", j["name"].get<std::string>());
  for (const auto& [field, value] : shapes.items()) {
    if (value.is_number_float()) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%g", value.get<double>());
      row(field, buf);
    } else {
      row(field, value.dump());
    }
  }
  std::string types;
  for (const auto& [t, n] : histogram)
    types += (types.empty() ? "" : ", ") + t + " " + std::to_string(n);
  row("tensors", std::to_string(f.tensors().size()) + (types.empty() ? "" : " (" + types + ")"));
  row("parameters", std::to_string(params));
  row("vocabulary",
      vocab_kind.empty() ? "(none)" : vocab_kind + ", " + std::to_string(vocab_size) + " tokens");
  return 0;
}

void SetupModel(CLI::App& root, VerbContext& ctx) {
  CLI::App* model = root.add_subcommand("model", "Synthesize and inspect GGUF models");
  model->require_subcommand(1);

  auto sa = std::make_shared<SynthArgs>();
  CLI::App* synth = model->add_subcommand(
      "synth",
      "Write a random-weight GGUF (llama, qwen2, qwen3, phi3, gemma, gemma2) of a known shape");
  synth->add_option("--shape", sa->shape, "Model shape")
      ->required()
      ->check(CLI::IsMember(gguf::LlamaShapeNames()));
  synth->add_option("--type", sa->type, "Tensor type of the weights")
      ->required()
      ->check(CLI::IsMember(gguf::SynthTypeNames()));
  synth->add_option("--seed", sa->seed, "Random seed (same seed, same file)");
  synth->add_option("-o,--output", sa->out, "File to write")->required();
  synth->add_option("--threads", sa->threads, "Quantization threads (0: all)");
  synth->add_option("--vocab-from", sa->vocab_from,
                    "Hugging Face tokenizer.json whose vocabulary (and tokenizer_config.json's "
                    "chat template and special tokens) the model gets");
  synth->callback([sa, &ctx] { ctx.exit_code = Synth(*sa); });

  auto ia = std::make_shared<InfoArgs>();
  CLI::App* info = model->add_subcommand("info", "Describe a GGUF model file");
  info->add_option("model", ia->model, "GGUF file")->required();
  info->add_option("-o,--output", ia->output, "table or json");
  info->callback([ia, &ctx] { ctx.exit_code = Info(*ia); });
}

}  // namespace

SEXTANT_REGISTER_VERB(model, SetupModel);

}  // namespace sextant::cli
