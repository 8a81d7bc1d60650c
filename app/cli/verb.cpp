#include "app/cli/verb.h"

#include <algorithm>
#include <utility>

namespace sextant::cli {
namespace {

std::vector<std::pair<std::string, VerbSetup>>& Registry() {
  static std::vector<std::pair<std::string, VerbSetup>> verbs;
  return verbs;
}

}  // namespace

bool RegisterVerb(std::string name, VerbSetup setup) {
  Registry().emplace_back(std::move(name), std::move(setup));
  return true;
}

void SetupVerbs(CLI::App& root, VerbContext& ctx) {
  auto& verbs = Registry();
  std::sort(verbs.begin(), verbs.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [name, setup] : verbs) setup(root, ctx);
}

}  // namespace sextant::cli
