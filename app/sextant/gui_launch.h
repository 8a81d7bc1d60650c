// Opening the desktop console from the command line: `sextant` with no verb, `sextant gui`, and
// `sextant demo` (which calls LaunchGui on its own state).
// Thread-safety: call from main's thread only (Qt requires it).
#pragma once

#include <string>

namespace sextant::cli {

struct GuiLaunchOptions {
  std::string state;            // console state dir; empty: the default (XDG data dir)
  std::string screenshots_dir;  // non-empty: render every view to DIR/<view>.png and exit
  int argc = 0;
  char** argv = nullptr;
  // Extensions.
  std::string spec;       // preselected deployment spec in Validate & push
  std::string model_dir;  // where the spec's model resolves
  int bench_seconds = 0;  // > 0: run this long, print event-loop latency and memory, exit
  int metrics_interval_ms = 1000;
  int screenshot_wait_ms = 20000;  // longest wait for live data before screenshots
};

// Opens the console on the store at options.state with a FleetConnector feeding it, runs the
// event loop and returns its exit code (0 after writing screenshots; 1 on errors, in words on
// stderr). Needs a display or QT_QPA_PLATFORM (offscreen works).
int LaunchGui(const GuiLaunchOptions& options);

// Opens the main window when a display is available and runs the event loop; otherwise prints
// how to use the terminal UI and the CLI and returns 2.
int LaunchGuiOrExplain(int argc, char** argv);

}  // namespace sextant::cli
