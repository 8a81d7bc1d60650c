// Where Sextant keeps its files, following the XDG base directory spec.
// Thread-safety: pure functions of their arguments and the environment; safe from any thread as
// long as no thread modifies the environment concurrently.
#pragma once

#include <filesystem>
#include <string>

#include "engine/base/status.h"

namespace sextant {

// The console's state directory: $XDG_DATA_HOME/sextant, else $HOME/.local/share/sextant.
// An error when neither variable is set (a service account with no home): pass --state then.
Result<std::filesystem::path> DefaultConsoleStateDir();

// The console's configuration directory: $XDG_CONFIG_HOME/sextant, else $HOME/.config/sextant.
Result<std::filesystem::path> DefaultConsoleConfigDir();

// Creates dir (and parents) with mode 0700 when missing; an error names the path and cause.
Status EnsurePrivateDir(const std::filesystem::path& dir);

}  // namespace sextant
