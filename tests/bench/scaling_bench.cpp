// Benchmarks of scaling in the agent's serving stack (ReplicaManager + Autoscaler +
// InferenceServer on 127.0.0.1, real HTTP, the real engine on synthesized models):
//
//   scaling_bench zero-to-first-token [--dir DIR] [--runs N] [--threads T]
//     A TinyLlama-1.1B-shaped Q4_0 model (synthesized into DIR once; the first load hashes it,
//     which also leaves it in the page cache). The deployment is scaled to zero; then one
//     completion of max_tokens 1 is sent: the time until its answer (one token) is the time from
//     zero replicas to the first token, model load and prefill included.
//
//   scaling_bench replicas-throughput [--dir DIR] [--replicas 1,2,4] [--clients C]
//                                     [--tokens N] [--seconds S]
//     A 110M-shaped Q8_0 model on CPU replicas (each replica gets cores / replicas threads).
//     C closed-loop clients send completions of N tokens for S seconds; the aggregate generated
//     tokens per second is reported per replica count.
#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/agent/metrics/registry.h"
#include "app/agent/replicas/replica_manager.h"
#include "app/agent/replicas/serving_metrics.h"
#include "app/agent/scaling/autoscaler.h"
#include "connectors/http/inference_server.h"
#include "engine/gguf/synth.h"
#include "tests/support/api_access.h"

namespace {

namespace fs = std::filesystem;
using namespace sextant;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Args {
  std::string mode;
  fs::path dir = fs::temp_directory_path() / "sextant-scaling-bench";
  int runs = 5;
  int threads = 0;
  std::vector<int> replicas = {1, 2, 4};
  int clients = 8;
  int tokens = 64;
  int seconds = 10;
};

bool ParseArgs(int argc, char** argv, Args* a) {
  if (argc < 2) return false;
  a->mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string k = argv[i];
    if (i + 1 >= argc) return false;
    const std::string v = argv[++i];
    if (k == "--dir") {
      a->dir = v;
    } else if (k == "--runs") {
      a->runs = std::stoi(v);
    } else if (k == "--threads") {
      a->threads = std::stoi(v);
    } else if (k == "--clients") {
      a->clients = std::stoi(v);
    } else if (k == "--tokens") {
      a->tokens = std::stoi(v);
    } else if (k == "--seconds") {
      a->seconds = std::stoi(v);
    } else if (k == "--replicas") {
      a->replicas.clear();
      std::stringstream ss(v);
      std::string part;
      while (std::getline(ss, part, ',')) a->replicas.push_back(std::stoi(part));
    } else {
      return false;
    }
  }
  return a->mode == "zero-to-first-token" || a->mode == "replicas-throughput";
}

// The synthesized model at DIR/NAME, written once.
fs::path Model(const fs::path& dir, const std::string& shape, gguf::SynthType type,
               const std::string& name) {
  fs::create_directories(dir);
  const fs::path path = dir / name;
  if (!fs::exists(path)) {
    std::cerr << "synthesizing " << path << " ...\n";
    Status s = gguf::SynthesizeLlama(*gguf::LlamaShapeByName(shape), type, 1, path);
    if (!s.ok()) {
      std::cerr << s.ToString() << "\n";
      std::exit(1);
    }
  }
  return path;
}

agent::DeploymentTarget Target(const std::string& name, const fs::path& model, int replicas) {
  agent::DeploymentTarget t;
  t.name = name;
  t.generation = 1;
  t.model_uri = model.filename().string();
  t.model_sha256 = agent::Sha256OfFile(model).value();
  t.engine.context_length = 512;
  t.engine.max_batch = 4;
  t.replicas = replicas;
  t.resources.replicas_min = replicas;
  t.resources.replicas_max = std::max(replicas, 1);
  return t;
}

json CompletionBody(const std::string& model, int tokens) {
  return {{"model", model},
          {"prompt", "Once upon a time there was a little"},
          {"max_tokens", tokens},
          {"temperature", 0},
          {"ignore_eos", true}};
}

int ZeroToFirstToken(const Args& a) {
  const fs::path model =
      Model(a.dir, "tinyllama-1.1b", gguf::SynthType::kQ4_0, "tinyllama-1.1b-q4_0.gguf");
  agent::Registry registry;
  agent::ServingMetrics serving(registry);
  agent::ReplicaManager manager(
      {.model_store = a.dir, .threads_override = a.threads, .drain_grace = std::chrono::seconds(5)},
      &serving);
  sextant::testing::ApiAccess access(a.dir);
  if (!access.ok()) return 1;
  http::InferenceServer server(sextant::testing::LoopbackApi(),
                               access.Deps(manager, &serving, &registry));
  if (Status s = server.Start(); !s.ok()) {
    std::cerr << s.ToString() << "\n";
    return 1;
  }
  agent::Autoscaler autoscaler(manager, {.tick = std::chrono::milliseconds(1000)});
  autoscaler.Start();
  agent::DeploymentTarget t = Target("tiny", model, 1);
  t.resources.replicas_min = 0;
  t.scaling.scale_to_zero_after_seconds = 3600;  // never during the run: the bench scales down
  const Clock::time_point first = Clock::now();
  manager.Upsert(t);
  auto view = manager.WaitSettled("tiny", std::chrono::minutes(10));
  if (!view || view->phase != agent::DeploymentPhase::kReady) {
    std::cerr << "not ready: " << (view ? view->reason : "unknown") << "\n";
    return 1;
  }
  std::printf("first load (sha256 + load): %.0f ms, backend %s\n", Ms(Clock::now() - first),
              view->backend.c_str());
  httplib::Client c("127.0.0.1", server.port());
  access.Authorize(c);
  c.set_read_timeout(600, 0);
  const std::string body = CompletionBody("tiny", 1).dump();
  auto warm = c.Post("/v1/completions", body, "application/json");
  if (!warm || warm->status != 200) {
    std::cerr << "warm-up request failed\n";
    return 1;
  }
  std::vector<double> runs;
  std::vector<double> warm_runs;
  for (int i = 0; i < a.runs; ++i) {
    if (Status s = manager.SetDesired("tiny", 0, "benchmark: to zero", 0, 0); !s.ok()) return 1;
    while (manager.Get("tiny")->replicas_ready != 0 || manager.Get("tiny")->replicas_desired != 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the drained engine is gone
    const Clock::time_point sent = Clock::now();
    // When the replica is ready (model loaded, engine started), seen from outside.
    std::atomic<double> ready_ms{-1};
    std::thread watch([&] {
      while (Ms(Clock::now() - sent) < 60000) {
        if (manager.Get("tiny")->replicas_ready > 0) {
          ready_ms = Ms(Clock::now() - sent);
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    });
    auto res = c.Post("/v1/completions", body, "application/json");
    const double ms = Ms(Clock::now() - sent);
    watch.join();
    if (!res || res->status != 200) {
      std::cerr << "request at zero failed: " << (res ? res->body : "no answer") << "\n";
      return 1;
    }
    runs.push_back(ms);
    // The same request on the replica now up: what the first token costs without scaling.
    const Clock::time_point warm_sent = Clock::now();
    auto again = c.Post("/v1/completions", body, "application/json");
    const double warm_ms = Ms(Clock::now() - warm_sent);
    if (!again || again->status != 200) return 1;
    warm_runs.push_back(warm_ms);
    std::printf(
        "run %d: zero replicas -> first token %.1f ms (replica ready after %.1f ms); same request "
        "on a ready replica %.1f ms\n",
        i + 1, ms, ready_ms.load(), warm_ms);
  }
  std::sort(runs.begin(), runs.end());
  std::printf(
      "zero_to_first_token_ms model=tinyllama-1.1b-q4_0 size_mb=%.0f threads=%d runs=%d "
      "median=%.1f min=%.1f max=%.1f\n",
      static_cast<double>(fs::file_size(model)) / 1e6, a.threads, a.runs, runs[runs.size() / 2],
      runs.front(), runs.back());
  std::sort(warm_runs.begin(), warm_runs.end());
  std::printf("first_token_on_ready_replica_ms median=%.1f\n", warm_runs[warm_runs.size() / 2]);
  autoscaler.Stop();
  server.Shutdown(std::chrono::seconds(1));
  return 0;
}

int ReplicasThroughput(const Args& a) {
  const fs::path model = Model(a.dir, "110m", gguf::SynthType::kQ8_0, "110m-q8_0.gguf");
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int n : a.replicas) {
    agent::Registry registry;
    agent::ServingMetrics serving(registry);
    agent::ReplicaManager manager({.model_store = a.dir}, &serving);
    sextant::testing::ApiAccess access(a.dir);
    if (!access.ok()) return 1;
    http::InferenceServer server(sextant::testing::LoopbackApi(),
                                 access.Deps(manager, &serving, &registry));
    if (Status s = server.Start(); !s.ok()) {
      std::cerr << s.ToString() << "\n";
      return 1;
    }
    manager.Upsert(Target("m110", model, n));
    auto view = manager.WaitSettled("m110", std::chrono::minutes(10));
    if (!view || view->replicas_ready != n) {
      std::cerr << "replicas not ready: " << (view ? view->reason : "unknown") << "\n";
      return 1;
    }
    std::atomic<bool> stop{false};
    std::atomic<int64_t> tokens{0};
    std::atomic<int64_t> failures{0};
    const std::string body = CompletionBody("m110", a.tokens).dump();
    std::vector<std::thread> clients;
    const Clock::time_point start = Clock::now();
    for (int i = 0; i < a.clients; ++i) {
      clients.emplace_back([&] {
        httplib::Client c("127.0.0.1", server.port());
        access.Authorize(c);
        c.set_read_timeout(600, 0);
        while (!stop.load()) {
          auto res = c.Post("/v1/completions", body, "application/json");
          if (!res || res->status != 200) {
            ++failures;
            continue;
          }
          tokens += json::parse(res->body)["usage"]["completion_tokens"].get<int64_t>();
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::seconds(a.seconds));
    stop = true;
    for (auto& t : clients) t.join();
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf(
        "replicas=%d threads_per_replica=%d clients=%d max_tokens=%d tokens=%lld seconds=%.1f "
        "aggregate_tokens_per_second=%.1f failures=%lld\n",
        n, std::max(1, cores / n), a.clients, a.tokens, static_cast<long long>(tokens.load()), secs,
        static_cast<double>(tokens.load()) / secs, static_cast<long long>(failures.load()));
    std::fflush(stdout);
    server.Shutdown(std::chrono::seconds(1));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  if (!ParseArgs(argc, argv, &a)) {
    std::cerr << "usage: scaling_bench zero-to-first-token [--dir DIR] [--runs N] [--threads T]\n"
                 "       scaling_bench replicas-throughput [--dir DIR] [--replicas 1,2,4] "
                 "[--clients C] [--tokens N] [--seconds S]\n";
    return 2;
  }
  return a.mode == "zero-to-first-token" ? ZeroToFirstToken(a) : ReplicasThroughput(a);
}
