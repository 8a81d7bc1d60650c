// Opening the terminal UI on a console state dir: opens the console store, starts a fleet
// connector on its targets (live data flows agent -> store -> UI, never agent -> UI), loads the
// price catalogs and compliance packs shipped in resources/, and runs the UI until :quit.
// Actions (scale, rollback, re-run validation) go to the agents from worker threads, offered
// only where the console's role on that target allows them; --readonly offers none.
// Thread-safety: call from main's thread; it takes over the terminal until it returns.
#pragma once

#include <string>

namespace sextant::cli {

struct TuiOptions {
  std::string state;  // console state dir; empty: the default (XDG data dir)
  bool readonly = false;
  // Extensions.
  int stale_after_s = 30;          // a target silent this long shows as stale (and alerts)
  int metrics_interval_ms = 2000;  // how often agents stream metrics
  int refresh_ms = 1000;           // how often the UI re-reads the store
  std::string view = "fleet";      // first view: fleet, deploy, alerts, audit, cost
};

// Returns the process exit code: 0 after :quit, 1 when the store or terminal cannot be opened.
int RunTuiOnState(const TuiOptions& options);

}  // namespace sextant::cli
