// `sextant spec lint FILE` and `sextant spec digest FILE`: strict checking of a deployment spec
// and its digest (sha256 of the canonical JSON form, docs/deployment-spec.md).
#include <CLI/CLI.hpp>

#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "app/cli/verb.h"
#include "app/common/deployment_spec.h"

namespace sextant::cli {
namespace {

struct SpecArgs {
  std::string file;
  std::string output = "table";
  bool canonical = false;
};

// Reads the file; on failure prints why and returns false.
bool ReadFile(const std::string& file, std::string& text) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::cerr << "sextant: cannot read " << file << "\n";
    return false;
  }
  std::ostringstream os;
  os << in.rdbuf();
  text = os.str();
  return true;
}

int Lint(const SpecArgs& a) {
  std::string text;
  if (!ReadFile(a.file, text)) return 1;
  spec::SpecParseResult r = spec::ParseDeploymentSpec(text);
  if (a.output == "json") {
    nlohmann::json errors = nlohmann::json::array();
    for (const auto& e : r.errors) {
      errors.push_back(
          {{"line", e.line}, {"column", e.column}, {"field", e.field}, {"message", e.message}});
    }
    nlohmann::json out{{"file", a.file}, {"ok", r.ok()}, {"errors", errors}};
    if (r.ok()) out["digest"] = spec::SpecDigest(r.spec);
    std::cout << out.dump(2) << "\n";
    return r.ok() ? 0 : 1;
  }
  if (!r.ok()) {
    for (const auto& e : r.errors) std::cerr << e.ToString(a.file) << "\n";
    std::cerr << r.errors.size() << (r.errors.size() == 1 ? " error" : " errors") << " in "
              << a.file << "\n";
    return 1;
  }
  std::cout << a.file << ": ok, deployment " << r.spec.name << ", digest "
            << spec::SpecDigest(r.spec) << "\n";
  return 0;
}

int Digest(const SpecArgs& a) {
  auto loaded = spec::LoadDeploymentSpec(a.file);
  if (!loaded.ok()) {
    std::cerr << loaded.status().message() << "\n";
    return 1;
  }
  const std::string digest = spec::SpecDigest(*loaded);
  if (a.output == "json") {
    std::cout << nlohmann::json{{"file", a.file},
                                {"name", loaded->name},
                                {"digest", digest},
                                {"canonical", spec::ToCanonicalJsonValue(*loaded)}}
                     .dump(2)
              << "\n";
  } else if (a.canonical) {
    std::cout << spec::CanonicalJson(*loaded) << "\n";
  } else {
    std::cout << digest << "\n";
  }
  return 0;
}

void SetupSpec(CLI::App& root, VerbContext& ctx) {
  auto* cmd = root.add_subcommand("spec", "Check deployment specs and compute their digests");
  cmd->require_subcommand(1);
  auto args = std::make_shared<SpecArgs>();

  auto* lint = cmd->add_subcommand(
      "lint", "Check a spec strictly; every error is printed as FILE:LINE:COLUMN: FIELD: MESSAGE");
  lint->add_option("FILE", args->file, "Deployment spec (YAML)")->required();
  lint->add_option("-o,--output", args->output, "table or json")
      ->check(CLI::IsMember({"table", "json"}));
  lint->callback([args, &ctx] { ctx.exit_code = Lint(*args); });

  auto* digest =
      cmd->add_subcommand("digest", "Print the spec digest: sha256 of its canonical JSON form");
  digest->add_option("FILE", args->file, "Deployment spec (YAML)")->required();
  digest->add_flag("--canonical", args->canonical, "Print the canonical JSON instead");
  digest->add_option("-o,--output", args->output, "table or json")
      ->check(CLI::IsMember({"table", "json"}));
  digest->callback([args, &ctx] { ctx.exit_code = Digest(*args); });
}

}  // namespace

SEXTANT_REGISTER_VERB(spec, SetupSpec);

}  // namespace sextant::cli
