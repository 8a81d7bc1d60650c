// `sextant-agent bench-http --model FILE.gguf` (hidden): measures the OpenAI-compatible API end to
// end on 127.0.0.1. It serves the model through the same replica manager and HTTP listener the
// agent runs, then streams completions: first one request alone, then N at once. It prints the
// aggregate generation rate of each phase, their ratio, and time to first token (p50/p99, as
// the client sees it: request sent to first content chunk received).
//
//   sextant-agent bench-http --synth 110m --synth-type q8_0 --streams 32 --tokens 64
//   sextant-agent bench-http --model FILE.gguf --streams 32
#include <httplib.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "app/agent/metrics/registry.h"
#include "app/agent/replicas/replica_manager.h"
#include "app/agent/replicas/serving_metrics.h"
#include "app/cli/verb.h"
#include "connectors/http/inference_server.h"
#include "engine/base/percentile.h"
#include "engine/gguf/synth.h"

namespace sextant::agent {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct BenchOptions {
  std::string model;
  std::string synth_shape;  // synthesize a model of this shape when --model is not given
  std::string synth_type = "q8_0";
  int streams = 32;
  int tokens = 64;
  int threads = 0;
  int max_batch = 0;  // 0: streams
  std::string prompt = "Once upon a time, in a land far away, there lived a";
  std::string backend = "auto";
};

struct StreamFigures {
  bool ok = false;
  int tokens = 0;
  double ttft_s = 0;
  double total_s = 0;
  std::string error;
};

// POST with the response body delivered as it arrives (httplib 0.11 has no Post overload that
// takes a content receiver).
httplib::Result PostStreaming(httplib::Client& c, const std::string& path, const std::string& body,
                              std::function<bool(const char*, size_t)> on_data) {
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.set_header("Content-Type", "application/json");
  req.body = body;
  req.content_receiver = [on_data](const char* data, size_t n, uint64_t, uint64_t) {
    return on_data(data, n);
  };
  return c.send(req);
}

StreamFigures RunStream(int port, const BenchOptions& o) {
  StreamFigures f;
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(600, 0);
  json body = {{"model", "bench"},
               {"prompt", o.prompt},
               {"max_tokens", o.tokens},
               {"temperature", 0},
               {"ignore_eos", true},
               {"stream", true},
               {"stream_options", {{"include_usage", true}}}};
  const Clock::time_point start = Clock::now();
  bool first = true;
  std::string buffer;
  auto res = PostStreaming(c, "/v1/completions", body.dump(), [&](const char* data, size_t n) {
    buffer.append(data, n);
    size_t end;
    while ((end = buffer.find("\n\n")) != std::string::npos) {
      const std::string event = buffer.substr(0, end);
      buffer.erase(0, end + 2);
      if (event.rfind("data: {", 0) != 0) continue;
      json j = json::parse(event.substr(6), nullptr, false);
      if (j.is_discarded()) continue;
      if (j.contains("usage") && j["choices"].empty()) {
        f.tokens = j["usage"]["completion_tokens"].get<int>();
      } else if (first && !j["choices"].empty() &&
                 !j["choices"][0]["text"].get<std::string>().empty()) {
        first = false;
        f.ttft_s = std::chrono::duration<double>(Clock::now() - start).count();
      }
    }
    return true;
  });
  f.total_s = std::chrono::duration<double>(Clock::now() - start).count();
  if (!res) {
    f.error = httplib::to_string(res.error());
  } else if (res->status != 200) {
    f.error = "HTTP " + std::to_string(res->status);
  } else {
    f.ok = f.tokens > 0;
    if (!f.ok) f.error = "no usage chunk";
  }
  return f;
}

int RunBench(const BenchOptions& o) {
  std::filesystem::path model;
  if (!o.model.empty()) {
    model = std::filesystem::absolute(o.model);
  } else {
    auto shape = gguf::LlamaShapeByName(o.synth_shape);
    auto type = gguf::SynthTypeByName(o.synth_type);
    if (!shape || !type) {
      std::fprintf(stderr, "bench-http: give --model FILE or --synth SHAPE [--synth-type TYPE]\n");
      return 2;
    }
    model = std::filesystem::temp_directory_path() /
            ("sextant-bench-" + o.synth_shape + "-" + o.synth_type + ".gguf");
    if (!std::filesystem::exists(model)) {
      if (Status s = gguf::SynthesizeLlama(*shape, *type, 1, model); !s.ok()) {
        std::fprintf(stderr, "bench-http: %s\n", s.ToString().c_str());
        return 1;
      }
    }
  }
  auto sha = agent::Sha256OfFile(model);
  if (!sha.ok()) {
    std::fprintf(stderr, "bench-http: %s\n", sha.status().ToString().c_str());
    return 1;
  }
  agent::Registry registry;
  agent::ServingMetrics serving(registry);
  agent::ReplicaManager manager(
      {.model_store = model.parent_path(), .max_queue = std::max(64, o.streams * 2)}, &serving);
  agent::DeploymentTarget t;
  t.name = "bench";
  t.generation = 1;
  t.model_uri = model.filename().string();
  t.model_sha256 = sha.value();
  t.engine.max_batch = o.max_batch > 0 ? o.max_batch : o.streams;
  t.engine.threads = o.threads;
  t.engine.backend = o.backend;
  manager.Upsert(t);
  auto view = manager.WaitSettled("bench", std::chrono::minutes(10));
  if (!view || view->phase != DeploymentPhase::kReady) {
    std::fprintf(stderr, "bench-http: the model did not load: %s\n",
                 view ? view->reason.c_str() : "unknown");
    return 1;
  }
  http::InferenceServer server({.host = "127.0.0.1", .port = 0}, manager, &serving, &registry);
  if (Status s = server.Start(); !s.ok()) {
    std::fprintf(stderr, "bench-http: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("model %s (%s), backend %s, max_batch %d, %d tokens per stream\n",
              model.filename().c_str(), sha.value().substr(0, 12).c_str(), view->backend.c_str(),
              t.engine.max_batch, o.tokens);

  RunStream(server.port(), o);  // warm-up (page cache, thread pool)
  const StreamFigures single = RunStream(server.port(), o);
  if (!single.ok) {
    std::fprintf(stderr, "bench-http: single stream failed: %s\n", single.error.c_str());
    return 1;
  }
  const double single_tps = single.tokens / single.total_s;

  std::vector<std::future<StreamFigures>> futures;
  const Clock::time_point start = Clock::now();
  for (int i = 0; i < o.streams; ++i) {
    futures.push_back(std::async(std::launch::async, [&] { return RunStream(server.port(), o); }));
  }
  std::vector<double> ttfts;
  int tokens = 0;
  int failed = 0;
  for (auto& fut : futures) {
    StreamFigures f = fut.get();
    if (!f.ok) {
      ++failed;
      continue;
    }
    tokens += f.tokens;
    ttfts.push_back(f.ttft_s);
  }
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  const double aggregate_tps = tokens / wall;
  std::printf("1 stream:   %6.1f tokens/s, ttft %.1f ms\n", single_tps, single.ttft_s * 1e3);
  std::printf("%d streams: %6.1f tokens/s aggregate (%d tokens in %.2f s, %d failed)\n", o.streams,
              aggregate_tps, tokens, wall, failed);
  std::printf("ratio:      %.2fx\n", aggregate_tps / single_tps);
  std::printf("ttft over %d streams: p50 %.1f ms, p99 %.1f ms\n", o.streams,
              Percentile(ttfts, 0.5) * 1e3, Percentile(ttfts, 0.99) * 1e3);
  server.Shutdown(std::chrono::seconds(1));
  manager.Shutdown(std::chrono::seconds(1));
  return failed == 0 ? 0 : 1;
}

void SetupBenchHttp(CLI::App& root, cli::VerbContext& ctx) {
  auto opts = std::make_shared<BenchOptions>();
  CLI::App* sub = root.add_subcommand(
      "bench-http", "Benchmark the inference API: N concurrent streams against one");
  sub->group("");  // hidden
  sub->add_option("--model", opts->model, "GGUF model file");
  sub->add_option("--synth", opts->synth_shape,
                  "synthesize a model of this shape instead (110m, tinyllama-1.1b ...)");
  sub->add_option("--synth-type", opts->synth_type, "type of the synthesized model (q8_0 ...)");
  sub->add_option("--streams", opts->streams, "concurrent streams")->check(CLI::Range(1, 512));
  sub->add_option("--tokens", opts->tokens, "tokens per stream")->check(CLI::Range(1, 4096));
  sub->add_option("--threads", opts->threads, "engine threads (0: all cores)");
  sub->add_option("--max-batch", opts->max_batch, "requests batched at once (0: the stream count)");
  sub->add_option("--backend", opts->backend, "auto, cpu, cuda, hip");
  sub->add_option("--prompt", opts->prompt, "prompt text");
  sub->callback([opts, &ctx] {
    spdlog::set_level(spdlog::level::warn);
    ctx.exit_code = RunBench(*opts);
  });
}

}  // namespace
}  // namespace sextant::agent

SEXTANT_REGISTER_VERB(bench_http, sextant::agent::SetupBenchHttp);
