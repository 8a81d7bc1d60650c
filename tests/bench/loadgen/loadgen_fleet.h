// LoadgenFleet: N real agents (AgentServer over mutual TLS on 127.0.0.1) in one process, fed
// by the synthetic sources of synthetic_sources.h, and registered as targets in a console store.
// Several targets may share one agent server (targets_per_server). `sextant-loadgen` runs one until
// it is signalled; the fleet connector benchmark starts one as a child process. For load and
// benchmarks only: nothing in the product uses it.
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
  // Targets served by one agent server (one gRPC server, one port). 1: a server per target.
  // More: `agents` targets share agents / targets_per_server servers, round the clock the same
  // figures; the console still holds one mTLS connection and one metrics stream per target, so
  // its ingest sees the same load with fewer server threads here.
  int targets_per_server = 1;
};

class LoadgenFleet {
 public:
  static Result<std::unique_ptr<LoadgenFleet>> Start(const LoadgenOptions& options);
  ~LoadgenFleet();
  // Shuts every agent down. Idempotent.
  void Stop();
  // Targets registered (agents × 1, or shared servers × targets_per_server).
  int size() const;
  // Agent servers running.
  int servers() const;
  // Total GPUs over the targets.
  int gpus() const;

  struct Agent;

 private:
  LoadgenFleet() = default;
  std::vector<std::unique_ptr<Agent>> agents_;
  int targets_ = 0;
  int target_gpus_ = 0;
};

}  // namespace sextant::loadgen
