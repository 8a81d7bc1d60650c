// The terminal UI (ncurses) for on-call operators: fleet, deployments, alerts, audit and cost
// views with k9s-style keys (`:` commands, `/` filter, j/k and arrows, Enter to drill down, Esc
// back, `?` for the keys), a header with the console's identity, the targets connected and the
// time of the last update, and the actions ConsoleActions offers behind a confirmation.
//
// The UI thread only reads the newest snapshot from a SnapshotPoller and waits for keys with a
// short timeout, so a slow agent never freezes the screen; actions run on a worker thread.
// Drawing erases and redraws into curses' virtual screen and sends only the difference
// (wnoutrefresh + doupdate), so updates do not flicker. Colours are used when the terminal has
// them and NO_COLOR is unset or empty; otherwise tones are bold / dim / underlined text.
//
// Thread-safety: RunTerminalUi takes over the process's terminal; call it from one thread, once
// at a time.
#pragma once

#include <chrono>
#include <string>

#include "ui/tui/console_actions.h"
#include "ui/tui/console_snapshot.h"

namespace sextant::tui {

struct TerminalUiOptions {
  bool readonly = false;                    // hide every mutating action
  std::string state_label;                  // shown in the header until an agent names the console
  std::chrono::milliseconds key_wait{200};  // how long one wait for a key lasts
  std::string initial_view = "fleet";       // fleet, deploy, alerts, audit, cost
};

// Runs until `:quit` (or Ctrl-C, SIGTERM, SIGHUP) and restores the terminal. `actions` may be
// null (no actions offered). Returns 0, or 1 when the terminal could not be set up (the reason
// is printed on stderr).
int RunTerminalUi(const TerminalUiOptions& options, SnapshotPoller& poller,
                  ConsoleActions* actions);

}  // namespace sextant::tui
