// `sextant bench MODEL.gguf`: prompt-processing and generation speed of the embedded engine, as
// llama-bench's pp512 / tg128: each test starts from an empty KV cache; pp feeds -p tokens in
// batches, tg generates -n tokens one at a time (greedy, each token fed back). Every figure is
// the mean and standard deviation over -r repetitions after one warm-up run. Also reported: peak
// resident memory (VmHWM) next to the file size and KV cache, and the time from the start of the
// load to the first generated token. With --streams N, also N concurrent greedy streams through
// the continuous-batching scheduler against one stream (aggregate t/s; run after the peak memory
// is read, since N sequences hold N KV regions). On the CPU backend, also the bandwidth bound of
// generation measured in the same run: the weights one decode step reads, timed as a plain read
// with the same threads (engine/backends/cpu/read_bandwidth.h) right after each tg repetition,
// and tg as a fraction of it. Pairing each repetition with its own read keeps the fraction
// meaningful on a shared host, where the bandwidth available moves between runs.
// Exit status: 0 ok, 1 failure, 2 usage.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "app/cli/verb.h"
#include "engine/backends/cpu/read_bandwidth.h"
#include "engine/base/percentile.h"
#include "engine/model/model.h"
#include "engine/serve/scheduler.h"

namespace sextant::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchArgs {
  std::string model;
  int n_prompt = 512;
  int n_gen = 128;
  int threads = 0;
  int reps = 5;
  int batch = 512;
  int streams = 0;  // > 0: also the concurrent-streams test
  std::string backend = "auto";
  std::string output = "table";
};

double PeakRssMib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

int32_t Argmax(const std::vector<float>& v) {
  size_t best = 0;
  for (size_t i = 1; i < v.size(); ++i) {
    if (v[i] > v[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

struct Figures {
  double mean = 0, stddev = 0;
  std::vector<double> samples;
};

Figures Summarize(std::vector<double> samples) {
  Figures f;
  f.samples = std::move(samples);
  if (f.samples.empty()) return f;
  for (double s : f.samples) f.mean += s;
  f.mean /= static_cast<double>(f.samples.size());
  if (f.samples.size() > 1) {
    double ss = 0;
    for (double s : f.samples) ss += (s - f.mean) * (s - f.mean);
    f.stddev = std::sqrt(ss / static_cast<double>(f.samples.size() - 1));
  }
  return f;
}

// Seconds to process n prompt tokens from position 0.
Result<double> PromptPass(model::ModelContext& ctx, int n, std::vector<model::BatchToken>& batch,
                          std::vector<float>& logits) {
  const int64_t vocab = ctx.vocab_size();
  for (int i = 0; i < n; ++i) {
    // Deterministic token ids spread over the vocabulary.
    const int32_t id = static_cast<int32_t>((int64_t{i} * 7919 + 13) % vocab);
    batch[static_cast<size_t>(i)] = model::BatchToken{id, i, 0, i + 1 == n};
  }
  const std::vector<int32_t> blocks = ctx.SequentialBlocks(0);
  const model::SequenceBlocks seq{blocks};
  const Clock::time_point t0 = Clock::now();
  SEXTANT_RETURN_IF_ERROR(
      ctx.Forward(std::span(batch.data(), static_cast<size_t>(n)), std::span(&seq, 1), logits));
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Seconds to generate n tokens one at a time from position 0.
Result<double> GenPass(model::ModelContext& ctx, int n, std::vector<float>& logits, int32_t first) {
  int32_t token = first;
  const std::vector<int32_t> blocks = ctx.SequentialBlocks(0);
  const model::SequenceBlocks seq{blocks};
  const Clock::time_point t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    const model::BatchToken step{token, i, 0, true};
    SEXTANT_RETURN_IF_ERROR(ctx.Forward(std::span(&step, 1), std::span(&seq, 1), logits));
    token = Argmax(logits);
  }
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// One pass of `streams` greedy requests of n tokens each (8-token prompts) run together through
// the continuous-batching scheduler: aggregate generated tokens per second, wall time from the
// first Submit to the last completion, and each request's time from Submit to its first token.
struct StreamsFigures {
  double tps = 0;
  std::vector<double> ttft_ms;  // one per request
};

Result<StreamsFigures> StreamsPass(const std::shared_ptr<const model::Model>& m, int streams,
                                   int n) {
  serve::SchedulerOptions so;
  so.max_batch = streams;
  so.max_queue = streams;
  so.context_length = 8 + n + 1;
  serve::BatchScheduler sched(m, so);
  SEXTANT_RETURN_IF_ERROR(sched.status());
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  Status failure;
  StreamsFigures fig;
  const int64_t vocab = m->info().vocab_size;
  const Clock::time_point t0 = Clock::now();
  for (int s = 0; s < streams; ++s) {
    serve::GenerateRequest req;
    for (int i = 0; i < 8; ++i) {
      req.prompt.push_back(static_cast<int32_t>((int64_t{s} * 104729 + i * 7919 + 13) % vocab));
    }
    req.max_tokens = n;
    req.stop_at_eos = false;
    Result<uint64_t> id =
        sched.Submit(std::move(req), nullptr, [&](Result<serve::GenerateStats> r) {
          std::lock_guard<std::mutex> lock(mu);
          if (!r.ok() && failure.ok()) failure = r.status();
          if (r.ok()) fig.ttft_ms.push_back(r->ttft_ms);
          ++done;
          cv.notify_all();
        });
    if (!id.ok()) return id.status();
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done == streams; });
  SEXTANT_RETURN_IF_ERROR(failure);
  fig.tps =
      static_cast<double>(streams) * n / std::chrono::duration<double>(Clock::now() - t0).count();
  return fig;
}

std::string FmtFigure(const Figures& f) {
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%.2f ± %.2f", f.mean, f.stddev);
  return buf;
}

int Bench(const BenchArgs& args) {
  if (args.output != "table" && args.output != "json") {
    std::fprintf(stderr, "sextant bench: -o must be table or json\n");
    return 2;
  }
  if (args.reps < 1 || args.n_prompt < 0 || args.n_gen < 0 || args.batch < 1) {
    std::fprintf(stderr, "sextant bench: -r and -b must be >= 1, -p and -n >= 0\n");
    return 2;
  }
  model::LoadOptions lo;
  lo.backend = args.backend;
  lo.threads = args.threads;
  const Clock::time_point t_load = Clock::now();
  Result<std::shared_ptr<const model::Model>> loaded = model::Model::Load(args.model, lo);
  if (!loaded.ok()) {
    std::fprintf(stderr, "sextant bench: %s\n", loaded.status().ToString().c_str());
    return 1;
  }
  std::shared_ptr<const model::Model> m = std::move(loaded).value();
  const double load_ms = std::chrono::duration<double, std::milli>(Clock::now() - t_load).count();
  if (isatty(STDERR_FILENO) == 1 && !m->backend_note().empty()) {
    std::fprintf(stderr, "note: %s\n", m->backend_note().c_str());
  }
  const model::ModelInfo& info = m->info();

  // Load to first token: a one-token prompt (BOS or id 1) and the first sampled token.
  std::vector<float> logits(static_cast<size_t>(info.vocab_size));
  double first_token_ms = 0;
  {
    model::ContextOptions co;
    co.context_length = 16;
    co.max_batch_tokens = 1;
    Result<std::unique_ptr<model::ModelContext>> c = m->NewContext(co);
    if (!c.ok()) {
      std::fprintf(stderr, "sextant bench: %s\n", c.status().ToString().c_str());
      return 1;
    }
    const model::BatchToken bos{std::min<int32_t>(1, static_cast<int32_t>(info.vocab_size - 1)), 0,
                                0, true};
    const std::vector<int32_t> blocks = (*c)->SequentialBlocks(0);
    const model::SequenceBlocks seq{blocks};
    Status st = (*c)->Forward(std::span(&bos, 1), std::span(&seq, 1), logits);
    if (!st.ok()) {
      std::fprintf(stderr, "sextant bench: %s\n", st.ToString().c_str());
      return 1;
    }
    (void)Argmax(logits);
    first_token_ms = std::chrono::duration<double, std::milli>(Clock::now() - t_load).count();
  }

  model::ContextOptions co;
  co.context_length = std::max({args.n_prompt, args.n_gen, 1});
  co.max_batch_tokens = std::max(1, std::min(args.n_prompt, args.batch));
  Result<std::unique_ptr<model::ModelContext>> made = m->NewContext(co);
  if (!made.ok()) {
    std::fprintf(stderr, "sextant bench: %s\n", made.status().ToString().c_str());
    return 1;
  }
  model::ModelContext& ctx = **made;
  std::vector<model::BatchToken> batch(static_cast<size_t>(std::max(args.n_prompt, 1)));

  // The bandwidth bound of generation: the weights a decode step reads (CPU backend: the file
  // mapping, already resident), read with the same threads right after each tg repetition.
  const bool time_reads = m->backend_name() == "cpu" && args.n_gen > 0;
  const std::vector<std::span<const uint8_t>> regions =
      time_reads ? m->DecodeWeightRegions() : std::vector<std::span<const uint8_t>>{};
  cpu::ReadFigures read;            // the fastest read of the run
  std::vector<double> tg_of_bound;  // each repetition's tg over the bound read just after it
  std::vector<double> pp, tg;
  for (int rep = -1; rep < args.reps; ++rep) {  // rep -1: warm-up
    if (args.n_prompt > 0) {
      Result<double> s =
          PromptPass(ctx, rep < 0 ? std::min(args.n_prompt, 16) : args.n_prompt, batch, logits);
      if (!s.ok()) {
        std::fprintf(stderr, "sextant bench: %s\n", s.status().ToString().c_str());
        return 1;
      }
      if (rep >= 0) pp.push_back(args.n_prompt / *s);
    }
    if (args.n_gen > 0) {
      Result<double> s = GenPass(ctx, rep < 0 ? std::min(args.n_gen, 4) : args.n_gen, logits, 1);
      if (!s.ok()) {
        std::fprintf(stderr, "sextant bench: %s\n", s.status().ToString().c_str());
        return 1;
      }
      if (rep >= 0) tg.push_back(args.n_gen / *s);
      if (rep >= 0 && time_reads) {
        const cpu::ReadFigures r = cpu::TimeRead(regions, m->threads(), 2);
        if (r.best_seconds > 0) tg_of_bound.push_back(tg.back() * r.best_seconds);
        if (read.best_seconds == 0 || r.best_seconds < read.best_seconds) read = r;
      }
    }
  }
  const Figures ppf = Summarize(pp);
  const Figures tgf = Summarize(tg);
  const double peak_mib = PeakRssMib();
  // Concurrent streams vs one stream through the same scheduler (best of -r runs each).
  // TTFT percentiles are over every request of every repetition of the many-streams pass.
  double one_tps = 0, many_tps = 0;
  std::vector<double> ttft_ms;
  if (args.streams > 0 && args.n_gen > 0) {
    for (int rep = 0; rep < args.reps; ++rep) {
      Result<StreamsFigures> one = StreamsPass(m, 1, args.n_gen);
      Result<StreamsFigures> many = StreamsPass(m, args.streams, args.n_gen);
      if (!one.ok() || !many.ok()) {
        std::fprintf(stderr, "sextant bench: %s\n",
                     (!one.ok() ? one.status() : many.status()).ToString().c_str());
        return 1;
      }
      one_tps = std::max(one_tps, one->tps);
      many_tps = std::max(many_tps, many->tps);
      ttft_ms.insert(ttft_ms.end(), many->ttft_ms.begin(), many->ttft_ms.end());
    }
  }
  const double ttft_p50 = Percentile(ttft_ms, 0.5), ttft_p99 = Percentile(ttft_ms, 0.99);
  const double tg_bound = read.best_seconds > 0 ? 1.0 / read.best_seconds : 0.0;
  const Figures boundf = Summarize(tg_of_bound);
  const double file_mib = static_cast<double>(info.file_size) / (1024.0 * 1024.0);
  const double kv_mib = static_cast<double>(ctx.kv_bytes()) / (1024.0 * 1024.0);
  Result<std::string> sha = m->Sha256();
  const std::string type_name(gguf::TensorTypeName(info.main_type));

  if (args.output == "json") {
    nlohmann::json j;
    j["model"] = args.model;
    j["model_sha256"] = sha.ok() ? *sha : "";
    j["model_type"] = type_name;
    j["model_size_bytes"] = info.file_size;
    j["params"] = info.parameter_count;
    j["backend"] = std::string(m->backend_name());
    j["device"] = m->backend_device();
    j["kernel_level"] = m->kernel_level();
    j["threads"] = m->threads();
    j["n_prompt"] = args.n_prompt;
    j["n_gen"] = args.n_gen;
    j["reps"] = args.reps;
    j["pp_tps"] = ppf.mean;
    j["pp_tps_stddev"] = ppf.stddev;
    j["pp_samples"] = ppf.samples;
    j["tg_tps"] = tgf.mean;
    j["tg_tps_stddev"] = tgf.stddev;
    j["tg_samples"] = tgf.samples;
    j["peak_rss_mib"] = peak_mib;
    j["file_size_mib"] = file_mib;
    j["kv_cache_mib"] = kv_mib;
    j["load_ms"] = load_ms;
    j["load_to_first_token_ms"] = first_token_ms;
    if (read.bytes > 0) {
      j["decode_read_bytes"] = read.bytes;
      j["read_gbs"] = read.gigabytes_per_s;
      j["tg_bound_tps"] = tg_bound;
      j["tg_fraction_of_bound"] = boundf.mean;
      j["tg_fraction_of_bound_stddev"] = boundf.stddev;
      j["tg_fraction_of_fastest_read"] = tg_bound > 0 ? tgf.mean / tg_bound : 0.0;
    }
    if (args.streams > 0) {
      j["streams"] = args.streams;
      j["streams_tps"] = many_tps;
      j["single_stream_tps"] = one_tps;
      j["streams_speedup"] = one_tps > 0 ? many_tps / one_tps : 0.0;
      j["streams_ttft_p50_ms"] = ttft_p50;
      j["streams_ttft_p99_ms"] = ttft_p99;
    }
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("| %-28s | %9s | %8s | %-22s | %7s | %7s | %20s |\n", "model", "size", "params",
              "backend", "threads", "test", "t/s");
  std::printf("| %.28s | %.9s | %.8s | %.22s | %.7s | %.7s | %.20s |\n",
              "------------------------------", "----------", "---------",
              "-----------------------", "--------", "--------", "---------------------");
  const std::string name = std::filesystem::path(args.model).filename().string() + " " + type_name;
  char size[32], params[32];
  std::snprintf(size, sizeof(size), "%.2f MiB", file_mib);
  std::snprintf(params, sizeof(params), "%.2f M", static_cast<double>(info.parameter_count) / 1e6);
  const std::string backend = std::string(m->backend_name()) + " (" + m->kernel_level() + ")";
  if (args.n_prompt > 0) {
    std::printf("| %-28s | %9s | %8s | %-22s | %7d | %7s | %20s |\n", name.c_str(), size, params,
                backend.c_str(), m->threads(), ("pp" + std::to_string(args.n_prompt)).c_str(),
                FmtFigure(ppf).c_str());
  }
  if (args.n_gen > 0) {
    std::printf("| %-28s | %9s | %8s | %-22s | %7d | %7s | %20s |\n", name.c_str(), size, params,
                backend.c_str(), m->threads(), ("tg" + std::to_string(args.n_gen)).c_str(),
                FmtFigure(tgf).c_str());
  }
  if (read.bytes > 0) {
    std::printf(
        "\ngeneration reads %.1f MB of weights per token: %.1f GB/s at tg%d, %.0f%% +- %.0f%% of "
        "the rate this machine read them at with %d threads right after each repetition; %.0f%% "
        "of the fastest read, %.1f GB/s (bound %.1f t/s)\n",
        static_cast<double>(read.bytes) / 1e6, tgf.mean * static_cast<double>(read.bytes) / 1e9,
        args.n_gen, 100.0 * boundf.mean, 100.0 * boundf.stddev, m->threads(),
        tg_bound > 0 ? 100.0 * tgf.mean / tg_bound : 0.0, read.gigabytes_per_s, tg_bound);
  }
  if (args.streams > 0 && args.n_gen > 0) {
    std::printf(
        "\n%d concurrent streams: %.2f t/s aggregate; 1 stream: %.2f t/s (%.2fx), best of %d; "
        "time to first token p50 %.0f ms, p99 %.0f ms\n",
        args.streams, many_tps, one_tps, one_tps > 0 ? many_tps / one_tps : 0.0, args.reps,
        ttft_p50, ttft_p99);
  }
  std::printf(
      "\npeak RSS %.1f MiB (file %.1f MiB + KV cache %.1f MiB); load %.0f ms, "
      "load to first token %.0f ms\nsha256 %s\n",
      peak_mib, file_mib, kv_mib, load_ms, first_token_ms,
      sha.ok() ? sha->c_str() : sha.status().ToString().c_str());
  return 0;
}

void SetupBench(CLI::App& root, VerbContext& ctx) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* cmd = root.add_subcommand(
      "bench", "Measure prompt-processing and generation speed (like llama-bench pp512/tg128)");
  cmd->add_option("MODEL", args->model, "GGUF model file")->required();
  cmd->add_option("-p,--n-prompt", args->n_prompt, "Prompt tokens per pp test (default 512)");
  cmd->add_option("-n,--n-gen", args->n_gen, "Tokens per tg test (default 128)");
  cmd->add_option("-t,--threads", args->threads, "CPU threads (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("-r,--repetitions", args->reps, "Repetitions (default 5)");
  cmd->add_option("-b,--batch-size", args->batch, "Tokens per forward pass in pp (default 512)");
  cmd->add_option("--streams", args->streams,
                  "Also run N concurrent greedy streams of -n tokens through the batch scheduler "
                  "and compare their aggregate t/s with one stream's")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--backend", args->backend, "auto, cpu, cuda or hip (default auto)");
  cmd->add_option("-o,--output", args->output, "table or json (default table)");
  cmd->callback([args, &ctx] { ctx.exit_code = Bench(*args); });
}

}  // namespace

SEXTANT_REGISTER_VERB(bench, SetupBench);

}  // namespace sextant::cli
