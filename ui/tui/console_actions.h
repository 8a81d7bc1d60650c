// ConsoleActions: what the terminal UI may ask of the fleet on the operator's behalf (scale a
// deployment, roll it back, re-run its validation on the target). The UI knows only this
// interface; the program's entry point implements it over the agent connections.
//
// Check() must answer at once (it runs on the UI thread, on every redraw): whether the action is
// offered for that deployment, and when it is not, why (the console's role on that target does
// not allow it, the capability is not in this build ...). Run() may take as long as the wire
// does; the UI calls it on a worker thread and shows its outcome when it returns.
//
// Thread-safety: implementations must allow Check() and Run() from different threads at once.
#pragma once

#include <string>
#include <string_view>

#include "engine/base/status.h"

namespace sextant::tui {

enum class ActionKind { kScale, kRollback, kRevalidate };
std::string_view ActionName(ActionKind k);  // "scale", "rollback", "re-run validation"

struct DeploymentRef {
  std::string target;
  std::string deployment;
  int replicas_desired = 0;
};

struct ActionAvailability {
  bool available = false;
  std::string reason;  // why not, when not available
};

class ConsoleActions {
 public:
  virtual ~ConsoleActions() = default;
  virtual ActionAvailability Check(ActionKind kind, const DeploymentRef& ref) = 0;
  // `replicas` is the wanted count for kScale, ignored otherwise. Returns what happened, in
  // words, for the status line.
  virtual Result<std::string> Run(ActionKind kind, const DeploymentRef& ref, int replicas) = 0;
};

}  // namespace sextant::tui
