// Push and rollback of a deployment spec from the console to its targets over gRPC (mutual
// TLS): what `sextant push`, `sextant rollback`, the demo and the GUI call.
//
// PushFromStore: loads the spec, finds the newest passing report of its digest in the console
// store (per backend), verifies it with the console's signing key (the public half of the key
// that signed it), resolves the targets (by name or a KEY=VALUE label selector), and runs
// console::Push with one gRPC channel per target. Each rollout is journaled in the console
// database's rollout journal (app/console/store/rollout_journal.h: the previous state of every
// target is written before its apply), so RollbackFromStore can return a deployment to what it
// was before its latest push even after the console itself was interrupted.
//
// Thread-safety: both functions block the calling thread (never a GUI thread); they may run
// concurrently on different deployments. on_event is called from rollout threads, serialized.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "app/console/rollout/rollout.h"
#include "app/console/store/console_database.h"
#include "engine/base/status.h"

namespace sextant::rpc {

struct PushRequest {
  std::filesystem::path spec_file;
  std::vector<std::string> targets;
  std::string selector;  // KEY=VALUE on target labels; empty: use targets
  int max_unavailable = 1;
  std::string canary;
  std::function<void(const console::PushEvent&)> on_event;
  std::chrono::milliseconds call_deadline{30000};
  // Extensions.
  std::chrono::milliseconds validation_deadline{300000};  // RunValidation runs the model
  std::filesystem::path signing_key;                      // empty: report::DefaultSigningKeyPath()
  double cross_backend_min_agreement = 1.0;
};

// FAILED_PRECONDITION when there is no passing report of the spec's digest or it does not
// verify with the console's key; INVALID_ARGUMENT for a bad spec or selector, NOT_FOUND for an
// unknown target. Failures of targets are in the result (ok = false), not errors.
Result<console::PushResult> PushFromStore(console::ConsoleDatabase& store, const PushRequest& r);

// The targets a push names: `names` (each once, each known to the store) or every target whose
// label matches `selector` (KEY=VALUE), not both. NOT_FOUND / INVALID_ARGUMENT name the cause.
Result<std::vector<console::Target>> ResolveTargets(console::ConsoleDatabase& st,
                                                    const std::vector<std::string>& names,
                                                    const std::string& selector);

struct RollbackRequest {
  std::function<void(const console::PushEvent&)> on_event;
  std::chrono::milliseconds call_deadline{30000};
  int max_unavailable = 4;  // targets restored in parallel
};

// Returns every target of the deployment's latest push that still runs (or may run) the pushed
// spec to its previous generation. NOT_FOUND when no push of the deployment has anything left
// to roll back.
Result<console::PushResult> RollbackFromStore(console::ConsoleDatabase& store,
                                              const std::string& deployment,
                                              const RollbackRequest& r = {});

}  // namespace sextant::rpc
