// Push benchmark: one validated spec pushed to N agents on 127.0.0.1, end to end (mutual TLS,
// signed report checked by every agent, model sha256 checked in each agent's own store, the
// validation prompts re-run on the real engine, digests compared), with the tiny model.
//
//   build/<dir>/tests/push_bench [--agents 20] [--max-unavailable 5] [--model FILE]
//                                [--max-tokens 16]
//
// Prints the wall time of the push (canary, then waves), of a repeated push (a no-op), and of
// a rollback, and the local validation time for comparison.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "connectors/console/push.h"
#include "tests/connectors/console/push_test_fleet.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

}  // namespace

int main(int argc, char** argv) {
  int agents = 20;
  int max_unavailable = 5;
  int max_tokens = 16;
  fs::path model = fs::path(SEXTANT_SHARED_DIR) / "models" / "stories260K.gguf";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "push_bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--agents") {
      agents = std::atoi(next().c_str());
    } else if (a == "--max-unavailable") {
      max_unavailable = std::atoi(next().c_str());
    } else if (a == "--max-tokens") {
      max_tokens = std::atoi(next().c_str());
    } else if (a == "--model") {
      model = next();
    } else {
      std::fprintf(stderr,
                   "usage: push_bench [--agents N] [--max-unavailable N] [--max-tokens N] "
                   "[--model FILE]\n");
      return 2;
    }
  }
  if (agents < 1 || max_unavailable < 1 || max_tokens < 1) {
    std::fprintf(stderr, "push_bench: counts must be at least 1\n");
    return 2;
  }
  if (!fs::exists(model)) {
    std::fprintf(stderr, "push_bench: no model %s (give --model FILE)\n", model.c_str());
    return 1;
  }
  sextant::pushtest::LocalFleet fleet(fs::temp_directory_path() /
                                      ("push_bench_" + std::to_string(::getpid())));
  auto fail = [](const char* what, const sextant::Status& s) {
    std::fprintf(stderr, "push_bench: %s: %s\n", what, s.ToString().c_str());
    return 1;
  };
  if (auto s = fleet.Init(model); !s.ok()) return fail("init", s);
  auto t0 = Clock::now();
  if (auto s = fleet.StartAgents(static_cast<size_t>(agents)); !s.ok()) {
    return fail("start agents", s);
  }
  const double start_s = Seconds(t0);
  t0 = Clock::now();
  auto spec = fleet.WriteAndValidate("bench", max_tokens);
  if (!spec.ok()) return fail("validate", spec.status());
  const double validate_s = Seconds(t0);

  sextant::rpc::PushRequest r;
  r.spec_file = *spec;
  r.targets = fleet.TargetNames();
  r.max_unavailable = max_unavailable;
  r.signing_key = fleet.key_path();
  t0 = Clock::now();
  auto pushed = sextant::rpc::PushFromStore(fleet.store(), r);
  const double push_s = Seconds(t0);
  if (!pushed.ok()) return fail("push", pushed.status());
  if (!pushed->ok) {
    std::fprintf(stderr, "push_bench: push stopped: %s\n", pushed->stopped_because.c_str());
    return 1;
  }
  int matched = 0;
  for (const auto& t : pushed->targets) matched += t.output_digest == pushed->local_output_digest;
  t0 = Clock::now();
  auto again = sextant::rpc::PushFromStore(fleet.store(), r);
  const double noop_s = Seconds(t0);
  if (!again.ok() || !again->no_op) return fail("repeat push", again.status());
  t0 = Clock::now();
  auto back = sextant::rpc::RollbackFromStore(fleet.store(), "bench");
  const double rollback_s = Seconds(t0);
  if (!back.ok() || !back->ok) return fail("rollback", back.status());

  std::printf("push_bench: %d agents on 127.0.0.1 (mTLS), model %s, %d prompts x %d tokens\n",
              agents, model.filename().c_str(), 2, max_tokens);
  std::printf("  agents started           %8.3f s\n", start_s);
  std::printf("  local validation         %8.3f s\n", validate_s);
  std::printf("  push (canary + waves of %d) %8.3f s  (%d/%d output digests equal the local one)\n",
              max_unavailable, push_s, matched, agents);
  std::printf("  per target               %8.1f ms\n", push_s * 1000.0 / agents);
  std::printf("  same push again (no-op)  %8.3f s\n", noop_s);
  std::printf("  rollback                 %8.3f s\n", rollback_s);
  return 0;
}
