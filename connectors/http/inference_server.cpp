// The only translation unit of the HTTP front that includes httplib.h (a large header).
#include "connectors/http/inference_server.h"

#include "app/agent/config/json_log.h"

#include <httplib.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "connectors/http/openai_api.h"
#include "engine/tokenizer/tokenizer.h"

namespace sextant::http {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kJson = "application/json";
constexpr const char* kNoDeployment = "(none)";

std::string RandomHex(size_t n) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) s += kHex[rng() & 15];
  return s;
}

int64_t UnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// One accepted generation: shared by the HTTP thread that answers it and the engine's worker
// thread that produces its tokens.
struct Generation {
  // Fixed before Submit.
  ApiKind kind = ApiKind::kCompletion;
  std::string id;
  int64_t created = 0;
  std::string deployment;
  bool stream = false;
  bool include_usage = false;
  int max_tokens = 0;
  int prompt_tokens = 0;
  Clock::time_point arrival;
  std::shared_ptr<agent::Replica> replica;
  agent::ReplicaLease lease;  // outstanding work on `replica` until the request is finished
  const agent::ServingMetrics::Deployment* metrics = nullptr;  // may be null
  uint64_t scheduler_id = 0;

  // Worker thread only (between Submit and on_done).
  std::unique_ptr<StreamDecoder> decoder;
  std::unique_ptr<StopMatcher> stop;
  Clock::time_point last_token;
  int generated = 0;

  std::atomic<bool> cancel{false};     // client gone or shutting down
  std::atomic<bool> accounted{false};  // request counted and logged

  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> pieces;  // GUARDED_BY(mu): text not yet sent
  bool done = false;               // GUARDED_BY(mu)
  Status error;                    // GUARDED_BY(mu)
  bool stop_matched = false;       // GUARDED_BY(mu)
  int generated_final = 0;         // GUARDED_BY(mu)
  int cached_tokens = 0;           // GUARDED_BY(mu): prompt tokens reused from the prefix cache
  double ttft_ms = 0;              // GUARDED_BY(mu)
};

std::string FinishReason(const Generation& g) {
  if (g.stop_matched) return "stop";
  return g.generated_final >= g.max_tokens ? "length" : "stop";
}

}  // namespace

struct InferenceServer::Impl {
  InferenceServerOptions options;
  agent::ReplicaManager& replicas;
  agent::ServingMetrics* metrics;
  const agent::Registry* registry;

  std::unique_ptr<httplib::Server> server;
  std::thread listener;
  int bound_port = 0;
  bool is_tls = false;

  std::atomic<bool> draining{false};
  std::mutex inflight_mu;
  std::condition_variable inflight_cv;
  std::set<std::shared_ptr<Generation>> inflight;  // GUARDED_BY(inflight_mu)
  std::atomic<double> avg_request_seconds{1.0};
  bool shut_down = false;

  Impl(InferenceServerOptions o, agent::ReplicaManager& r, agent::ServingMetrics* m,
       const agent::Registry* reg)
      : options(std::move(o)), replicas(r), metrics(m), registry(reg) {}

  void Routes();
  void HandleModels(const httplib::Request&, httplib::Response& res);
  void HandleGenerate(ApiKind kind, const httplib::Request& req, httplib::Response& res);
  void SendError(httplib::Response& res, const ApiError& e, const std::string& deployment,
                 const char* path);
  void Finish(const std::shared_ptr<Generation>& g, int code, const char* path);
  int RetryAfterSeconds(agent::Replica& r) const;
};

void InferenceServer::Impl::SendError(httplib::Response& res, const ApiError& e,
                                      const std::string& deployment, const char* path) {
  res.status = e.http_status;
  res.set_content(e.ToJson(), kJson);
  if (metrics != nullptr) metrics->For(deployment).CountRequest(e.http_status);
  // The message may quote request fields by name but never their values.
  agent::LogEvent(spdlog::level::info, "http_request",
                  {{"path", path},
                   {"deployment", deployment},
                   {"status", e.http_status},
                   {"param", e.param.empty() ? "-" : e.param}});
}

int InferenceServer::Impl::RetryAfterSeconds(agent::Replica& r) const {
  const serve::SchedulerStats s = r.scheduler().stats();
  const double per_slot =
      avg_request_seconds.load() * (s.queue_depth + 1) / std::max(1, s.max_batch);
  return static_cast<int>(std::clamp(std::ceil(per_slot), 1.0, 60.0));
}

void InferenceServer::Impl::Finish(const std::shared_ptr<Generation>& g, int code,
                                   const char* path) {
  if (g->accounted.exchange(true)) return;
  int generated = 0;
  double ttft_ms = 0;
  {
    std::lock_guard<std::mutex> lock(g->mu);
    generated = g->generated_final;
    ttft_ms = g->ttft_ms;
  }
  const double total_s = Seconds(Clock::now() - g->arrival);
  if (code == 200) {
    const double prev = avg_request_seconds.load();
    avg_request_seconds.store(prev * 0.8 + total_s * 0.2);
  }
  if (g->metrics != nullptr) g->metrics->CountRequest(code);
  agent::LogEvent(spdlog::level::info, "http_request",
                  {{"path", path},
                   {"deployment", g->deployment},
                   {"status", code},
                   {"stream", g->stream},
                   {"prompt_tokens", g->prompt_tokens},
                   {"generated_tokens", generated},
                   {"ttft_ms", ttft_ms},
                   {"total_ms", total_s * 1e3}});
  {
    std::lock_guard<std::mutex> lock(inflight_mu);
    inflight.erase(g);
  }
  inflight_cv.notify_all();
}

void InferenceServer::Impl::HandleModels(const httplib::Request&, httplib::Response& res) {
  json data = json::array();
  for (const agent::DeploymentView& v : replicas.List()) {
    data.push_back({{"id", v.name},
                    {"object", "model"},
                    {"created", 0},
                    {"owned_by", "sextant"},
                    {"ready", v.replicas_ready > 0}});
  }
  res.set_content(DumpJson(json{{"object", "list"}, {"data", data}}), kJson);
}

void InferenceServer::Impl::HandleGenerate(ApiKind kind, const httplib::Request& req,
                                           httplib::Response& res) {
  const char* path = kind == ApiKind::kChat ? "/v1/chat/completions" : "/v1/completions";
  const Clock::time_point arrival = Clock::now();
  if (draining.load()) {
    ApiError e{503, "the agent is shutting down", "", "server_error", "shutting_down"};
    SendError(res, e, kNoDeployment, path);
    return;
  }
  ApiError error;
  std::optional<CompletionRequest> request = ParseCompletionRequest(req.body, kind, &error);
  if (!request) {
    SendError(res, error, kNoDeployment, path);
    return;
  }
  // Waits (bounded) while the deployment has no ready replica: scaled to zero, loading.
  Result<agent::ReplicaLease> acquired = replicas.AcquireLease(request->model);
  if (!acquired.ok()) {
    const Status& s = acquired.status();
    if (s.code() == StatusCode::kNotFound) {
      // The name came from the request: it is not echoed into labels or logs.
      ApiError e{404, "the model named in 'model' is not deployed here", "model", "not_found_error",
                 "model_not_found"};
      SendError(res, e, kNoDeployment, path);
      return;
    }
    ApiError e{
        503, s.message(), "model", "server_error",
        s.code() == StatusCode::kFailedPrecondition ? "deployment_failed" : "deployment_not_ready"};
    if (s.code() != StatusCode::kFailedPrecondition) {
      res.set_header("Retry-After", std::to_string(replicas.RetryAfterSeconds(request->model)));
    }
    SendError(res, e, request->model, path);
    return;
  }
  agent::ReplicaLease lease = std::move(acquired).value();
  std::shared_ptr<agent::Replica> replica = lease.replica();
  const std::string deployment = replica->deployment();
  const Tokenizer& tok = replica->model().tokenizer();

  std::vector<int32_t> prompt;
  const char* prompt_field = kind == ApiKind::kChat ? "messages" : "prompt";
  if (kind == ApiKind::kChat) {
    // The deployment's chat formatting (engine/chat), the one its validation prompts used.
    const Result<chat::ChatFormatter>& formatter = replica->chat_formatter();
    Result<std::vector<int32_t>> ids =
        formatter.ok() ? formatter->Tokenize(tok, request->messages) : formatter.status();
    if (!ids.ok()) {
      SendError(res,
                formatter.ok() ? ApiError{400, ids.status().message(), "messages"}
                               : ApiError{500, ids.status().message(), "messages", "server_error"},
                deployment, path);
      return;
    }
    prompt = std::move(ids).value();
  } else if (!request->prompt_tokens.empty()) {
    prompt = request->prompt_tokens;
    for (size_t i = 0; i < prompt.size(); ++i) {
      if (prompt[i] >= tok.vocab_size()) {
        ApiError e{400,
                   "'prompt[" + std::to_string(i) + "]': token id out of the vocabulary (size " +
                       std::to_string(tok.vocab_size()) + ")",
                   "prompt"};
        SendError(res, e, deployment, path);
        return;
      }
    }
  } else {
    prompt = tok.Encode(request->prompt, tok.add_bos());
  }
  if (prompt.empty()) {
    SendError(
        res,
        ApiError{400, std::string("'") + prompt_field + "': the prompt is empty", prompt_field},
        deployment, path);
    return;
  }
  const int context = replica->scheduler().context_length();
  const int prompt_len = static_cast<int>(prompt.size());
  if (prompt_len >= context) {
    SendError(res,
              ApiError{400,
                       std::string("'") + prompt_field + "': the prompt has " +
                           std::to_string(prompt_len) + " tokens; the context holds " +
                           std::to_string(context),
                       prompt_field, "invalid_request_error", "context_length_exceeded"},
              deployment, path);
    return;
  }
  const int max_tokens = request->max_tokens.value_or(context - prompt_len);
  if (prompt_len + max_tokens > context) {
    SendError(res,
              ApiError{400,
                       "'max_tokens': " + std::to_string(max_tokens) +
                           " tokens after a prompt of " + std::to_string(prompt_len) +
                           " exceed the context length " + std::to_string(context),
                       "max_tokens", "invalid_request_error", "context_length_exceeded"},
              deployment, path);
    return;
  }

  serve::GenerateRequest gen;
  gen.prompt = std::move(prompt);
  gen.max_tokens = max_tokens;
  const spec::SamplingDefaults& d = replica->sampling_defaults();
  gen.sampling.temperature = static_cast<float>(request->temperature.value_or(d.temperature));
  gen.sampling.top_k = d.top_k;
  gen.sampling.top_p = static_cast<float>(request->top_p.value_or(d.top_p));
  gen.sampling.min_p = static_cast<float>(d.min_p);
  gen.sampling.repeat_penalty = static_cast<float>(d.repeat_penalty);
  gen.sampling.repeat_last_n = d.repeat_last_n;
  gen.sampling.seed = request->seed.value_or(d.seed != 0 ? d.seed : std::random_device{}());
  gen.stop_at_eos = !request->ignore_eos;

  auto g = std::make_shared<Generation>();
  g->kind = kind;
  g->id = (kind == ApiKind::kChat ? "chatcmpl-" : "cmpl-") + RandomHex(24);
  g->created = UnixSeconds();
  g->deployment = deployment;
  g->stream = request->stream;
  g->include_usage = request->include_usage;
  g->max_tokens = max_tokens;
  g->prompt_tokens = prompt_len;
  g->arrival = arrival;
  g->replica = replica;
  g->lease = std::move(lease);
  g->metrics = metrics != nullptr ? &metrics->For(deployment) : nullptr;
  g->decoder = std::make_unique<StreamDecoder>(tok);
  g->stop = std::make_unique<StopMatcher>(request->stop);

  // Both callbacks run on the replica's engine thread: keep them short.
  Generation* raw = g.get();
  serve::TokenCallback on_token = [raw](int32_t token) {
    const Clock::time_point now = Clock::now();
    if (raw->metrics != nullptr) {
      if (raw->generated == 0) {
        raw->metrics->ttft_seconds->Observe(Seconds(now - raw->arrival));
      } else {
        raw->metrics->inter_token_seconds->Observe(Seconds(now - raw->last_token));
      }
      raw->metrics->generated_tokens->Inc();
    }
    raw->last_token = now;
    ++raw->generated;
    const std::string text = raw->stop->Push(raw->decoder->Push(token));
    const bool stopped = raw->stop->stopped();
    {
      std::lock_guard<std::mutex> lock(raw->mu);
      if (raw->generated == 1) raw->ttft_ms = Seconds(now - raw->arrival) * 1e3;
      if (!text.empty()) raw->pieces.push_back(text);
      raw->stop_matched = stopped;
      raw->generated_final = raw->generated;
    }
    raw->cv.notify_all();
    return !stopped && !raw->cancel.load();
  };
  // The scheduler holds on_done until it runs; it keeps the Generation alive.
  serve::DoneCallback on_done = [g](Result<serve::GenerateStats> result) {
    std::string tail;
    if (result.ok() && !g->stop->stopped()) {
      tail = g->stop->Push(g->decoder->Flush());
      if (!g->stop->stopped()) tail += g->stop->Flush();
    }
    {
      std::lock_guard<std::mutex> lock(g->mu);
      if (!tail.empty()) g->pieces.push_back(tail);
      g->stop_matched = g->stop->stopped();
      g->generated_final = g->generated;
      if (result.ok()) g->cached_tokens = result->cached_tokens;
      if (result.ok() && g->metrics != nullptr) {
        g->metrics->prefix_cache_queries->Inc(result->prompt_tokens);
        g->metrics->prefix_cache_hits->Inc(result->cached_tokens);
      }
      // A request stopped by a stop string or by the client is not an engine error.
      if (!result.ok() && result.status().code() != StatusCode::kCancelled) {
        g->error = result.status();
      }
      g->done = true;
    }
    g->cv.notify_all();
  };

  {
    std::lock_guard<std::mutex> lock(inflight_mu);
    inflight.insert(g);
  }
  Result<uint64_t> submitted = replica->scheduler().Submit(gen, on_token, on_done);
  // A replica that began to drain after it was picked refuses new work: the request moves to
  // another ready replica (a scale-down never fails a request).
  for (int attempt = 0; !submitted.ok() && submitted.status().code() == StatusCode::kUnavailable &&
                        attempt < 3 && !draining.load();
       ++attempt) {
    Result<agent::ReplicaLease> again = replicas.AcquireLease(deployment);
    // Only a replica of the same model: the prompt was tokenized and the decoder built for it.
    if (!again.ok() || &again.value()->model() != &replica->model()) break;
    g->lease = std::move(again).value();
    g->replica = g->lease.replica();
    replica = g->replica;
    submitted = replica->scheduler().Submit(gen, on_token, on_done);
  }
  if (!submitted.ok()) {
    {
      std::lock_guard<std::mutex> lock(inflight_mu);
      inflight.erase(g);
    }
    g->accounted = true;
    const Status& s = submitted.status();
    if (s.code() == StatusCode::kResourceExhausted) {
      res.set_header("Retry-After", std::to_string(RetryAfterSeconds(*replica)));
      SendError(res,
                ApiError{429, "the deployment's queue is full; retry later", "", "rate_limit_error",
                         "rate_limit_exceeded"},
                deployment, path);
    } else if (s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kOutOfRange) {
      SendError(res, ApiError{400, s.message(), "", "invalid_request_error", ""}, deployment, path);
    } else {
      SendError(res, ApiError{503, s.message(), "", "server_error", "unavailable"}, deployment,
                path);
    }
    return;
  }
  g->scheduler_id = submitted.value();
  if (metrics != nullptr) g->metrics->prompt_tokens->Inc(prompt_len);

  if (!g->stream) {
    std::string text;
    {
      std::unique_lock<std::mutex> lock(g->mu);
      g->cv.wait(lock, [&] { return g->done; });
      for (const std::string& p : g->pieces) text += p;
      g->pieces.clear();
    }
    Status err;
    std::string finish;
    int generated = 0;
    int cached = 0;
    {
      std::lock_guard<std::mutex> lock(g->mu);
      err = g->error;
      finish = FinishReason(*g);
      generated = g->generated_final;
      cached = g->cached_tokens;
    }
    if (!err.ok()) {
      const int code = err.code() == StatusCode::kUnavailable ? 503 : 500;
      res.status = code;
      res.set_content(ApiError{code, err.message(), "", "server_error", ""}.ToJson(), kJson);
      Finish(g, code, path);
      return;
    }
    res.set_content(DumpJson(CompletionResponse(kind, g->id, g->created, deployment, text, finish,
                                                Usage{prompt_len, generated, cached})),
                    kJson);
    Finish(g, 200, path);
    return;
  }

  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  auto sent_role = std::make_shared<bool>(false);
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, g, sent_role, path](size_t, httplib::DataSink& sink) {
        std::deque<std::string> take;
        bool done = false;
        {
          std::unique_lock<std::mutex> lock(g->mu);
          g->cv.wait_for(lock, std::chrono::milliseconds(250),
                         [&] { return !g->pieces.empty() || g->done; });
          take.swap(g->pieces);
          done = g->done;
        }
        auto write = [&](const std::string& event) {
          if (sink.write(event.data(), event.size())) return true;
          g->cancel = true;
          g->replica->scheduler().Cancel(g->scheduler_id);
          return false;
        };
        if (!*sent_role && g->kind == ApiKind::kChat) {
          *sent_role = true;
          if (!write(SseEvent(
                  CompletionChunk(g->kind, g->id, g->created, g->deployment, "", true, "")))) {
            return false;
          }
        }
        for (const std::string& piece : take) {
          if (!write(SseEvent(
                  CompletionChunk(g->kind, g->id, g->created, g->deployment, piece, false, "")))) {
            return false;
          }
        }
        if (!done) {
          if (!sink.is_writable()) {
            g->cancel = true;
            g->replica->scheduler().Cancel(g->scheduler_id);
            return false;
          }
          return true;
        }
        Status err;
        std::string finish;
        int generated = 0;
        int cached = 0;
        {
          std::lock_guard<std::mutex> lock(g->mu);
          err = g->error;
          finish = FinishReason(*g);
          generated = g->generated_final;
          cached = g->cached_tokens;
        }
        int code = 200;
        if (!err.ok()) {
          code = err.code() == StatusCode::kUnavailable ? 503 : 500;
          write("data: " + ApiError{code, err.message(), "", "server_error", ""}.ToJson() + "\n\n");
        } else {
          write(SseEvent(
              CompletionChunk(g->kind, g->id, g->created, g->deployment, "", false, finish)));
          if (g->include_usage) {
            write(SseEvent(UsageChunk(g->kind, g->id, g->created, g->deployment,
                                      Usage{g->prompt_tokens, generated, cached})));
          }
        }
        // Counted before the client sees [DONE]: a scrape right after a finished stream
        // includes it.
        Finish(g, code, path);
        write(std::string(kSseDone));
        sink.done();
        return true;
      },
      [this, g, path](bool) {
        // The response ended (sent, or the client went away): stop generating if still going.
        bool done = false;
        {
          std::lock_guard<std::mutex> lock(g->mu);
          done = g->done;
        }
        if (!done) {
          g->cancel = true;
          g->replica->scheduler().Cancel(g->scheduler_id);
        }
        Finish(g, 499, path);  // no-op when already counted
      });
}

void InferenceServer::Impl::Routes() {
  httplib::Server& s = *server;
  s.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  s.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    std::string why;
    if (draining.load()) {
      res.status = 503;
      res.set_content("shutting down\n", "text/plain");
    } else if (replicas.AllReady(&why)) {
      res.set_content("ready\n", "text/plain");
    } else {
      res.status = 503;
      res.set_content("not ready: " + why + "\n", "text/plain");
    }
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    if (registry == nullptr) {
      res.status = 404;
      res.set_content("no metrics registry\n", "text/plain");
      return;
    }
    res.set_content(registry->RenderText(), "text/plain; version=0.0.4; charset=utf-8");
  });
  s.Get("/v1/models",
        [this](const httplib::Request& req, httplib::Response& res) { HandleModels(req, res); });
  s.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    HandleGenerate(ApiKind::kCompletion, req, res);
  });
  s.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    HandleGenerate(ApiKind::kChat, req, res);
  });
  s.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    ApiError e;
    e.http_status = res.status;
    e.type = res.status == 404 ? "not_found_error" : "invalid_request_error";
    e.message = res.status == 404   ? "no such route"
                : res.status == 413 ? "the request body is too large"
                                    : "request refused (HTTP " + std::to_string(res.status) + ")";
    res.set_content(e.ToJson(), kJson);
  });
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    res.status = 500;
    res.set_content(ApiError{500, "internal error", "", "server_error", ""}.ToJson(), kJson);
  });
}

InferenceServer::InferenceServer(InferenceServerOptions options, agent::ReplicaManager& replicas,
                                 agent::ServingMetrics* metrics, const agent::Registry* registry)
    : impl_(std::make_unique<Impl>(std::move(options), replicas, metrics, registry)) {}

InferenceServer::~InferenceServer() { Shutdown(std::chrono::milliseconds(0)); }

Status InferenceServer::Start() {
  Impl& m = *impl_;
  if (m.server) return Status::FailedPrecondition("the HTTP listener is already started");
  const bool want_tls = !m.options.tls_cert.empty() || !m.options.tls_key.empty();
  if (want_tls) {
    if (m.options.tls_cert.empty() || m.options.tls_key.empty()) {
      return Status::InvalidArgument("http TLS needs both cert and key");
    }
    for (const auto& f : {m.options.tls_cert, m.options.tls_key}) {
      if (!std::filesystem::is_regular_file(f)) {
        return Status::InvalidArgument("http TLS file " + f.string() + " does not exist");
      }
    }
    auto ssl =
        std::make_unique<httplib::SSLServer>(m.options.tls_cert.c_str(), m.options.tls_key.c_str());
    if (!ssl->is_valid()) {
      return Status::InvalidArgument("http TLS: cannot load certificate " +
                                     m.options.tls_cert.string() + " with key " +
                                     m.options.tls_key.string());
    }
    m.server = std::move(ssl);
    m.is_tls = true;
  } else {
    m.server = std::make_unique<httplib::Server>();
  }
  const int threads = std::max(4, m.options.connection_threads);
  m.server->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  m.server->set_keep_alive_timeout(std::max(1, m.options.keep_alive_seconds));
  m.server->set_payload_max_length(m.options.max_body_bytes);
  m.server->set_read_timeout(30, 0);
  m.server->set_write_timeout(30, 0);
  m.Routes();
  // httplib listens with a backlog of 5, too short for a burst of clients: remember the
  // socket so the backlog can be raised once it is bound.
  auto listen_fd = std::make_shared<int>(-1);
  m.server->set_socket_options([listen_fd](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    *listen_fd = sock;
  });
  if (m.options.port == 0) {
    m.bound_port = m.server->bind_to_any_port(m.options.host);
  } else {
    m.bound_port = m.server->bind_to_port(m.options.host, m.options.port) ? m.options.port : -1;
  }
  if (m.bound_port <= 0) {
    m.server.reset();
    return Status::Unavailable("http listener: cannot bind " + m.options.host + ":" +
                               std::to_string(m.options.port));
  }
  if (*listen_fd >= 0) ::listen(*listen_fd, SOMAXCONN);
  m.listener = std::thread([&m] { m.server->listen_after_bind(); });
  agent::LogEvent(spdlog::level::info, "http_listening",
                  {{"address", m.options.host + ":" + std::to_string(m.bound_port)},
                   {"scheme", m.is_tls ? "https" : "http"}});
  return Status::Ok();
}

int InferenceServer::port() const { return impl_->bound_port; }
bool InferenceServer::tls() const { return impl_->is_tls; }

void InferenceServer::Shutdown(std::chrono::milliseconds grace) {
  Impl& m = *impl_;
  if (m.shut_down || !m.server) return;
  m.shut_down = true;
  m.draining = true;
  {
    std::unique_lock<std::mutex> lock(m.inflight_mu);
    m.inflight_cv.wait_for(lock, grace, [&] { return m.inflight.empty(); });
    for (const auto& g : m.inflight) {
      g->cancel = true;
      g->replica->scheduler().Cancel(g->scheduler_id);
    }
    // Cancelled requests end at the engine's next step; give them a moment to say so.
    m.inflight_cv.wait_for(lock, std::chrono::seconds(2), [&] { return m.inflight.empty(); });
  }
  m.server->stop();
  if (m.listener.joinable()) m.listener.join();
}

}  // namespace sextant::http
