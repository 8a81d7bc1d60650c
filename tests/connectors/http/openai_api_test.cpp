#include "connectors/http/openai_api.h"

#include <gtest/gtest.h>

namespace sextant::http {
namespace {

using nlohmann::json;

ApiError Refuse(const std::string& body, ApiKind kind = ApiKind::kCompletion) {
  ApiError e;
  auto r = ParseCompletionRequest(body, kind, &e);
  EXPECT_FALSE(r.has_value()) << body;
  return e;
}

TEST(OpenAiRequest, ParsesACompleteChatRequest) {
  ApiError e;
  auto r = ParseCompletionRequest(R"({
      "model": "stories", "stream": true, "stream_options": {"include_usage": true},
      "messages": [{"role": "system", "content": "be brief"},
                   {"role": "user", "content": [{"type": "text", "text": "hi "},
                                                {"type": "text", "text": "there"}]}],
      "max_tokens": 12, "temperature": 0, "top_p": 0.5, "seed": 7, "stop": ["\n\n", "END"],
      "n": 1, "user": "someone", "frequency_penalty": 0})",
                                  ApiKind::kChat, &e);
  ASSERT_TRUE(r.has_value()) << e.message;
  EXPECT_EQ(r->model, "stories");
  ASSERT_EQ(r->messages.size(), 2u);
  EXPECT_EQ(r->messages[1].content, "hi there");
  EXPECT_EQ(r->max_tokens, 12);
  EXPECT_EQ(r->temperature, 0.0);
  EXPECT_EQ(r->top_p, 0.5);
  EXPECT_EQ(r->seed, 7u);
  EXPECT_EQ(r->stop, (std::vector<std::string>{"\n\n", "END"}));
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
}

TEST(OpenAiRequest, CompletionPromptForms) {
  ApiError e;
  auto text = ParseCompletionRequest(R"({"model":"m","prompt":["one"]})", ApiKind::kCompletion, &e);
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(text->prompt, "one");
  auto ids = ParseCompletionRequest(R"({"model":"m","prompt":[1,2,3]})", ApiKind::kCompletion, &e);
  ASSERT_TRUE(ids.has_value());
  EXPECT_EQ(ids->prompt_tokens, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(Refuse(R"({"model":"m","prompt":["a","b"]})").param, "prompt");
  EXPECT_EQ(Refuse(R"({"model":"m","prompt":[1,-2]})").param, "prompt[1]");
}

TEST(OpenAiRequest, MalformedRequestsNameTheField) {
  ApiError e = Refuse("{\"model\": \"m\", \"prompt\": ");
  EXPECT_EQ(e.http_status, 400);
  EXPECT_NE(e.message.find("not valid JSON"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("byte"), std::string::npos) << e.message;

  struct Case {
    const char* body;
    const char* param;
  };
  const Case cases[] = {
      {R"([1,2])", ""},
      {R"({"prompt":"x"})", "model"},
      {R"({"model":7,"prompt":"x"})", "model"},
      {R"({"model":"m"})", "prompt"},
      {R"({"model":"m","prompt":{}})", "prompt"},
      {R"({"model":"m","prompt":"x","temperature":"hot"})", "temperature"},
      {R"({"model":"m","prompt":"x","temperature":2.5})", "temperature"},
      {R"({"model":"m","prompt":"x","top_p":0})", "top_p"},
      {R"({"model":"m","prompt":"x","max_tokens":0})", "max_tokens"},
      {R"({"model":"m","prompt":"x","max_tokens":1.5})", "max_tokens"},
      {R"({"model":"m","prompt":"x","n":2})", "n"},
      {R"({"model":"m","prompt":"x","seed":"s"})", "seed"},
      {R"({"model":"m","prompt":"x","stop":[1]})", "stop[0]"},
      {R"({"model":"m","prompt":"x","stop":["a","b","c","d","e"]})", "stop"},
      {R"({"model":"m","prompt":"x","stop":""})", "stop"},
      {R"({"model":"m","prompt":"x","stream":"yes"})", "stream"},
      {R"({"model":"m","prompt":"x","stream_options":{"include_usage":1}})",
       "stream_options.include_usage"},
      {R"({"model":"m","prompt":"x","logprobs":true})", "logprobs"},
      {R"({"model":"m","prompt":"x","presence_penalty":1})", "presence_penalty"},
  };
  for (const Case& c : cases) {
    ApiError err = Refuse(c.body);
    EXPECT_EQ(err.param, c.param) << c.body << " -> " << err.message;
    if (*c.param != '\0') {
      EXPECT_NE(err.message.find(std::string("'") + c.param + "'"), std::string::npos)
          << err.message;
    }
  }
  const Case chat[] = {
      {R"({"model":"m"})", "messages"},
      {R"({"model":"m","messages":[]})", "messages"},
      {R"({"model":"m","messages":["hi"]})", "messages[0]"},
      {R"({"model":"m","messages":[{"role":"robot","content":"x"}]})", "messages[0].role"},
      {R"({"model":"m","messages":[{"role":"user"}]})", "messages[0].content"},
      {R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]})",
       "messages[0].content[0].type"},
  };
  for (const Case& c : chat) {
    EXPECT_EQ(Refuse(c.body, ApiKind::kChat).param, c.param) << c.body;
  }
}

TEST(OpenAiRequest, ErrorJsonHasTheOpenAiShape) {
  ApiError e{429, "full", "", "rate_limit_error", "rate_limit_exceeded"};
  json j = json::parse(e.ToJson());
  EXPECT_EQ(j["error"]["message"], "full");
  EXPECT_EQ(j["error"]["type"], "rate_limit_error");
  EXPECT_TRUE(j["error"]["param"].is_null());
  EXPECT_EQ(j["error"]["code"], "rate_limit_exceeded");
}

TEST(StopMatcher, HoldsBackPossibleStartsAndCutsAtTheMatch) {
  StopMatcher m({"END", "\n\n"});
  EXPECT_EQ(m.Push("Hello E"), "Hello ");
  EXPECT_EQ(m.Push("N"), "");
  EXPECT_EQ(m.Push("x"), "ENx");
  EXPECT_EQ(m.Push(" and\n"), " and");
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.Push("\nmore"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.Push("ignored"), "");
  EXPECT_EQ(m.Flush(), "");

  StopMatcher tail({"STOP"});
  EXPECT_EQ(tail.Push("abcST"), "abc");
  EXPECT_EQ(tail.Flush(), "ST");

  StopMatcher none({});
  EXPECT_EQ(none.Push("anything"), "anything");
}

TEST(ResponseFraming, SseEventsAndChunks) {
  json chunk = CompletionChunk(ApiKind::kChat, "chatcmpl-1", 5, "m", "Hi", false, "");
  const std::string ev = SseEvent(chunk);
  ASSERT_EQ(ev.rfind("data: ", 0), 0u);
  ASSERT_EQ(ev.substr(ev.size() - 2), "\n\n");
  json back = json::parse(ev.substr(6));
  EXPECT_EQ(back["object"], "chat.completion.chunk");
  EXPECT_EQ(back["choices"][0]["delta"]["content"], "Hi");
  EXPECT_TRUE(back["choices"][0]["finish_reason"].is_null());
  json first = CompletionChunk(ApiKind::kChat, "c", 5, "m", "", true, "");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  json last = CompletionChunk(ApiKind::kCompletion, "c", 5, "m", "", false, "length");
  EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
  json whole = CompletionResponse(ApiKind::kChat, "c", 5, "m", "text", "stop", Usage{3, 4});
  EXPECT_EQ(whole["choices"][0]["message"]["content"], "text");
  EXPECT_EQ(whole["usage"]["total_tokens"], 7);
  // Invalid UTF-8 never throws.
  EXPECT_NO_THROW(DumpJson(json{{"t", std::string("\xff\xfe")}}));
}

}  // namespace
}  // namespace sextant::http
