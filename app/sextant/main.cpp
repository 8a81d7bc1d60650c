// sextant: the operations console. With no verb it opens the desktop console where a display
// exists; verbs (one file each in this folder) serve scripts and the terminal.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "app/cli/verb.h"
#include "engine/base/build_info.h"

#if defined(SEXTANT_WITH_GUI)
#include "app/sextant/gui_launch.h"
#endif

int main(int argc, char** argv) {
  CLI::App app{"Sextant: operations console for BYOC LLM inference", "sextant"};
  app.require_subcommand(0, 1);
  bool show_version = false;
  app.add_flag("--version", show_version, "Print version, commit, build type and engine backends");
  sextant::cli::VerbContext ctx;
  sextant::cli::SetupVerbs(app, ctx);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  if (show_version) {
    std::cout << sextant::GetBuildInfo().VersionLine("sextant") << "\n";
    return 0;
  }
  if (app.get_subcommands().empty()) {
#if defined(SEXTANT_WITH_GUI)
    return sextant::cli::LaunchGuiOrExplain(argc, argv);
#else
    std::cerr << "This build of sextant has no desktop console. Use a verb (see sextant --help).\n";
    return 2;
#endif
  }
  return ctx.exit_code;
}
