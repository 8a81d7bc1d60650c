#include "connectors/http/inference_server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <random>
#include <set>

#include "app/agent/config/json_log.h"
#include "engine/tokenizer/tokenizer.h"

namespace sextant::http {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kJson = "application/json";
constexpr const char* kNoDeployment = "(none)";
constexpr const char* kAppRole = "customer-app";

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

HttpResponse JsonResponse(int status, std::string body,
                          std::vector<std::pair<std::string, std::string>> headers = {}) {
  return {status, kJson, std::move(headers), std::move(body)};
}

// A deployment name as the request gave it, fit for an audit record: the name itself when it is
// a well-formed deployment name, else a placeholder (the field is the caller's text).
std::string AuditTarget(const std::string& model) {
  bool ok = !model.empty() && model.size() <= 63;
  for (size_t i = 0; ok && i < model.size(); ++i) {
    const char c = model[i];
    ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && c == '-');
  }
  return ok ? model : "(not a deployment name)";
}

// One admitted generation, shared by the worker that admits it, the engine thread that makes
// its tokens and the listener's I/O thread (which reports a client gone).
struct Generation {
  // Fixed before Submit.
  ApiKind kind = ApiKind::kCompletion;
  const char* path = "";
  std::string id;
  int64_t created = 0;
  std::string deployment;
  std::string caller;  // the key's name
  bool stream = false;
  bool include_usage = false;
  int max_tokens = 0;
  int prompt_tokens = 0;
  Clock::time_point arrival;
  std::shared_ptr<agent::Replica> replica;
  agent::ReplicaLease lease;  // outstanding work on `replica` until the request is finished
  const agent::ServingMetrics::Deployment* metrics = nullptr;  // may be null
  std::shared_ptr<HttpExchange> exchange;
  std::atomic<uint64_t> scheduler_id{0};

  // Engine thread only (between Submit and on_done).
  std::unique_ptr<StreamDecoder> decoder;
  std::unique_ptr<StopMatcher> stop;
  Clock::time_point last_token;
  int generated = 0;
  int cached_tokens = 0;  // prompt tokens reused from the prefix cache (set in OnDone)
  double ttft_ms = 0;
  std::string text;  // whole responses: the text so far

  std::atomic<bool> cancel{false};     // the client went away, or the agent is shutting down
  std::atomic<bool> accounted{false};  // counted and logged

  // Orders what is written to a stream: the worker starts it after Submit, unless the engine
  // thread has already (a short generation may finish before the worker gets there).
  std::mutex mu;
  bool stream_started = false;  // GUARDED_BY(mu)
};

// REQUIRES: g.mu held, g.stream.
void StartStreamLocked(Generation& g) {
  if (g.stream_started) return;
  g.stream_started = true;
  g.exchange->StartStream(200, "text/event-stream",
                          {{"Cache-Control", "no-cache"}, {"X-Accel-Buffering", "no"}});
  if (g.kind == ApiKind::kChat) {
    g.exchange->Write(
        SseEvent(CompletionChunk(g.kind, g.id, g.created, g.deployment, "", true, "")));
  }
}

// A request between its steps (HandleGenerate): what each step found out.
struct Call {
  ApiKind kind = ApiKind::kCompletion;
  const char* path = "";
  Clock::time_point arrival;
  std::shared_ptr<HttpExchange> exchange;
  agent::ApiKeyIdentity caller;
  CompletionRequest request;
  agent::ReplicaLease lease;
  std::vector<int32_t> prompt;
  int max_tokens = 0;
  const char* prompt_field() const { return kind == ApiKind::kChat ? "messages" : "prompt"; }
};

}  // namespace

struct InferenceServer::Impl {
  InferenceServerOptions options;
  InferenceServerDeps deps;
  std::unique_ptr<HttpServer> http;

  std::atomic<bool> draining{false};
  std::mutex inflight_mu;
  std::condition_variable inflight_cv;
  std::set<std::shared_ptr<Generation>> inflight;  // GUARDED_BY(inflight_mu)
  std::atomic<double> avg_request_seconds{1.0};
  bool shut_down = false;

  Impl(InferenceServerOptions o, InferenceServerDeps d)
      : options(std::move(o)), deps(std::move(d)) {}

  void Routes();
  void HandleModels(HttpRequest& req, const std::shared_ptr<HttpExchange>& ex);
  void HandleMetrics(HttpRequest& req, const std::shared_ptr<HttpExchange>& ex);

  // POST /v1/completions and /v1/chat/completions, in steps; each answers the client and
  // returns false when the request goes no further.
  void HandleGenerate(ApiKind kind, HttpRequest& req, const std::shared_ptr<HttpExchange>& ex);
  bool Admit(Call& call, const HttpRequest& req);  // not draining; a valid key (401)
  bool Parse(Call& call, const HttpRequest& req);  // JSON bounds, fields (400)
  bool Authorize(Call& call);  // the key's scope (403); the audit record, durable (503)
  bool Lease(Call& call);      // a ready replica (404, 503 with Retry-After)
  bool Tokenize(Call& call);   // the prompt, bounded by the context (400)
  bool Queue(Call& call);      // into the replica's scheduler (429, 503); then the answer
                               // comes from the engine's callbacks (Respond*)
  // Engine callbacks.
  bool OnToken(Generation& g, int32_t token);
  void OnDone(const std::shared_ptr<Generation>& g, Result<serve::GenerateStats> result);
  // Bookkeeping once per generation: metrics, the log line, in-flight set.
  void Finish(const std::shared_ptr<Generation>& g, int code);

  std::optional<agent::ApiKeyIdentity> Authenticate(const HttpRequest& req, ApiError* error) const;
  void Refuse(const std::shared_ptr<HttpExchange>& ex, const ApiError& e,
              const std::string& deployment, const char* path, const std::string& caller,
              std::vector<std::pair<std::string, std::string>> headers = {});
  int RetryAfterSeconds(agent::Replica& r) const;
};

// ---- Authentication, refusals
// ---------------------------------------------------------------------

std::optional<agent::ApiKeyIdentity> InferenceServer::Impl::Authenticate(const HttpRequest& req,
                                                                         ApiError* error) const {
  auto unauthorized = [&](std::string message, std::string code) {
    *error = ApiError{401, std::move(message), "", "invalid_request_error", std::move(code)};
    return std::nullopt;
  };
  const std::string* header = req.Header("authorization");
  if (header == nullptr) {
    return unauthorized(
        "no API key: send 'Authorization: Bearer KEY' (keys are made with `sextant-agent "
        "apikeys add`)",
        "missing_api_key");
  }
  std::string_view value = *header;
  const size_t space = value.find(' ');
  std::string scheme(value.substr(0, space));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (scheme != "bearer" || space == std::string_view::npos) {
    return unauthorized("the Authorization header must be 'Bearer KEY'", "invalid_api_key");
  }
  std::string_view key = value.substr(space + 1);
  while (!key.empty() && key.front() == ' ') key.remove_prefix(1);
  std::optional<agent::ApiKeyIdentity> who = deps.keys->Verify(key);
  if (!who) return unauthorized("the API key is not valid (unknown or revoked)", "invalid_api_key");
  return who;
}

void InferenceServer::Impl::Refuse(const std::shared_ptr<HttpExchange>& ex, const ApiError& e,
                                   const std::string& deployment, const char* path,
                                   const std::string& caller,
                                   std::vector<std::pair<std::string, std::string>> headers) {
  if (e.http_status == 401) headers.emplace_back("WWW-Authenticate", "Bearer");
  ex->Send(JsonResponse(e.http_status, e.ToJson(), std::move(headers)));
  if (deps.metrics != nullptr) deps.metrics->For(deployment).CountRequest(e.http_status);
  // The message may quote request fields by name but never their values.
  agent::LogEvent(spdlog::level::info, "http_request",
                  {{"path", path},
                   {"deployment", deployment},
                   {"key", caller.empty() ? "-" : caller},
                   {"status", e.http_status},
                   {"param", e.param.empty() ? "-" : e.param}});
}

int InferenceServer::Impl::RetryAfterSeconds(agent::Replica& r) const {
  const serve::SchedulerStats s = r.scheduler().stats();
  const double per_slot =
      avg_request_seconds.load() * (s.queue_depth + 1) / std::max(1, s.max_batch);
  return static_cast<int>(std::clamp(std::ceil(per_slot), 1.0, 60.0));
}

// ---- The generate path, step by step ----------------------------------------------------------

void InferenceServer::Impl::HandleGenerate(ApiKind kind, HttpRequest& req,
                                           const std::shared_ptr<HttpExchange>& ex) {
  Call call;
  call.kind = kind;
  call.path = kind == ApiKind::kChat ? "/v1/chat/completions" : "/v1/completions";
  call.arrival = Clock::now();
  call.exchange = ex;
  if (!Admit(call, req) || !Parse(call, req) || !Authorize(call) || !Lease(call) ||
      !Tokenize(call)) {
    return;
  }
  Queue(call);
}

bool InferenceServer::Impl::Admit(Call& call, const HttpRequest& req) {
  if (draining.load()) {
    Refuse(call.exchange,
           ApiError{503, "the agent is shutting down", "", "server_error", "shutting_down"},
           kNoDeployment, call.path, "");
    return false;
  }
  ApiError error;
  std::optional<agent::ApiKeyIdentity> who = Authenticate(req, &error);
  if (!who) {
    Refuse(call.exchange, error, kNoDeployment, call.path, "");
    return false;
  }
  call.caller = std::move(*who);
  return true;
}

bool InferenceServer::Impl::Parse(Call& call, const HttpRequest& req) {
  ApiError error;
  std::optional<CompletionRequest> request =
      ParseCompletionRequest(req.body, call.kind, &error, options.json);
  if (!request) {
    Refuse(call.exchange, error, kNoDeployment, call.path, call.caller.name);
    return false;
  }
  call.request = std::move(*request);
  return true;
}

bool InferenceServer::Impl::Authorize(Call& call) {
  const bool allowed = call.caller.Allows(call.request.model);
  // Durable before the call goes further; the batcher groups concurrent calls in one fsync.
  const Status audited =
      deps.audit->Append({call.caller.AuditIdentity(), kAppRole, std::string("POST ") + call.path,
                          AuditTarget(call.request.model), allowed ? "allowed" : "denied"});
  if (!audited.ok()) {
    agent::LogEvent(spdlog::level::err, "audit_append_failed",
                    {{"path", call.path}, {"error", audited.message()}});
    std::vector<std::pair<std::string, std::string>> headers;
    if (audited.code() == StatusCode::kResourceExhausted) headers.emplace_back("Retry-After", "1");
    Refuse(call.exchange,
           ApiError{503, "the call was not made: its audit record could not be written", "",
                    "server_error", "audit_unavailable"},
           kNoDeployment, call.path, call.caller.name, std::move(headers));
    return false;
  }
  if (!allowed) {
    Refuse(call.exchange,
           ApiError{403, "this API key may not use the model named in 'model'", "model",
                    "permission_error", "model_not_allowed"},
           kNoDeployment, call.path, call.caller.name);
    return false;
  }
  return true;
}

bool InferenceServer::Impl::Lease(Call& call) {
  const std::string& model = call.request.model;
  // Waits (bounded) while the deployment has no ready replica: scaled to zero, loading.
  Result<agent::ReplicaLease> acquired = deps.replicas->AcquireLease(model);
  if (acquired.ok()) {
    call.lease = std::move(acquired).value();
    return true;
  }
  const Status& s = acquired.status();
  if (s.code() == StatusCode::kNotFound) {
    // The name came from the request: it is not echoed into labels or logs.
    Refuse(call.exchange,
           ApiError{404, "the model named in 'model' is not deployed here", "model",
                    "not_found_error", "model_not_found"},
           kNoDeployment, call.path, call.caller.name);
    return false;
  }
  std::vector<std::pair<std::string, std::string>> headers;
  if (s.code() != StatusCode::kFailedPrecondition) {
    headers.emplace_back("Retry-After", std::to_string(deps.replicas->RetryAfterSeconds(model)));
  }
  Refuse(call.exchange,
         ApiError{503, s.message(), "model", "server_error",
                  s.code() == StatusCode::kFailedPrecondition ? "deployment_failed"
                                                              : "deployment_not_ready"},
         model, call.path, call.caller.name, std::move(headers));
  return false;
}

bool InferenceServer::Impl::Tokenize(Call& call) {
  agent::Replica& replica = *call.lease.replica();
  const Tokenizer& tok = replica.model().tokenizer();
  const int context = replica.scheduler().context_length();
  const char* field = call.prompt_field();
  // At most context - 1 prompt tokens (one position is left to generate); tokenizing stops
  // there, however long the text.
  const size_t max_prompt = static_cast<size_t>(std::max(0, context - 1));
  std::optional<std::vector<int32_t>> prompt;
  if (call.kind == ApiKind::kChat) {
    // The deployment's chat formatting (engine/chat), the one its validation prompts used, as
    // ChatFormatter::Tokenize does it but tokenized only up to the context length.
    const Result<chat::ChatFormatter>& formatter = replica.chat_formatter();
    Result<std::string> text =
        formatter.ok() ? formatter->Format(call.request.messages) : formatter.status();
    if (!text.ok()) {
      Refuse(call.exchange,
             formatter.ok() ? ApiError{400, text.status().message(), "messages"}
                            : ApiError{500, text.status().message(), "messages", "server_error"},
             replica.deployment(), call.path, call.caller.name);
      return false;
    }
    EncodeOptions encode;
    encode.parse_special = true;  // control-token texts the template wrote become those tokens
    prompt = tok.EncodeAtMost(*text, encode, max_prompt);
  } else if (!call.request.prompt_tokens.empty()) {
    const std::vector<int32_t>& ids = call.request.prompt_tokens;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] >= tok.vocab_size()) {
        Refuse(
            call.exchange,
            ApiError{400,
                     "'prompt[" + std::to_string(i) + "]': token id out of the vocabulary (size " +
                         std::to_string(tok.vocab_size()) + ")",
                     "prompt"},
            replica.deployment(), call.path, call.caller.name);
        return false;
      }
    }
    if (ids.size() <= max_prompt) prompt = ids;
  } else {
    prompt = tok.EncodeAtMost(call.request.prompt, tok.add_bos(), max_prompt);
  }
  if (!prompt) {
    const size_t known = call.request.prompt_tokens.size();
    Refuse(call.exchange,
           ApiError{
               400,
               std::string("'") + field + "': the prompt has " +
                   (known > 0 ? std::to_string(known) : "more than " + std::to_string(max_prompt)) +
                   " tokens; the context holds " + std::to_string(context),
               field, "invalid_request_error", "context_length_exceeded"},
           replica.deployment(), call.path, call.caller.name);
    return false;
  }
  if (prompt->empty()) {
    Refuse(call.exchange, ApiError{400, std::string("'") + field + "': the prompt is empty", field},
           replica.deployment(), call.path, call.caller.name);
    return false;
  }
  const int prompt_len = static_cast<int>(prompt->size());
  call.max_tokens = call.request.max_tokens.value_or(context - prompt_len);
  if (prompt_len + call.max_tokens > context) {
    Refuse(call.exchange,
           ApiError{400,
                    "'max_tokens': " + std::to_string(call.max_tokens) +
                        " tokens after a prompt of " + std::to_string(prompt_len) +
                        " exceed the context length " + std::to_string(context),
                    "max_tokens", "invalid_request_error", "context_length_exceeded"},
           replica.deployment(), call.path, call.caller.name);
    return false;
  }
  call.prompt = std::move(*prompt);
  return true;
}

bool InferenceServer::Impl::Queue(Call& call) {
  std::shared_ptr<agent::Replica> replica = call.lease.replica();
  const std::string deployment = replica->deployment();
  const CompletionRequest& request = call.request;
  const int prompt_len = static_cast<int>(call.prompt.size());

  serve::GenerateRequest gen;
  gen.prompt = std::move(call.prompt);
  gen.max_tokens = call.max_tokens;
  const spec::SamplingDefaults& d = replica->sampling_defaults();
  gen.sampling.temperature = static_cast<float>(request.temperature.value_or(d.temperature));
  gen.sampling.top_k = d.top_k;
  gen.sampling.top_p = static_cast<float>(request.top_p.value_or(d.top_p));
  gen.sampling.min_p = static_cast<float>(d.min_p);
  gen.sampling.repeat_penalty = static_cast<float>(d.repeat_penalty);
  gen.sampling.repeat_last_n = d.repeat_last_n;
  gen.sampling.seed = request.seed.value_or(d.seed != 0 ? d.seed : std::random_device{}());
  gen.stop_at_eos = !request.ignore_eos;

  auto g = std::make_shared<Generation>();
  g->kind = call.kind;
  g->path = call.path;
  g->id = (call.kind == ApiKind::kChat ? "chatcmpl-" : "cmpl-") + RandomHex(24);
  g->created = UnixSeconds();
  g->deployment = deployment;
  g->caller = call.caller.name;
  g->stream = request.stream;
  g->include_usage = request.include_usage;
  g->max_tokens = call.max_tokens;
  g->prompt_tokens = prompt_len;
  g->arrival = call.arrival;
  g->replica = replica;
  g->lease = std::move(call.lease);
  g->metrics = deps.metrics != nullptr ? &deps.metrics->For(deployment) : nullptr;
  g->exchange = call.exchange;
  g->decoder = std::make_unique<StreamDecoder>(replica->model().tokenizer());
  g->stop = std::make_unique<StopMatcher>(request.stop);

  // Both callbacks run on the replica's engine thread: keep them short.
  Generation* raw = g.get();
  serve::TokenCallback on_token = [this, raw](int32_t token) { return OnToken(*raw, token); };
  // The scheduler holds on_done until it runs; it keeps the Generation alive.
  serve::DoneCallback on_done = [this, g](Result<serve::GenerateStats> result) {
    OnDone(g, std::move(result));
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
    Result<agent::ReplicaLease> again = deps.replicas->AcquireLease(deployment);
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
    inflight_cv.notify_all();
    g->accounted = true;
    const Status& s = submitted.status();
    if (s.code() == StatusCode::kResourceExhausted) {
      Refuse(call.exchange,
             ApiError{429, "the deployment's queue is full; retry later", "", "rate_limit_error",
                      "rate_limit_exceeded"},
             deployment, call.path, call.caller.name,
             {{"Retry-After", std::to_string(RetryAfterSeconds(*replica))}});
    } else if (s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kOutOfRange) {
      Refuse(call.exchange, ApiError{400, s.message(), "", "invalid_request_error", ""}, deployment,
             call.path, call.caller.name);
    } else {
      Refuse(call.exchange, ApiError{503, s.message(), "", "server_error", "unavailable"},
             deployment, call.path, call.caller.name);
    }
    return false;
  }
  g->scheduler_id = submitted.value();
  if (g->metrics != nullptr) g->metrics->prompt_tokens->Inc(prompt_len);
  if (g->stream) {
    std::lock_guard<std::mutex> lock(g->mu);
    StartStreamLocked(*g);
  }
  // A client that goes away (or falls too far behind) stops its generation. When it is already
  // gone this runs at once.
  std::weak_ptr<Generation> weak = g;
  call.exchange->OnAbandoned([weak] {
    if (std::shared_ptr<Generation> gone = weak.lock()) {
      gone->cancel = true;
      gone->replica->scheduler().Cancel(gone->scheduler_id.load());
    }
  });
  return true;
}

bool InferenceServer::Impl::OnToken(Generation& g, int32_t token) {
  const Clock::time_point now = Clock::now();
  if (g.metrics != nullptr) {
    if (g.generated == 0) {
      g.metrics->ttft_seconds->Observe(Seconds(now - g.arrival));
    } else {
      g.metrics->inter_token_seconds->Observe(Seconds(now - g.last_token));
    }
    g.metrics->generated_tokens->Inc();
  }
  if (g.generated == 0) g.ttft_ms = Seconds(now - g.arrival) * 1e3;
  g.last_token = now;
  ++g.generated;
  const std::string text = g.stop->Push(g.decoder->Push(token));
  if (!text.empty()) {
    if (g.stream) {
      std::lock_guard<std::mutex> lock(g.mu);
      StartStreamLocked(g);
      if (!g.exchange->Write(
              SseEvent(CompletionChunk(g.kind, g.id, g.created, g.deployment, text, false, "")))) {
        g.cancel = true;  // gone, or reading too slowly
      }
    } else {
      g.text += text;
    }
  }
  return !g.stop->stopped() && !g.cancel.load();
}

void InferenceServer::Impl::OnDone(const std::shared_ptr<Generation>& g,
                                   Result<serve::GenerateStats> result) {
  std::string tail;
  if (result.ok() && !g->stop->stopped()) {
    tail = g->stop->Push(g->decoder->Flush());
    if (!g->stop->stopped()) tail += g->stop->Flush();
  }
  if (result.ok()) {
    g->cached_tokens = result->cached_tokens;
    if (g->metrics != nullptr) {
      g->metrics->prefix_cache_queries->Inc(result->prompt_tokens);
      g->metrics->prefix_cache_hits->Inc(result->cached_tokens);
    }
  }
  // A request stopped by a stop string or by its client is not an engine error.
  Status error;
  if (!result.ok() && result.status().code() != StatusCode::kCancelled) error = result.status();
  const std::string finish =
      g->stop->stopped() ? "stop" : (g->generated >= g->max_tokens ? "length" : "stop");
  int code = 200;
  if (!error.ok()) code = error.code() == StatusCode::kUnavailable ? 503 : 500;
  if (error.ok() && g->cancel.load()) code = 499;  // the client went away (or shutdown)

  if (!g->stream) {
    // Counted before the client sees the answer: a scrape right after it includes the request.
    Finish(g, code);
    if (code == 200) {
      g->exchange->Send(
          JsonResponse(200, DumpJson(CompletionResponse(
                                g->kind, g->id, g->created, g->deployment, g->text + tail, finish,
                                Usage{g->prompt_tokens, g->generated, g->cached_tokens}))));
    } else if (code != 499) {
      g->exchange->Send(
          JsonResponse(code, ApiError{code, error.message(), "", "server_error", ""}.ToJson()));
    }
    return;
  }
  {
    std::lock_guard<std::mutex> lock(g->mu);
    StartStreamLocked(*g);
    if (!tail.empty()) {
      g->exchange->Write(
          SseEvent(CompletionChunk(g->kind, g->id, g->created, g->deployment, tail, false, "")));
    }
    if (code != 200 && code != 499) {
      g->exchange->Write(
          "data: " + ApiError{code, error.message(), "", "server_error", ""}.ToJson() + "\n\n");
    } else if (code == 200) {
      g->exchange->Write(
          SseEvent(CompletionChunk(g->kind, g->id, g->created, g->deployment, "", false, finish)));
      if (g->include_usage) {
        g->exchange->Write(
            SseEvent(UsageChunk(g->kind, g->id, g->created, g->deployment,
                                Usage{g->prompt_tokens, g->generated, g->cached_tokens})));
      }
    }
  }
  // Counted before the client sees [DONE].
  Finish(g, code);
  std::lock_guard<std::mutex> lock(g->mu);
  g->exchange->Write(kSseDone);
  g->exchange->End();
}

void InferenceServer::Impl::Finish(const std::shared_ptr<Generation>& g, int code) {
  if (g->accounted.exchange(true)) return;
  const double total_s = Seconds(Clock::now() - g->arrival);
  if (code == 200) {
    const double prev = avg_request_seconds.load();
    avg_request_seconds.store(prev * 0.8 + total_s * 0.2);
  }
  if (g->metrics != nullptr) g->metrics->CountRequest(code);
  agent::LogEvent(spdlog::level::info, "http_request",
                  {{"path", g->path},
                   {"deployment", g->deployment},
                   {"key", g->caller},
                   {"status", code},
                   {"stream", g->stream},
                   {"prompt_tokens", g->prompt_tokens},
                   {"generated_tokens", g->generated},
                   {"ttft_ms", g->ttft_ms},
                   {"total_ms", total_s * 1e3}});
  g->lease.Release();
  {
    std::lock_guard<std::mutex> lock(inflight_mu);
    inflight.erase(g);
  }
  inflight_cv.notify_all();
}

// ---- The other routes ---------------------------------------------------------------------------

void InferenceServer::Impl::HandleModels(HttpRequest& req,
                                         const std::shared_ptr<HttpExchange>& ex) {
  ApiError error;
  std::optional<agent::ApiKeyIdentity> who = Authenticate(req, &error);
  if (!who) {
    Refuse(ex, error, kNoDeployment, "/v1/models", "");
    return;
  }
  json data = json::array();
  for (const agent::DeploymentView& v : deps.replicas->List()) {
    if (!who->Allows(v.name)) continue;
    data.push_back({{"id", v.name},
                    {"object", "model"},
                    {"created", 0},
                    {"owned_by", "sextant"},
                    {"ready", v.replicas_ready > 0}});
  }
  ex->Send(JsonResponse(200, DumpJson(json{{"object", "list"}, {"data", data}})));
}

void InferenceServer::Impl::HandleMetrics(HttpRequest& req,
                                          const std::shared_ptr<HttpExchange>& ex) {
  if (options.metrics_need_key) {
    ApiError error;
    if (!Authenticate(req, &error)) {
      Refuse(ex, error, kNoDeployment, "/metrics", "");
      return;
    }
  }
  if (deps.registry == nullptr) {
    ex->Send({404, "text/plain", {}, "no metrics registry\n"});
    return;
  }
  ex->Send({200, "text/plain; version=0.0.4; charset=utf-8", {}, deps.registry->RenderText()});
}

void InferenceServer::Impl::Routes() {
  HttpServer& s = *http;
  using RunOn = HttpServer::RunOn;
  // The probes run on the I/O thread: they answer however busy the workers are.
  s.Route(
      "GET", "/healthz",
      [](HttpRequest&, std::shared_ptr<HttpExchange> ex) {
        ex->Send({200, "text/plain", {}, "ok\n"});
      },
      RunOn::kIoThread);
  s.Route(
      "GET", "/readyz",
      [this](HttpRequest&, std::shared_ptr<HttpExchange> ex) {
        std::string why;
        if (draining.load()) {
          ex->Send({503, "text/plain", {}, "shutting down\n"});
        } else if (deps.replicas->AllReady(&why)) {
          ex->Send({200, "text/plain", {}, "ready\n"});
        } else {
          ex->Send({503, "text/plain", {}, "not ready: " + why + "\n"});
        }
      },
      RunOn::kIoThread);
  s.Route("GET", "/metrics",
          [this](HttpRequest& req, std::shared_ptr<HttpExchange> ex) { HandleMetrics(req, ex); });
  s.Route("GET", "/v1/models",
          [this](HttpRequest& req, std::shared_ptr<HttpExchange> ex) { HandleModels(req, ex); });
  s.Route("POST", "/v1/completions", [this](HttpRequest& req, std::shared_ptr<HttpExchange> ex) {
    HandleGenerate(ApiKind::kCompletion, req, ex);
  });
  s.Route("POST", "/v1/chat/completions",
          [this](HttpRequest& req, std::shared_ptr<HttpExchange> ex) {
            HandleGenerate(ApiKind::kChat, req, ex);
          });
  s.SetErrorBody([](int status, const std::string& message) {
    ApiError e;
    e.http_status = status;
    e.message = message;
    e.type = status == 404   ? "not_found_error"
             : status >= 500 ? "server_error"
                             : "invalid_request_error";
    return HttpResponse{status, kJson, {}, e.ToJson()};
  });
}

InferenceServer::InferenceServer(InferenceServerOptions options, InferenceServerDeps deps)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(deps))) {}

InferenceServer::~InferenceServer() { Shutdown(std::chrono::milliseconds(0)); }

Status InferenceServer::Start() {
  Impl& m = *impl_;
  if (m.http) return Status::FailedPrecondition("the HTTP listener is already started");
  if (m.deps.replicas == nullptr || m.deps.keys == nullptr || m.deps.audit == nullptr) {
    return Status::FailedPrecondition(
        "the inference API needs its replicas, its API keys and the audit log");
  }
  m.http = std::make_unique<HttpServer>(m.options.listener);
  m.Routes();
  if (Status s = m.http->Start(); !s.ok()) {
    m.http.reset();
    return s;
  }
  agent::LogEvent(spdlog::level::info, "http_listening",
                  {{"address", m.options.listener.host + ":" + std::to_string(m.http->port())},
                   {"scheme", m.http->tls() ? "https" : "http"},
                   {"client_certificates", !m.options.listener.tls_client_ca.empty()},
                   {"api_keys", m.deps.keys->active_keys()}});
  return Status::Ok();
}

int InferenceServer::port() const { return impl_->http ? impl_->http->port() : 0; }
bool InferenceServer::tls() const { return impl_->http && impl_->http->tls(); }
HttpServer::Stats InferenceServer::listener_stats() const {
  return impl_->http ? impl_->http->stats() : HttpServer::Stats{};
}

void InferenceServer::Shutdown(std::chrono::milliseconds grace) {
  Impl& m = *impl_;
  if (m.shut_down || !m.http) return;
  m.shut_down = true;
  m.draining = true;
  {
    std::unique_lock<std::mutex> lock(m.inflight_mu);
    m.inflight_cv.wait_for(lock, grace, [&] { return m.inflight.empty(); });
    for (const auto& g : m.inflight) {
      g->cancel = true;
      g->replica->scheduler().Cancel(g->scheduler_id.load());
    }
    // Cancelled requests end at the engine's next step; give them a moment to say so.
    m.inflight_cv.wait_for(lock, std::chrono::seconds(2), [&] { return m.inflight.empty(); });
  }
  m.http->Stop();
}

}  // namespace sextant::http
