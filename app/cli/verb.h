// Verb registration for a program's command line (sextant and sextant-agent each keep
// their own registry). A verb is a CLI11 subcommand set up by a function in its own file:
//
//   static void SetupRun(CLI::App& root, VerbContext& ctx) { ... }
//   SEXTANT_REGISTER_VERB(run, SetupRun);
//
// The callback of the subcommand sets ctx.exit_code: 0 ok, 1 failure, 2 usage error.
// Verbs are set up in name order so --help is stable.
// Thread-safety: registration happens during static initialization; Setup runs on main's thread.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace sextant::cli {

struct VerbContext {
  int exit_code = 0;
};

using VerbSetup = std::function<void(CLI::App& root, VerbContext& ctx)>;

bool RegisterVerb(std::string name, VerbSetup setup);
// Calls every registered setup, in name order.
void SetupVerbs(CLI::App& root, VerbContext& ctx);

}  // namespace sextant::cli

#define SEXTANT_REGISTER_VERB(name, fn) \
  static const bool sextant_verb_registered_##name = ::sextant::cli::RegisterVerb(#name, fn)
