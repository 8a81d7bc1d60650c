// Test helper: a deployment of a synthesized tiny llama model (the stories260K shape, random
// weights) in a model store directory, or of ../shared/models/stories260K.gguf when present,
// as a parsed spec and as the desired-state record an agent would hold after an apply.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include "app/agent/state/desired_state.h"
#include "app/common/deployment_spec.h"
#include "engine/base/sha256.h"
#include "engine/gguf/synth.h"

namespace sextant::testing_agent {

struct TinyDeployment {
  std::filesystem::path store;  // the model store directory
  std::filesystem::path model;  // the model file in it
  spec::DeploymentSpec spec;
  agent::DeploymentRecord record;  // generation 1
};

// With `chat`, the prompts are a text and two conversations, formatted by the built-in llama2
// template (the synthesized vocabulary has BOS and EOS but no chat template of its own).
inline std::string TinySpecYaml(const std::string& name, const std::string& uri,
                                const std::string& sha, bool chat = false) {
  std::string yaml = "apiVersion: sextant/v1\nkind: Deployment\nname: " + name +
                     "\nmodel:\n  uri: " + uri + "\n  sha256: " + sha +
                     "\nengine:\n  backend: cpu\n  contextLength: 256\n  threads: 1\n";
  if (!chat) {
    return yaml +
           "validation:\n  maxTokens: 24\n  prompts:\n    - Once upon a time\n"
           "    - The little dog\n";
  }
  return yaml +
         "  chatTemplate: llama2\n"
         "validation:\n  maxTokens: 24\n  prompts:\n    - Once upon a time\n"
         "    - messages:\n"
         "        - {role: system, content: \"Tell short stories about animals.\"}\n"
         "        - {role: user, content: \"The little dog went to the park\"}\n"
         "    - messages:\n"
         "        - {role: user, content: \"Once upon a time\"}\n"
         "        - {role: assistant, content: \"there was a big red ball\"}\n"
         "        - {role: user, content: \"What happened next?\"}\n";
}

inline agent::DeploymentRecord RecordOf(const spec::DeploymentSpec& s) {
  agent::DeploymentRecord r;
  r.name = s.name;
  r.generation = 1;
  r.spec_json = spec::CanonicalJson(s);
  r.spec_digest = "sha256:" + spec::SpecDigest(s);
  r.model_uri = s.model.uri;
  r.model_sha256 = s.model.sha256;
  return r;
}

// Builds the deployment from a model file copied (or synthesized) into `store`.
// Returns an error text (empty on success).
inline std::string MakeDeployment(const std::filesystem::path& store, const std::string& file,
                                  const std::filesystem::path& source, TinyDeployment* out,
                                  bool chat = false) {
  std::error_code ec;
  std::filesystem::create_directories(store, ec);
  out->store = store;
  out->model = store / file;
  if (source.empty()) {
    auto shape = gguf::LlamaShapeByName("stories260k-like");
    Status s = gguf::SynthesizeLlama(*shape, gguf::SynthType::kF32, 7, out->model, {}, 1);
    if (!s.ok()) return s.ToString();
  } else {
    std::filesystem::copy_file(source, out->model,
                               std::filesystem::copy_options::overwrite_existing, ec);
    if (ec) return "copy " + source.string() + ": " + ec.message();
  }
  auto sha = Sha256FileHex(out->model);
  if (!sha.ok()) return sha.status().ToString();
  auto parsed = spec::ParseDeploymentSpec(TinySpecYaml("tiny", file, *sha, chat));
  if (!parsed.ok()) return parsed.errors.front().ToString();
  out->spec = parsed.spec;
  out->record = RecordOf(out->spec);
  return {};
}

inline std::filesystem::path ScratchDir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("sextant-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace sextant::testing_agent
