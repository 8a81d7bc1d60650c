// Opening the desktop console from the command line.
// Thread-safety: call from main's thread only (Qt requires it).
#pragma once

namespace sextant::cli {

// Opens the main window when a display is available and runs the event loop; otherwise prints
// how to use the terminal UI and the CLI and returns 2.
int LaunchGuiOrExplain(int argc, char** argv);

}  // namespace sextant::cli
