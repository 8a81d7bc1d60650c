// LoadgenFleet: N real agents (AgentServer over mutual TLS on 127.0.0.1) in one process, fed
// by the synthetic sources of synthetic_sources.h, and registered as targets in a console store.
// `sextant-loadgen` runs one until it is signalled; the fleet connector benchmark starts one as
// a child process. For load and benchmarks only: nothing in the product uses it.
//
// In the state dir it creates (once; reused on later runs) loadgen-pki/ with a CA, the agents'
// server certificate and the console's client identity spiffe://example.org/vendor/console,
// one folder per agent under loadgen-agents/ (desired state and audit log), and in console.db
// the targets "<prefix>NNN" (replaced on each run: their ports change) and one account per
// cloud.
//
// Thread-safety: Start/Stop from one thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/base/status.h"

namespace sextant::loadgen {

struct LoadgenOptions {
  int agents = 20;
  int64_t interval_ms = 1000;  // how often the synthetic figures change
  std::filesystem::path state;
  int gpus = 0;  // GPUs per agent; 0: the profile's count (8 on most machines)
  std::string name_prefix = "load-";
};

class LoadgenFleet {
 public:
  static Result<std::unique_ptr<LoadgenFleet>> Start(const LoadgenOptions& options);
  ~LoadgenFleet();
  // Shuts every agent down. Idempotent.
  void Stop();
  int size() const;
  // Total GPUs over the agents.
  int gpus() const;

  struct Agent;

 private:
  LoadgenFleet() = default;
  std::vector<std::unique_ptr<Agent>> agents_;
};

}  // namespace sextant::loadgen
