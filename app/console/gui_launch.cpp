#include "app/console/gui_launch.h"

#include <CLI/CLI.hpp>
#include <QApplication>

#include <cstdlib>
#include <iostream>

#include "app/cli/verb.h"
#include "ui/main_window.h"

namespace sextant::cli {

namespace {

bool DisplayAvailable() {
  const char* platform = std::getenv("QT_QPA_PLATFORM");
  if (platform != nullptr && platform[0] != '\0') return true;  // the user chose one
  const char* x = std::getenv("DISPLAY");
  const char* wayland = std::getenv("WAYLAND_DISPLAY");
  return (x != nullptr && x[0] != '\0') || (wayland != nullptr && wayland[0] != '\0');
}

void SetupGui(CLI::App& root, VerbContext& ctx) {
  auto* cmd = root.add_subcommand("gui", "Open the desktop console (the default with no verb)");
  cmd->callback([&ctx] {
    static char arg0[] = "sextant";
    static char* argv[] = {arg0, nullptr};
    ctx.exit_code = LaunchGuiOrExplain(1, argv);
  });
}

}  // namespace

int LaunchGuiOrExplain(int argc, char** argv) {
  if (!DisplayAvailable()) {
    std::cerr << "sextant: no display found (DISPLAY and WAYLAND_DISPLAY are unset).\n"
                 "  Over SSH, use the command-line verbs (sextant --help), or set\n"
                 "  QT_QPA_PLATFORM=offscreen to run the desktop console without a screen.\n";
    return 2;
  }
  QApplication qapp(argc, argv);
  QApplication::setApplicationName("Sextant");
  QApplication::setOrganizationName("Sextant");
  sextant::ui::MainWindow window;
  window.show();
  return QApplication::exec();
}

}  // namespace sextant::cli

SEXTANT_REGISTER_VERB(gui, sextant::cli::SetupGui);
