// Benchmarks of prefix caching and the paged KV cache of the engine's BatchScheduler (a program
// that prints figures; CTest never runs it). Models are synthesized into --dir once (random
// weights of the named shape, engine/gguf/synth.h) and run on the CPU unless --backend says.
//
//   prefix_cache_bench chat [--shape 110m] [--type q8_0] [--requests 64] [--system 1000]
//                           [--turn 50] [--gen 16] [--max-batch 16] [--batch-tokens 256]
//                           [--warm 0|1]
//     A chat workload: `requests` requests submitted at once, each a `system`-token system prompt
//     shared by all, then its own `turn`-token user turn, generating `gen` tokens greedily. The
//     same requests run through two schedulers on the same model in one run, prefix caching off
//     and then on. With --warm 1, one request with the same system prompt runs to completion in
//     each scheduler before the timed burst (a service whose system prompt was seen before);
//     otherwise the cache starts empty. Reported per run: TTFT p50 and p99 (submission to first
//     token), wall time, requests/s and generated tokens/s, and prompt tokens served from the
//     cache; then the ratios cache off / cache on.
//
//   prefix_cache_bench capacity [--shape 110m] [--type q8_0] [--context 4096] [--slots 4]
//                               [--stream 2048] [--system 1000] [--gen 8]
//     A fixed KV memory budget: `slots` contiguous slots of `context` positions, each stream
//     reserving a full context (the layout before paging). Streams of `stream` positions (a
//     prompt of stream - gen tokens, then gen generated) run in three layouts of that same
//     memory: one block of `context` positions per stream (contiguous slots), blocks of 16 with
//     distinct prompts, and blocks of 16 with prompts sharing a `system`-token prefix (prefix
//     caching on). A few more streams are submitted than each layout is expected to hold;
//     reported: the most streams admitted at once (each holding its KV blocks until it ends),
//     preemptions (0 means every admitted stream kept its blocks to the end) and the ratio to
//     contiguous slots.
//
// Common options: --dir DIR (models; default $TMPDIR/sextant-prefix-bench), --threads T (0: all
// cores), --backend cpu|cuda|hip|auto, --seed S.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/base/percentile.h"
#include "engine/gguf/synth.h"
#include "engine/model/model.h"
#include "engine/serve/scheduler.h"

namespace {

namespace fs = std::filesystem;
using namespace sextant;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

struct Args {
  std::string mode;
  fs::path dir = fs::temp_directory_path() / "sextant-prefix-bench";
  std::string shape = "110m";
  std::string type = "q8_0";
  std::string backend = "cpu";
  int threads = 0;
  uint64_t seed = 1;
  // chat
  int requests = 64;
  int system = 1000;
  int turn = 50;
  int gen = 16;
  int max_batch = 16;
  int batch_tokens = 256;
  bool warm = false;
  // capacity
  int context = 4096;
  int slots = 4;
  int stream = 2048;
  bool gen_set = false;
};

[[noreturn]] void Usage(const std::string& why) {
  std::cerr
      << "prefix_cache_bench: " << why << "\n"
      << "usage: prefix_cache_bench chat|capacity [--shape S] [--type T] [--dir D] "
         "[--threads N] [--backend B] [--seed S] [--requests N] [--system N] [--turn N] "
         "[--gen N] [--max-batch N] [--batch-tokens N] [--warm 0|1] [--context N] [--slots N] "
         "[--stream N]\n";
  std::exit(2);
}

Args ParseArgs(int argc, char** argv) {
  Args a;
  if (argc < 2) Usage("a mode is required");
  a.mode = argv[1];
  if (a.mode != "chat" && a.mode != "capacity") Usage("unknown mode '" + a.mode + "'");
  for (int i = 2; i < argc; ++i) {
    const std::string k = argv[i];
    if (i + 1 >= argc) Usage(k + " needs a value");
    const std::string v = argv[++i];
    const auto num = [&]() -> int {
      try {
        size_t used = 0;
        const int n = std::stoi(v, &used);
        if (used != v.size() || n < 0) throw std::invalid_argument(v);
        return n;
      } catch (const std::exception&) {
        Usage(k + ": '" + v + "' is not a non-negative integer");
      }
    };
    if (k == "--dir") {
      a.dir = v;
    } else if (k == "--shape") {
      a.shape = v;
    } else if (k == "--type") {
      a.type = v;
    } else if (k == "--backend") {
      a.backend = v;
    } else if (k == "--threads") {
      a.threads = num();
    } else if (k == "--seed") {
      a.seed = static_cast<uint64_t>(num());
    } else if (k == "--requests") {
      a.requests = num();
    } else if (k == "--system") {
      a.system = num();
    } else if (k == "--turn") {
      a.turn = num();
    } else if (k == "--gen") {
      a.gen = num();
      a.gen_set = true;
    } else if (k == "--max-batch") {
      a.max_batch = num();
    } else if (k == "--warm") {
      a.warm = num() != 0;
    } else if (k == "--batch-tokens") {
      a.batch_tokens = num();
    } else if (k == "--context") {
      a.context = num();
    } else if (k == "--slots") {
      a.slots = num();
    } else if (k == "--stream") {
      a.stream = num();
    } else {
      Usage("unknown option " + k);
    }
  }
  if (a.mode == "capacity" && !a.gen_set) a.gen = 8;
  return a;
}

std::shared_ptr<const model::Model> LoadModel(const Args& a, int context) {
  const std::optional<gguf::LlamaShape> shape = gguf::LlamaShapeByName(a.shape);
  if (!shape) Usage("unknown shape '" + a.shape + "'");
  const std::optional<gguf::SynthType> type = gguf::SynthTypeByName(a.type);
  if (!type) Usage("unknown type '" + a.type + "'");
  fs::create_directories(a.dir);
  const fs::path path = a.dir / (a.shape + "-" + a.type + "-" + std::to_string(a.seed) + ".gguf");
  if (!fs::exists(path)) {
    std::cerr << "synthesizing " << path.string() << " ...\n";
    const Status s = gguf::SynthesizeLlama(*shape, *type, a.seed, path);
    if (!s.ok()) {
      std::cerr << "prefix_cache_bench: " << s.ToString() << "\n";
      std::exit(1);
    }
  }
  model::LoadOptions lo;
  lo.backend = a.backend;
  lo.threads = a.threads;
  lo.context_length = context;
  auto m = model::Model::Load(path, lo);
  if (!m.ok()) {
    std::cerr << "prefix_cache_bench: " << m.status().ToString() << "\n";
    std::exit(1);
  }
  return *m;
}

// `n` deterministic token ids of the synthesized vocabulary's ordinary pieces (past the 3
// control and 256 byte tokens), different for each salt.
std::vector<int32_t> Tokens(int n, uint32_t salt, int64_t vocab) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  uint64_t x = 0x9E3779B97F4A7C15ull * (salt + 1);
  for (int i = 0; i < n; ++i) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 29;
    t[static_cast<size_t>(i)] = static_cast<int32_t>(259 + x % static_cast<uint64_t>(vocab - 259));
  }
  return t;
}

serve::GenerateRequest Request(std::vector<int32_t> prompt, int gen) {
  serve::GenerateRequest r;
  r.prompt = std::move(prompt);
  r.max_tokens = gen;
  r.sampling.temperature = 0;
  r.stop_at_eos = false;  // random weights: every request generates exactly gen tokens
  return r;
}

// Submits every request at once and waits for all of them.
struct RunFigures {
  std::vector<double> ttft_ms;
  double wall_s = 0;
  uint64_t generated = 0;
  int failed = 0;
  serve::SchedulerStats stats;
  int peak_active = 0;
};

// `warm_up`, when given, runs to completion first (not timed).
RunFigures RunAll(const std::shared_ptr<const model::Model>& m, const serve::SchedulerOptions& so,
                  const std::vector<serve::GenerateRequest>& reqs,
                  const serve::GenerateRequest* warm_up = nullptr) {
  serve::BatchScheduler sched(m, so);
  if (!sched.status().ok()) {
    std::cerr << "prefix_cache_bench: " << sched.status().ToString() << "\n";
    std::exit(1);
  }
  RunFigures f;
  std::mutex mu;
  std::condition_variable cv;
  size_t done = 0;
  if (warm_up != nullptr) {
    bool warmed = false;
    auto id = sched.Submit(*warm_up, nullptr, [&](Result<serve::GenerateStats>) {
      std::lock_guard<std::mutex> lock(mu);
      warmed = true;
      cv.notify_all();
    });
    if (!id.ok()) {
      std::cerr << "prefix_cache_bench: " << id.status().ToString() << "\n";
      std::exit(1);
    }
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return warmed; });
  }
  const serve::SchedulerStats before = sched.stats();
  const Clock::time_point t0 = Clock::now();
  for (const serve::GenerateRequest& r : reqs) {
    auto id = sched.Submit(r, nullptr, [&](Result<serve::GenerateStats> res) {
      std::lock_guard<std::mutex> lock(mu);
      if (res.ok()) {
        f.ttft_ms.push_back(res->ttft_ms);
        f.generated += static_cast<uint64_t>(res->generated_tokens);
      } else {
        ++f.failed;
        std::cerr << "request failed: " << res.status().ToString() << "\n";
      }
      ++done;
      cv.notify_all();
    });
    if (!id.ok()) {
      std::cerr << "prefix_cache_bench: " << id.status().ToString() << "\n";
      std::exit(1);
    }
  }
  // Peak admitted requests, sampled while the run goes on.
  for (;;) {
    f.peak_active = std::max(f.peak_active, sched.stats().active);
    std::unique_lock<std::mutex> lock(mu);
    if (cv.wait_for(lock, std::chrono::milliseconds(2), [&] { return done == reqs.size(); })) break;
  }
  f.wall_s = Seconds(Clock::now() - t0);
  f.stats = sched.stats();
  // The timed requests' own counters.
  f.stats.prompt_tokens -= before.prompt_tokens;
  f.stats.cached_prompt_tokens -= before.cached_prompt_tokens;
  f.stats.preemptions -= before.preemptions;
  return f;
}

std::string Fixed(double v, int digits = 1) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

int Chat(const Args& a) {
  const int context = a.system + a.turn + a.gen + 16;
  auto m = LoadModel(a, context);
  const int64_t vocab = m->info().vocab_size;
  std::printf(
      "chat: %s %s (%s, %d threads), %d requests at once: a %d-token shared system prompt + "
      "a %d-token user turn each, %d generated greedily; max_batch %d, %d tokens per "
      "forward pass, KV blocks of 16; %s\n",
      a.shape.c_str(), a.type.c_str(), m->backend_device().c_str(), m->threads(), a.requests,
      a.system, a.turn, a.gen, a.max_batch, a.batch_tokens,
      a.warm ? "one earlier request with the system prompt (warm)" : "cold start");
  const std::vector<int32_t> system = Tokens(a.system, 1, vocab);
  std::vector<serve::GenerateRequest> reqs;
  for (int i = 0; i < a.requests; ++i) {
    std::vector<int32_t> p = system;
    const std::vector<int32_t> turn = Tokens(a.turn, 1000 + static_cast<uint32_t>(i), vocab);
    p.insert(p.end(), turn.begin(), turn.end());
    reqs.push_back(Request(std::move(p), a.gen));
  }
  std::vector<int32_t> warm_prompt = system;
  const std::vector<int32_t> warm_turn = Tokens(a.turn, 999, vocab);
  warm_prompt.insert(warm_prompt.end(), warm_turn.begin(), warm_turn.end());
  const serve::GenerateRequest warm_up = Request(std::move(warm_prompt), a.gen);
  RunFigures runs[2];
  for (int cache = 0; cache < 2; ++cache) {
    serve::SchedulerOptions so;
    so.max_batch = a.max_batch;
    so.max_queue = a.requests;
    so.context_length = context;
    so.max_batch_tokens = a.batch_tokens;
    so.threads = a.threads;
    so.prefix_caching = cache == 1;
    runs[cache] = RunAll(m, so, reqs, a.warm ? &warm_up : nullptr);
    const RunFigures& f = runs[cache];
    std::printf(
        "  cache %-3s  TTFT p50 %9.1f ms  p99 %9.1f ms  wall %7.2f s  %6.2f req/s  %7.1f "
        "generated tok/s  cached prompt tokens %llu of %llu  preemptions %llu  failed %d\n",
        cache ? "on" : "off", Percentile(f.ttft_ms, 0.5), Percentile(f.ttft_ms, 0.99), f.wall_s,
        static_cast<double>(reqs.size()) / f.wall_s, static_cast<double>(f.generated) / f.wall_s,
        static_cast<unsigned long long>(f.stats.cached_prompt_tokens),
        static_cast<unsigned long long>(f.stats.prompt_tokens),
        static_cast<unsigned long long>(f.stats.preemptions), f.failed);
  }
  const RunFigures& off = runs[0];
  const RunFigures& on = runs[1];
  std::printf("  cache off / on: TTFT p50 %sx lower, p99 %sx lower; throughput %sx higher\n",
              Fixed(Percentile(off.ttft_ms, 0.5) / Percentile(on.ttft_ms, 0.5)).c_str(),
              Fixed(Percentile(off.ttft_ms, 0.99) / Percentile(on.ttft_ms, 0.99)).c_str(),
              Fixed(off.wall_s / on.wall_s).c_str());
  return off.failed + on.failed == 0 ? 0 : 1;
}

int Capacity(const Args& a) {
  if (a.context % 8 != 0 || a.stream > a.context || a.gen >= a.stream ||
      a.system >= a.stream - a.gen) {
    Usage(
        "capacity needs context a multiple of 8, stream <= context, gen < stream and system < "
        "stream - gen");
  }
  auto m = LoadModel(a, a.context);
  const int64_t vocab = m->info().vocab_size;
  const model::ModelInfo& mi = m->info();
  const int64_t budget = int64_t{a.slots} * mi.kv_bytes_per_sequence(a.context);
  const int block = 16;
  const int blocks = static_cast<int>(int64_t{a.slots} * a.context / block);
  const int prompt = a.stream - a.gen;
  std::printf(
      "capacity: %s %s (%s, %d threads); KV budget %.1f MiB = %d contiguous slots of %d "
      "positions = %d blocks of %d; streams of %d positions (%d-token prompt + %d "
      "generated)\n",
      a.shape.c_str(), a.type.c_str(), m->backend_device().c_str(), m->threads(),
      static_cast<double>(budget) / (1024.0 * 1024.0), a.slots, a.context, blocks, block, a.stream,
      prompt, a.gen);
  struct Layout {
    const char* name;
    int block_tokens;
    int kv_blocks;
    bool shared_prefix;
    int expected;  // streams the layout should hold at once
  };
  const int per_stream = (a.stream - 1 + block - 1) / block;  // positions 0..stream-2 are written
  const int shared_blocks = a.system / block;
  const int reserve = blocks / 100;  // the scheduler keeps 1% for running streams' growth
  const Layout layouts[] = {
      {"contiguous slots", a.context, a.slots, false, a.slots},
      {"paged, distinct prompts", block, blocks, false, (blocks - reserve) / per_stream},
      {"paged, shared prefix", block, blocks, true,
       (blocks - reserve - shared_blocks) / (per_stream - shared_blocks)},
  };
  int baseline = 0;
  int failed = 0;
  for (const Layout& l : layouts) {
    const int n = l.expected + 2;  // more than it should hold: the rest must wait
    std::vector<serve::GenerateRequest> reqs;
    const std::vector<int32_t> system = Tokens(a.system, 7, vocab);
    for (int i = 0; i < n; ++i) {
      std::vector<int32_t> p;
      if (l.shared_prefix) p = system;
      const std::vector<int32_t> own =
          Tokens(prompt - static_cast<int>(p.size()), 2000 + static_cast<uint32_t>(i), vocab);
      p.insert(p.end(), own.begin(), own.end());
      reqs.push_back(Request(std::move(p), a.gen));
    }
    serve::SchedulerOptions so;
    so.max_batch = n;
    so.max_queue = n;
    so.context_length = a.context;
    so.max_batch_tokens = 256;
    so.threads = a.threads;
    so.kv_block_tokens = l.block_tokens;
    so.kv_blocks = l.kv_blocks;
    so.prefix_caching = l.shared_prefix;
    const RunFigures f = RunAll(m, so, reqs);
    failed += f.failed;
    if (baseline == 0) baseline = f.peak_active;
    std::printf(
        "  %-24s %4d KV blocks of %4d: %3d streams submitted, at most %3d admitted at once "
        "(%.2fx contiguous), preemptions %llu, %.1f s\n",
        l.name, l.kv_blocks, l.block_tokens, n, f.peak_active,
        baseline > 0 ? static_cast<double>(f.peak_active) / baseline : 0.0,
        static_cast<unsigned long long>(f.stats.preemptions), f.wall_s);
  }
  return failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = ParseArgs(argc, argv);
  return a.mode == "chat" ? Chat(a) : Capacity(a);
}
