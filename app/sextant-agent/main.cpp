// sextant-agent: the data-plane agent that runs in the customer's cloud account.
// Verbs (one file each in this folder) register themselves; see app/cli/verb.h.
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <iostream>

#include "app/cli/verb.h"
#include "app/sextant-agent/serve_verb.h"
#include "engine/base/build_info.h"

int main(int argc, char** argv) {
  // Before any model loads: CUDA numbers devices in PCI bus order, as NVML (the inventory's gpuN)
  // does, so a replica placed on gpuN computes on CUDA device N. A value already set is kept.
  setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID", /*overwrite=*/0);
  CLI::App app{
      "Sextant agent: the BYOC data plane (gRPC over mutual TLS, engine replicas, "
      "OpenAI-compatible API)",
      "sextant-agent"};
  app.require_subcommand(0, 1);
  bool show_version = false;
  app.add_flag("--version", show_version, "Print version, commit, build type and engine backends");
  std::string config;
  app.add_option("--config", config, "Run the agent with this configuration file (same as serve)");
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
    std::cout << sextant::GetBuildInfo().VersionLine("sextant-agent") << "\n";
    return 0;
  }
  if (app.get_subcommands().empty() && !config.empty()) {
    return sextant::agent::RunServe(config);
  }
  if (app.get_subcommands().empty()) {
    std::cerr << app.help();
    return 2;
  }
  return ctx.exit_code;
}
