// sextant-loadgen: N real agents with synthetic inventory and metrics in one process, registered
// as targets in a console store, for load tests and benchmarks of the console.
//
//   sextant-loadgen --agents 100 --interval-ms 1000 --state DIR [--gpus 8]
//                   [--targets-per-server K]
//
// Prints "ready N" once every agent listens and the targets are in DIR/console.db, then runs
// until SIGTERM or SIGINT, shuts the agents down and exits 0.
#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "tests/bench/loadgen/loadgen_fleet.h"

int main(int argc, char** argv) {
  sextant::loadgen::LoadgenOptions o;
  std::string state;
  CLI::App app{
      "Runs N agents with synthetic inventory and metrics (mTLS, 127.0.0.1) and "
      "registers them as targets in the console store at --state"};
  app.add_option("--agents", o.agents, "number of agents")->check(CLI::Range(1, 5000));
  app.add_option("--interval-ms", o.interval_ms, "how often the synthetic figures change")
      ->check(CLI::Range(int64_t{1}, int64_t{3600000}));
  app.add_option("--state", state, "console state dir (targets, CA, console identity)")->required();
  app.add_option("--gpus", o.gpus, "GPUs per agent (0: the machine profile's count)")
      ->check(CLI::Range(0, 64));
  app.add_option("--prefix", o.name_prefix, "target name prefix");
  app.add_option("--targets-per-server", o.targets_per_server,
                 "targets served by one agent server (same port and figures)")
      ->check(CLI::Range(1, 1000));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  o.state = state;

  // Every thread (gRPC's included) inherits the blocked mask; main takes the signal in sigwait.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  auto fleet = sextant::loadgen::LoadgenFleet::Start(o);
  if (!fleet.ok()) {
    std::cerr << "sextant-loadgen: " << fleet.status().message() << "\n";
    return 1;
  }
  std::printf("ready %d\n", (*fleet)->size());
  std::fprintf(stderr, "sextant-loadgen: %d targets on %d agent servers, %d GPUs\n",
               (*fleet)->size(), (*fleet)->servers(), (*fleet)->gpus());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&sigs, &sig);
  (*fleet)->Stop();
  return 0;
}
