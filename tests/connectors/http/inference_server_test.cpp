// The OpenAI-compatible listener over real HTTP on 127.0.0.1, with the real engine on
// stories260K (skipped when the shared models folder is absent).
#include "connectors/http/inference_server.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <future>
#include <thread>

#include "app/agent/metrics/registry.h"
#include "app/agent/replicas/replica_manager.h"
#include "app/agent/replicas/serving_metrics.h"
#include "connectors/inventory/gpu_inventory.h"
#include "engine/chat/chat_template.h"
#include "engine/model/model.h"
#include "engine/serve/session.h"
#include "engine/tokenizer/tokenizer.h"
#include "tests/support/api_access.h"
#include "tests/support/command.h"

namespace sextant::http {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path SharedModel() { return fs::path(SEXTANT_SHARED_DIR) / "models" / "stories260K.gguf"; }

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

// Splits an SSE body into its data payloads, checking the framing as it goes.
std::vector<std::string> SseData(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t end = body.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos) << "unterminated event at byte " << pos;
    if (end == std::string::npos) break;
    const std::string event = body.substr(pos, end - pos);
    EXPECT_EQ(event.rfind("data: ", 0), 0u) << event;
    EXPECT_EQ(event.find('\n'), std::string::npos) << "multi-line event: " << event;
    out.push_back(event.substr(6));
    pos = end + 2;
  }
  return out;
}

struct StreamResult {
  std::string text;
  std::string finish_reason;
  int completion_tokens = -1;
  int cached_tokens = -1;
  bool saw_role = false;
  bool done = false;
};

StreamResult ParseStream(const std::string& body, bool chat) {
  StreamResult r;
  const std::vector<std::string> events = SseData(body);
  for (size_t i = 0; i < events.size(); ++i) {
    if (events[i] == "[DONE]") {
      EXPECT_EQ(i, events.size() - 1) << "[DONE] is not last";
      r.done = true;
      continue;
    }
    json j = json::parse(events[i]);
    if (j.contains("usage") && j["choices"].empty()) {
      r.completion_tokens = j["usage"]["completion_tokens"].get<int>();
      r.cached_tokens = j["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>();
      continue;
    }
    const json& c = j["choices"][0];
    if (chat) {
      if (c["delta"].contains("role")) r.saw_role = true;
      if (c["delta"].contains("content")) r.text += c["delta"]["content"].get<std::string>();
    } else {
      r.text += c["text"].get<std::string>();
    }
    if (!c["finish_reason"].is_null()) r.finish_reason = c["finish_reason"].get<std::string>();
  }
  return r;
}

class InferenceServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(SharedModel())) {
      GTEST_SKIP() << "needs " << SharedModel() << " (the shared models folder is absent)";
    }
    std::string tmpl = (fs::temp_directory_path() / "sextant-http-XXXXXX").string();
    store_ = mkdtemp(tmpl.data());
    fs::copy_file(SharedModel(), store_ / "stories260K.gguf");
    sha_ = agent::Sha256OfFile(store_ / "stories260K.gguf").value();
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::seconds(2));
    server_.reset();
    access_.reset();
    manager_.reset();
    if (!store_.empty()) fs::remove_all(store_);
  }

  // Starts a manager with one deployment and the server; waits until it settles.
  void Start(const std::string& name, int max_batch, int max_queue, std::string sha = {},
             std::string chat_template = {}) {
    serving_ = std::make_unique<agent::ServingMetrics>(registry_);
    manager_ = std::make_unique<agent::ReplicaManager>(
        agent::ReplicaManagerOptions{.model_store = store_, .max_queue = max_queue},
        serving_.get());
    agent::DeploymentTarget t;
    t.name = name;
    t.generation = 1;
    t.model_uri = "file:///models/stories260K.gguf";
    t.model_sha256 = sha.empty() ? sha_ : sha;
    t.engine.max_batch = max_batch;
    t.engine.threads = 1;
    t.engine.chat_template = chat_template;
    manager_->Upsert(t);
    auto view = manager_->WaitSettled(name, std::chrono::seconds(60));
    ASSERT_TRUE(view.has_value());
    access_ = std::make_unique<sextant::testing::ApiAccess>(store_);
    ASSERT_TRUE(access_->ok());
    server_ = std::make_unique<InferenceServer>(
        sextant::testing::LoopbackApi(), access_->Deps(*manager_, serving_.get(), &registry_));
    Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  httplib::Client Client() {
    httplib::Client c("127.0.0.1", server_->port());
    access_->Authorize(c);
    c.set_read_timeout(60, 0);
    c.set_connection_timeout(5, 0);
    return c;
  }

  StreamResult Stream(const json& body, bool chat) {
    httplib::Client c = Client();
    std::string received;
    auto res = PostStreaming(c, chat ? "/v1/chat/completions" : "/v1/completions", body.dump(),
                             [&](const char* data, size_t n) {
                               received.append(data, n);
                               return true;
                             });
    EXPECT_TRUE(res) << httplib::to_string(res.error());
    if (!res) return {};
    EXPECT_EQ(res->status, 200) << received;
    EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
    return ParseStream(received, chat);
  }

  fs::path store_;
  std::string sha_;
  agent::Registry registry_;
  std::unique_ptr<agent::ServingMetrics> serving_;
  std::unique_ptr<agent::ReplicaManager> manager_;
  std::unique_ptr<sextant::testing::ApiAccess> access_;
  std::unique_ptr<InferenceServer> server_;
};

TEST_F(InferenceServerTest, HealthReadinessAndModels) {
  Start("stories", 4, 8);
  httplib::Client c = Client();
  auto health = c.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto ready = c.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200) << ready->body;
  auto models = c.Get("/v1/models");
  ASSERT_TRUE(models);
  ASSERT_EQ(models->status, 200);
  json j = json::parse(models->body);
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 1u);
  EXPECT_EQ(j["data"][0]["id"], "stories");
  EXPECT_EQ(j["data"][0]["object"], "model");
  auto nowhere = c.Get("/v2/nothing");
  ASSERT_TRUE(nowhere);
  EXPECT_EQ(nowhere->status, 404);
}

TEST_F(InferenceServerTest, CompletionWithoutStreamReturnsUsage) {
  Start("stories", 4, 8);
  httplib::Client c = Client();
  json body = {{"model", "stories"},
               {"prompt", "Once upon a time"},
               {"max_tokens", 12},
               {"temperature", 0},
               {"ignore_eos", true}};
  auto res = c.Post("/v1/completions", body.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  json j = json::parse(res->body);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["model"], "stories");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["completion_tokens"], 12);
  EXPECT_GT(j["usage"]["prompt_tokens"].get<int>(), 1);
  EXPECT_FALSE(j["choices"][0]["text"].get<std::string>().empty());

  // The same request streamed gives the same text (greedy), framed as SSE ending in [DONE].
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  StreamResult s = Stream(body, false);
  EXPECT_TRUE(s.done);
  EXPECT_EQ(s.text, j["choices"][0]["text"].get<std::string>());
  EXPECT_EQ(s.finish_reason, "length");
  EXPECT_EQ(s.completion_tokens, 12);
}

TEST_F(InferenceServerTest, StreamingChatCompletion) {
  Start("stories", 4, 8);
  json body = {{"model", "stories"},
               {"messages", {{{"role", "user"}, {"content", "Tell me a story about a cat."}}}},
               {"max_tokens", 24},
               {"temperature", 0},
               {"stream", true}};
  StreamResult s = Stream(body, true);
  EXPECT_TRUE(s.saw_role);
  EXPECT_TRUE(s.done);
  EXPECT_FALSE(s.text.empty());
  EXPECT_TRUE(s.finish_reason == "stop" || s.finish_reason == "length") << s.finish_reason;

  // Non-streamed, the same conversation gives the same reply.
  body["stream"] = false;
  httplib::Client c = Client();
  auto res = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  json j = json::parse(res->body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"].get<std::string>(), s.text);
}

// A chat completion is the deployment's chat formatting (engine/chat, here the built-in llama2
// the spec names) followed by greedy generation: the same prompt tokens and the same reply as
// the engine gives for that formatting directly, which is what a chat validation computes.
TEST_F(InferenceServerTest, ChatCompletionFormatsWithTheDeploymentsChatTemplate) {
  Start("stories", 2, 8, {}, "llama2");
  const std::vector<chat::Message> conversation = {{"system", "Tell short stories."},
                                                   {"user", "Once upon a time"}};
  json body = {{"model", "stories"},
               {"messages",
                {{{"role", "system"}, {"content", conversation[0].content}},
                 {{"role", "user"}, {"content", conversation[1].content}}}},
               {"max_tokens", 16},
               {"temperature", 0}};
  httplib::Client c = Client();
  auto res = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json j = json::parse(res->body);

  model::LoadOptions load;
  load.backend = "cpu";
  load.threads = 1;
  auto m = model::Model::Load(store_ / "stories260K.gguf", load);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  auto formatter = chat::ChatFormatter::ForModel((*m)->file(), (*m)->tokenizer(), "llama2");
  ASSERT_TRUE(formatter.ok());
  auto ids = formatter->Tokenize((*m)->tokenizer(), conversation);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(j["usage"]["prompt_tokens"].get<size_t>(), ids->size());
  serve::Session session(*m, 0);
  serve::GenerateRequest req;
  req.prompt = *ids;
  req.max_tokens = 16;
  req.sampling.temperature = 0;
  std::vector<int32_t> out;
  ASSERT_TRUE(session
                  .Generate(req,
                            [&](int32_t t) {
                              out.push_back(t);
                              return true;
                            })
                  .ok());
  EXPECT_EQ(j["choices"][0]["message"]["content"].get<std::string>(),
            (*m)->tokenizer().Decode(out, false));

  // A conversation the template refuses is a 400 that names the messages.
  body["messages"] = {{{"role", "user"}, {"content", "a"}}, {{"role", "user"}, {"content", "b"}}};
  auto refused = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 400) << refused->body;
  const json e = json::parse(refused->body);
  EXPECT_EQ(e["error"]["param"], "messages");
  EXPECT_NE(e["error"]["message"].get<std::string>().find("roles must alternate"),
            std::string::npos)
      << refused->body;

  // A conversation longer than the context is refused while it is tokenized: the formatted
  // text is tokenized only up to the context length.
  std::string story;
  while (story.size() < (1u << 20)) story += "Once upon a time there was a cat. ";
  body["messages"] = {{{"role", "user"}, {"content", story}}};
  auto too_long = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(too_long);
  EXPECT_EQ(too_long->status, 400) << too_long->body.substr(0, 300);
  const json l = json::parse(too_long->body);
  EXPECT_EQ(l["error"]["code"], "context_length_exceeded");
  EXPECT_EQ(l["error"]["param"], "messages");
  EXPECT_NE(l["error"]["message"].get<std::string>().find("the prompt has more than"),
            std::string::npos)
      << too_long->body;
}

TEST_F(InferenceServerTest, CurlStreamsAChatCompletion) {
  if (sextant::testing::RunCommand("command -v curl").exit_code != 0) {
    GTEST_SKIP() << "curl is not installed";
  }
  Start("stories", 4, 8);
  const std::string body = R"({"model":"stories","messages":[{"role":"user","content":"Hello"}],)"
                           R"("max_tokens":16,"temperature":0,"stream":true})";
  const std::string cmd = "curl -sS -N --max-time 60 -H 'Content-Type: application/json' " +
                          std::string("-H 'Authorization: Bearer ") + access_->key() + "' -d '" +
                          body + "' http://127.0.0.1:" + std::to_string(server_->port()) +
                          "/v1/chat/completions";
  auto out = sextant::testing::RunCommand(cmd);
  ASSERT_EQ(out.exit_code, 0) << out.output;
  StreamResult s = ParseStream(out.output, true);
  EXPECT_TRUE(s.saw_role);
  EXPECT_TRUE(s.done) << out.output;
  EXPECT_FALSE(s.text.empty());
}

TEST_F(InferenceServerTest, SixteenConcurrentGreedyStreamsMatchASingleStream) {
  Start("stories", 16, 32);
  json body = {{"model", "stories"},
               {"prompt", "Once upon a time, there was a little"},
               {"max_tokens", 48},
               {"temperature", 0},
               {"ignore_eos", true},
               {"stream", true},
               {"stream_options", {{"include_usage", true}}}};
  const StreamResult single = Stream(body, false);
  ASSERT_TRUE(single.done);
  ASSERT_EQ(single.completion_tokens, 48);
  std::vector<std::future<StreamResult>> futures;
  for (int i = 0; i < 16; ++i) {
    futures.push_back(std::async(std::launch::async, [&] { return Stream(body, false); }));
  }
  for (int i = 0; i < 16; ++i) {
    StreamResult r = futures[i].get();
    EXPECT_TRUE(r.done) << "stream " << i;
    EXPECT_EQ(r.completion_tokens, 48) << "stream " << i;
    EXPECT_EQ(r.text, single.text) << "stream " << i;
  }
}

TEST_F(InferenceServerTest, FullQueueAnswers429WithRetryAfter) {
  // One KV slot and room for one waiting request: a burst beyond that is refused with 429, and
  // every request that was accepted completes.
  Start("tiny", 1, 1);
  // No max_tokens: each request generates until its context is full.
  const json body = {
      {"model", "tiny"}, {"prompt", "Once"}, {"temperature", 0}, {"ignore_eos", true}};
  struct Outcome {
    int status = 0;
    std::string retry_after;
    std::string code;
  };
  int refused = 0;
  int served = 0;
  for (int attempt = 0; attempt < 5 && refused == 0; ++attempt) {
    std::vector<std::future<Outcome>> burst;
    for (int i = 0; i < 24; ++i) {
      burst.push_back(std::async(std::launch::async, [&] {
        httplib::Client c = Client();
        auto res = c.Post("/v1/completions", body.dump(), "application/json");
        Outcome o;
        if (!res) {
          o.code = httplib::to_string(res.error());
          return o;
        }
        o.status = res->status;
        o.retry_after = res->get_header_value("Retry-After");
        if (res->status != 200) o.code = json::parse(res->body)["error"]["code"];
        return o;
      }));
    }
    for (auto& f : burst) {
      const Outcome o = f.get();
      if (o.status == 429) {
        ++refused;
        ASSERT_FALSE(o.retry_after.empty());
        EXPECT_GE(std::stoi(o.retry_after), 1);
        EXPECT_LE(std::stoi(o.retry_after), 60);
        EXPECT_EQ(o.code, "rate_limit_exceeded");
      } else {
        EXPECT_EQ(o.status, 200) << o.code;
        ++served;
      }
    }
  }
  EXPECT_GT(refused, 0) << "the queue never filled";
  EXPECT_GE(served, 2);
  EXPECT_EQ(serving_->For("tiny").RequestsWithCode(429), refused);
  EXPECT_EQ(serving_->For("tiny").RequestsWithCode(200), served);
}

TEST_F(InferenceServerTest, MalformedRequestsAre400NamingTheField) {
  Start("stories", 4, 8);
  httplib::Client c = Client();
  auto bad_json = c.Post("/v1/chat/completions", "{\"model\": \"stories\", \"messages\": [",
                         "application/json");
  ASSERT_TRUE(bad_json);
  EXPECT_EQ(bad_json->status, 400);
  EXPECT_NE(
      json::parse(bad_json->body)["error"]["message"].get<std::string>().find("not valid JSON"),
      std::string::npos);
  struct Case {
    json body;
    std::string param;
  };
  const std::vector<Case> cases = {
      {{{"model", "stories"}, {"messages", {{{"role", "user"}, {"content", "x"}}}}, {"n", 3}}, "n"},
      {{{"model", "stories"},
        {"messages", {{{"role", "user"}, {"content", "x"}}}},
        {"temperature", "warm"}},
       "temperature"},
      {{{"model", "stories"}, {"messages", {{{"role", "user"}, {"content", 5}}}}},
       "messages[0].content"},
      {{{"model", "stories"},
        {"messages", {{{"role", "user"}, {"content", "x"}}}},
        {"max_tokens", 100000}},
       "max_tokens"},
  };
  for (const Case& k : cases) {
    auto res = c.Post("/v1/chat/completions", k.body.dump(), "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400) << k.body.dump();
    json e = json::parse(res->body)["error"];
    EXPECT_EQ(e["param"], k.param) << res->body;
    EXPECT_NE(e["message"].get<std::string>().find(k.param), std::string::npos) << res->body;
  }
  auto unknown = c.Post("/v1/completions", R"({"model":"nope","prompt":"x"})", "application/json");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
  EXPECT_EQ(json::parse(unknown->body)["error"]["code"], "model_not_found");
}

TEST_F(InferenceServerTest, Sha256MismatchServesNothing) {
  std::string wrong = sha_;
  wrong[5] = wrong[5] == 'a' ? 'b' : 'a';
  Start("tampered", 4, 8, wrong);
  auto view = manager_->Get("tampered");
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->phase, agent::DeploymentPhase::kFailed);
  EXPECT_NE(view->reason.find("sha256 mismatch"), std::string::npos);
  httplib::Client c = Client();
  auto res = c.Post("/v1/completions", R"({"model":"tampered","prompt":"Once","max_tokens":4})",
                    "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  json e = json::parse(res->body)["error"];
  EXPECT_EQ(e["code"], "deployment_failed");
  EXPECT_NE(e["message"].get<std::string>().find("sha256 mismatch"), std::string::npos);
  auto ready = c.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);
  EXPECT_NE(ready->body.find("tampered"), std::string::npos);
  auto models = c.Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(json::parse(models->body)["data"][0]["ready"], false);
}

TEST_F(InferenceServerTest, MetricsParseAsPrometheusTextAndMoveAfterARequest) {
  Start("stories", 4, 8);
  inventory::DeviceInventory devices({.nvml_library = "", .rocm_smi_library = ""});
  auto handle = inventory::ExportDeviceMetrics(devices, registry_, std::chrono::milliseconds(0));
  httplib::Client c = Client();
  auto scrape = [&] {
    auto res = c.Get("/metrics");
    EXPECT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
    auto parsed = agent::ParseText(res->body);
    EXPECT_TRUE(parsed.ok()) << parsed.status().ToString() << "\n" << res->body;
    return parsed.ok() ? parsed.value() : agent::ParsedExposition{};
  };
  const agent::ParsedExposition before = scrape();
  const std::vector<std::pair<std::string, std::string>> dep = {{"deployment", "stories"}};
  EXPECT_EQ(before.types.at("sextant_time_to_first_token_seconds"), "histogram");
  EXPECT_EQ(before.Sum("sextant_replicas_ready", dep), 1);
  EXPECT_GT(before.Sum("sextant_device_memory_total_bytes", {{"kind", "cpu"}}), 0);

  const std::string secret = "my secret prompt text";
  json body = {{"model", "stories"}, {"prompt", secret},   {"max_tokens", 6},
               {"temperature", 0},   {"ignore_eos", true}, {"stream", true}};
  ASSERT_TRUE(Stream(body, false).done);
  auto bad = c.Post("/v1/completions", R"({"model":"stories"})", "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);

  const agent::ParsedExposition after = scrape();
  auto delta = [&](const std::string& name,
                   std::vector<std::pair<std::string, std::string>> match) {
    return after.Sum(name, match) - before.Sum(name, match);
  };
  EXPECT_EQ(delta("sextant_requests_total", {{"deployment", "stories"}, {"code", "200"}}), 1);
  EXPECT_EQ(delta("sextant_requests_total", {{"code", "400"}}), 1);
  EXPECT_EQ(delta("sextant_generated_tokens_total", dep), 6);
  EXPECT_GT(delta("sextant_prompt_tokens_total", dep), 0);
  EXPECT_EQ(delta("sextant_time_to_first_token_seconds_count", dep), 1);
  EXPECT_EQ(delta("sextant_inter_token_latency_seconds_count", dep), 5);
  EXPECT_EQ(after.Sum("sextant_queue_depth", dep), 0);
  // No payload in any label.
  for (const agent::Sample& s : after.samples) {
    for (const auto& [k, v] : s.labels) EXPECT_EQ(v.find("secret"), std::string::npos) << k;
  }
}

// A prompt sent again reuses the KV blocks of its first run: usage reports the reused prompt
// tokens (whole 16-token blocks, short of the last token), the text is the same, and /metrics
// counts the prompt tokens looked up and reused and the KV blocks.
TEST_F(InferenceServerTest, ARepeatedPromptReportsCachedTokens) {
  Start("stories", 4, 8);
  httplib::Client c = Client();
  auto scrape = [&] {
    auto res = c.Get("/metrics");
    EXPECT_TRUE(res);
    auto parsed = agent::ParseText(res ? res->body : "");
    EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
    return parsed.ok() ? parsed.value() : agent::ParsedExposition{};
  };
  const std::vector<std::pair<std::string, std::string>> dep = {{"deployment", "stories"}};
  const agent::ParsedExposition before = scrape();
  json body = {{"model", "stories"},
               {"prompt",
                "Once upon a time, there was a little girl named Lily. She loved to play outside "
                "in the park with her friends and her big red ball."},
               {"max_tokens", 8},
               {"temperature", 0},
               {"ignore_eos", true}};
  auto first = c.Post("/v1/completions", body.dump(), "application/json");
  ASSERT_TRUE(first);
  ASSERT_EQ(first->status, 200) << first->body;
  const json a = json::parse(first->body);
  const int prompt = a["usage"]["prompt_tokens"].get<int>();
  ASSERT_GT(prompt, 32);
  EXPECT_EQ(a["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  auto second = c.Post("/v1/completions", body.dump(), "application/json");
  ASSERT_TRUE(second);
  ASSERT_EQ(second->status, 200) << second->body;
  const json b = json::parse(second->body);
  const int cached = (prompt - 1) / 16 * 16;
  EXPECT_EQ(b["usage"]["prompt_tokens_details"]["cached_tokens"], cached);
  EXPECT_EQ(b["choices"][0]["text"], a["choices"][0]["text"]);
  // Streamed, with the usage chunk.
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  const StreamResult s = Stream(body, false);
  EXPECT_EQ(s.cached_tokens, cached);
  EXPECT_EQ(s.text, a["choices"][0]["text"].get<std::string>());

  const agent::ParsedExposition after = scrape();
  auto delta = [&](const std::string& name) {
    return after.Sum(name, dep) - before.Sum(name, dep);
  };
  EXPECT_EQ(delta("sextant_prefix_cache_queries_total"), 3 * prompt);
  EXPECT_EQ(delta("sextant_prefix_cache_hits_total"), 2 * cached);
  EXPECT_GT(after.Sum("sextant_kv_cache_blocks_total", dep), 0);
  EXPECT_EQ(after.Sum("sextant_kv_cache_blocks_used", dep), 0);  // nothing running
  EXPECT_GE(after.Sum("sextant_kv_cache_blocks_cached", dep), cached / 16);
  EXPECT_EQ(after.Sum("sextant_kv_cache_usage_ratio", dep), 0);
}

TEST_F(InferenceServerTest, ServesHttpsWithACertificateFromTheConfig) {
  if (sextant::testing::RunCommand("command -v openssl").exit_code != 0) {
    GTEST_SKIP() << "the openssl command is not installed";
  }
  const fs::path cert = store_ / "http.pem";
  const fs::path key = store_ / "http.key";
  auto gen = sextant::testing::RunCommand(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "
      "/CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " +
      key.string() + " -out " + cert.string());
  ASSERT_EQ(gen.exit_code, 0) << gen.output;
  Start("stories", 4, 8);
  InferenceServerOptions tls_options = sextant::testing::LoopbackApi();
  tls_options.listener.tls_cert = cert;
  tls_options.listener.tls_key = key;
  InferenceServer tls(tls_options, access_->Deps(*manager_, serving_.get(), &registry_));
  ASSERT_TRUE(tls.Start().ok());
  EXPECT_TRUE(tls.tls());
  httplib::SSLClient c("127.0.0.1", tls.port());
  c.set_ca_cert_path(cert.c_str());
  c.enable_server_certificate_verification(true);
  auto res = c.Get("/healthz");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  tls.Shutdown(std::chrono::seconds(1));

  InferenceServerOptions broken_options = tls_options;
  broken_options.listener.tls_cert = store_ / "missing.pem";
  InferenceServer broken(broken_options, access_->Deps(*manager_, serving_.get(), &registry_));
  Status s = broken.Start();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("missing.pem"), std::string::npos);
}

}  // namespace
}  // namespace sextant::http
