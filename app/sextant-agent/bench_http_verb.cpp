// `sextant-agent bench-http --model FILE.gguf` (hidden): measures the OpenAI-compatible API end to
// end on 127.0.0.1. It serves the model through the same replica manager and HTTP listener the
// agent runs, then streams completions: first one request alone, then N at once. It prints the
// aggregate generation rate of each phase, their ratio, and time to first token (p50/p99, as
// the client sees it: request sent to first content chunk received).
//
// `--attacks` measures what hostile bodies cost a real agent: it starts `sextant-agent serve`
// (this binary) on 127.0.0.1 with a key made in its store, sends N at once of each attack (a
// 200 MB JSON body gzipped to ~200 KB, a 4 MB body of "[", 1e309), and prints the answers and
// the agent's peak resident memory (VmHWM, reset between phases) against its idle figure.
//
//   sextant-agent bench-http --synth 110m --synth-type q8_0 --streams 32 --tokens 64
//   sextant-agent bench-http --model FILE.gguf --streams 32
//   sextant-agent bench-http --attacks --concurrency 24
#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "app/agent/audit/audit_batcher.h"
#include "app/agent/metrics/registry.h"
#include "app/agent/replicas/replica_manager.h"
#include "app/agent/replicas/serving_metrics.h"
#include "app/agent/state/api_keys.h"
#include "app/cli/verb.h"
#include "connectors/agent/identity_certs.h"
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
  bool attacks = false;
  int concurrency = 24;
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
                              const std::string& key,
                              std::function<bool(const char*, size_t)> on_data) {
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.set_header("Content-Type", "application/json");
  req.set_header("Authorization", "Bearer " + key);
  req.body = body;
  req.content_receiver = [on_data](const char* data, size_t n, uint64_t, uint64_t) {
    return on_data(data, n);
  };
  return c.send(req);
}

StreamFigures RunStream(int port, const BenchOptions& o, const std::string& key) {
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
  auto res = PostStreaming(c, "/v1/completions", body.dump(), key, [&](const char* data, size_t n) {
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
  // The API as an application sees it: a key from the agent's key store, every call audited.
  const std::filesystem::path state =
      std::filesystem::temp_directory_path() / ("sextant-bench-http-" + std::to_string(::getpid()));
  std::filesystem::create_directories(state);
  auto audit_log = AuditLog::Open(state);
  auto keys = ApiKeyStore::Open(state);
  if (!audit_log.ok() || !keys.ok()) {
    std::fprintf(stderr, "bench-http: cannot open the state in %s\n", state.c_str());
    return 1;
  }
  auto key = (*keys)->Add("bench", "", "bench-http");
  if (!key.ok()) {
    std::fprintf(stderr, "bench-http: %s\n", key.status().ToString().c_str());
    return 1;
  }
  AuditBatcher audit(**audit_log);
  http::InferenceServerOptions server_options;
  server_options.listener.host = "127.0.0.1";
  server_options.listener.port = 0;
  http::InferenceServer server(server_options, {.replicas = &manager,
                                                .keys = keys->get(),
                                                .audit = &audit,
                                                .metrics = &serving,
                                                .registry = &registry});
  if (Status s = server.Start(); !s.ok()) {
    std::fprintf(stderr, "bench-http: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("model %s (%s), backend %s, max_batch %d, %d tokens per stream\n",
              model.filename().c_str(), sha.value().substr(0, 12).c_str(), view->backend.c_str(),
              t.engine.max_batch, o.tokens);

  RunStream(server.port(), o, *key);  // warm-up (page cache, thread pool)
  const StreamFigures single = RunStream(server.port(), o, *key);
  if (!single.ok) {
    std::fprintf(stderr, "bench-http: single stream failed: %s\n", single.error.c_str());
    return 1;
  }
  const double single_tps = single.tokens / single.total_s;

  std::vector<std::future<StreamFigures>> futures;
  const Clock::time_point start = Clock::now();
  for (int i = 0; i < o.streams; ++i) {
    futures.push_back(
        std::async(std::launch::async, [&] { return RunStream(server.port(), o, *key); }));
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
  audit.Stop();
  std::filesystem::remove_all(state);
  return failed == 0 ? 0 : 1;
}

// ---- --attacks ----------------------------------------------------------------------------------

// A kB figure of /proc/PID/status ("VmHWM", "VmRSS"), or -1.
long StatusKb(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::atol(line.c_str() + field.size() + 1);
  }
  return -1;
}

// Resets the peak resident size of `pid` (VmHWM) to its current one (Linux: clear_refs 5).
void ResetPeak(pid_t pid) { std::ofstream("/proc/" + std::to_string(pid) + "/clear_refs") << "5"; }

// gzip of a JSON completion request whose prompt is `prompt_bytes` of 'a', made in 1 MiB pieces
// (the JSON itself is never held).
std::string GzipBomb(size_t prompt_bytes) {
  z_stream zs{};
  deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY);
  std::string out;
  std::vector<char> buf(1 << 16);
  auto feed = [&](const std::string& piece, int flush) {
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(piece.data()));
    zs.avail_in = static_cast<uInt>(piece.size());
    do {
      zs.next_out = reinterpret_cast<Bytef*>(buf.data());
      zs.avail_out = static_cast<uInt>(buf.size());
      deflate(&zs, flush);
      out.append(buf.data(), buf.size() - zs.avail_out);
    } while (zs.avail_out == 0);
  };
  feed(R"({"model":"bench","prompt":")", Z_NO_FLUSH);
  const std::string chunk(1 << 20, 'a');
  for (size_t done = 0; done < prompt_bytes; done += chunk.size()) feed(chunk, Z_NO_FLUSH);
  feed("\"}", Z_FINISH);
  deflateEnd(&zs);
  return out;
}

struct AttackOutcome {
  std::map<int, int> statuses;  // HTTP status (-1: no answer) -> count
  long peak_kb = 0;
  double seconds = 0;
};

AttackOutcome Attack(pid_t agent, int port, const std::string& key, int n,
                     const httplib::Headers& headers, const std::string& body) {
  ResetPeak(agent);
  AttackOutcome o;
  std::mutex mu;
  std::vector<std::thread> clients;
  const Clock::time_point start = Clock::now();
  for (int i = 0; i < n; ++i) {
    clients.emplace_back([&] {
      httplib::Client c("127.0.0.1", port);
      c.set_bearer_token_auth(key);
      c.set_read_timeout(120, 0);
      auto res = c.Post("/v1/completions", headers, body, "application/json");
      std::lock_guard<std::mutex> lock(mu);
      ++o.statuses[res ? res->status : -1];
    });
  }
  for (auto& t : clients) t.join();
  o.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  o.peak_kb = StatusKb(agent, "VmHWM");
  return o;
}

std::string Statuses(const std::map<int, int>& s) {
  std::string out;
  for (const auto& [code, count] : s) {
    out += (out.empty() ? "" : ", ") + std::to_string(count) + "x " +
           (code < 0 ? std::string("no answer") : std::to_string(code));
  }
  return out;
}

int RunAttacks(const BenchOptions& o) {
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::temp_directory_path() / ("sextant-attacks-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "state");
  rpc::CertsInitOptions certs;
  certs.out_dir = dir / "tls";
  if (auto r = rpc::CertsInit(certs); !r.ok()) {
    std::fprintf(stderr, "bench-http: %s\n", r.status().ToString().c_str());
    return 1;
  }
  std::ofstream(dir / "policy.yaml")
      << "version: 1\nroles:\n  customer-admin:\n    rpcs: [WhoAmI]\n"
         "identities: []\n";
  std::ofstream(dir / "agent.yaml")
      << "name: attacked\ngrpc:\n  listen: 127.0.0.1:0\n  ca: tls/ca.pem\n"
         "  cert: tls/server.pem\n  key: tls/server.key\nhttp:\n  listen: 127.0.0.1:0\n"
         "policy: policy.yaml\nstate_dir: state\nlimits:\n  shutdown_grace_ms: 1000\n";
  std::string key;
  {
    auto keys = ApiKeyStore::Open(dir / "state");
    Result<std::string> made = keys.status();
    if (keys.ok()) made = (*keys)->Add("attacker", "", "bench-http");
    if (!made.ok()) {
      std::fprintf(stderr, "bench-http: %s\n", made.status().ToString().c_str());
      return 1;
    }
    key = *made;
  }
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  const std::string config = (dir / "agent.yaml").string();
  const std::string log = (dir / "agent.log").string();
  const pid_t agent = ::fork();
  if (agent == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execl(self.c_str(), self.c_str(), "serve", "--config", config.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int port = 0;
  for (int i = 0; i < 500 && port == 0; ++i) {
    std::ifstream in(dir / "state" / "grpc.addr");
    std::string grpc;
    if (std::getline(in, grpc) && !grpc.empty()) {
      std::ifstream http(dir / "state" / "http.addr");
      std::string addr;
      std::getline(http, addr);
      port = std::atoi(addr.substr(addr.rfind(':') + 1).c_str());
    }
    if (port == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto stop = [&] {
    ::kill(agent, SIGTERM);
    ::waitpid(agent, nullptr, 0);
    fs::remove_all(dir);
  };
  if (port == 0) {
    std::fprintf(stderr, "bench-http: the agent did not start (log in %s)\n", log.c_str());
    ::kill(agent, SIGKILL);
    ::waitpid(agent, nullptr, 0);
    return 1;
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const long idle_kb = StatusKb(agent, "VmHWM");
  const int n = o.concurrency;
  std::printf("agent pid %d, http 127.0.0.1:%d; %d clients at once per attack\n", agent, port, n);
  std::printf("idle: peak RSS %.1f MB\n", idle_kb / 1024.0);

  const std::string bomb = GzipBomb(size_t{200} << 20);
  const AttackOutcome gz = Attack(agent, port, key, n, {{"Content-Encoding", "gzip"}}, bomb);
  std::printf("gzip bomb (%zu KB -> 200 MB of JSON): %s in %.2f s; peak RSS %.1f MB (%.2fx idle)\n",
              bomb.size() >> 10, Statuses(gz.statuses).c_str(), gz.seconds, gz.peak_kb / 1024.0,
              static_cast<double>(gz.peak_kb) / idle_kb);
  const AttackOutcome nested = Attack(agent, port, key, n, {}, std::string((4 << 20) - 64, '['));
  std::printf("nested JSON (4 MB of '['): %s in %.2f s; peak RSS %.1f MB (%.2fx idle)\n",
              Statuses(nested.statuses).c_str(), nested.seconds, nested.peak_kb / 1024.0,
              static_cast<double>(nested.peak_kb) / idle_kb);
  const AttackOutcome infinite =
      Attack(agent, port, key, n, {}, R"({"model":"bench","prompt":"x","temperature":1e309})");
  std::printf("temperature 1e309: %s in %.2f s; peak RSS %.1f MB (%.2fx idle)\n",
              Statuses(infinite.statuses).c_str(), infinite.seconds, infinite.peak_kb / 1024.0,
              static_cast<double>(infinite.peak_kb) / idle_kb);
  const long worst = std::max({gz.peak_kb, nested.peak_kb, infinite.peak_kb});
  std::printf("worst peak RSS %.1f MB (limit asked: 300 MB)\n", worst / 1024.0);
  stop();
  return worst < 300 * 1024 ? 0 : 1;
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
  sub->add_flag("--attacks", opts->attacks,
                "measure a real agent's peak memory under hostile bodies instead");
  sub->add_option("--concurrency", opts->concurrency, "--attacks: clients at once per attack")
      ->check(CLI::Range(1, 256));
  sub->callback([opts, &ctx] {
    spdlog::set_level(spdlog::level::warn);
    ctx.exit_code = opts->attacks ? RunAttacks(*opts) : RunBench(*opts);
  });
}

}  // namespace
}  // namespace sextant::agent

SEXTANT_REGISTER_VERB(bench_http, sextant::agent::SetupBenchHttp);
