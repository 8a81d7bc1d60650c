// The OpenAI-compatible inference API's wire format, without the transport: request parsing
// (strict about the fields it knows, each error naming the field), stop-string
// matching over streamed text, response and server-sent-event framing. The listener that uses
// these is inference_server.h.
//
// Supported request fields (POST /v1/completions and /v1/chat/completions):
//   model (required), prompt (completions: a string, or an array of one string or of token
//   ids), messages (chat: [{role: system|user|assistant, content: string or [{type: "text",
//   text}]}]), max_tokens (>= 1; omitted: what is left of the context), temperature [0, 2],
//   top_p (0, 1], seed (integer), stop (a string or up to 4 strings), stream (bool),
//   stream_options.include_usage (bool), n (1 only), ignore_eos (bool, an extension: keep
//   generating past the end-of-sequence token). Fields OpenAI defines that change nothing here
//   (user, frequency_penalty 0, presence_penalty 0, logprobs false ...) are accepted; other
//   values of those that Sextant cannot honour are refused with 400 naming the field.
//
// Chat formatting is not here: a conversation is formatted by the deployment's chat template
// (engine/chat/chat_template.h; the replica holds it), the same formatting validation uses.
//
// Thread-safety: free functions of their arguments; a StopMatcher is used by one thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/base/status.h"
#include "engine/chat/chat_template.h"

namespace sextant::http {

using ChatMessage = chat::Message;  // role: system | user | assistant

enum class ApiKind { kCompletion, kChat };

struct CompletionRequest {
  ApiKind kind = ApiKind::kCompletion;
  std::string model;
  std::string prompt;                  // completions, text form
  std::vector<int32_t> prompt_tokens;  // completions, token-id form
  std::vector<ChatMessage> messages;   // chat
  std::optional<int> max_tokens;
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;
  bool ignore_eos = false;
};

// Why a request is refused: the HTTP status, an OpenAI-style error type and the field.
struct ApiError {
  int http_status = 400;
  std::string message;
  std::string param;                           // the field, "" when none
  std::string type = "invalid_request_error";  // invalid_request_error, not_found_error ...
  std::string code;                            // "model_not_found", "rate_limit_exceeded" ...

  // {"error": {"message", "type", "param", "code"}}
  std::string ToJson() const;
};

// Bounds on a request's JSON, checked in one pass over the text before anything is built from
// it, so a body of 4 MB of "[" or of a million tiny values costs no memory.
struct JsonLimits {
  int max_depth = 64;          // nesting of arrays and objects
  size_t max_values = 131072;  // values and object keys, all levels together
};
// OK when `text` nests no deeper than limits.max_depth and holds at most limits.max_values
// values; otherwise 400 naming the limit and the byte offset where it was passed. Does not
// otherwise validate the text (the JSON parser does).
bool CheckJsonBounds(std::string_view text, const JsonLimits& limits, ApiError* error);

// Parses a request body (CheckJsonBounds first). On failure fills *error and returns nullopt:
// 400 for malformed JSON (with the byte offset), for a number that does not fit a double (it
// would be infinite), and for each field below that is missing, mistyped or out of range (the
// error's param names it).
std::optional<CompletionRequest> ParseCompletionRequest(std::string_view body, ApiKind kind,
                                                        ApiError* error,
                                                        const JsonLimits& limits = {});

// Finds stop strings in streamed text. Push() returns the text that is safe to emit: text that
// could still be the beginning of a stop string is held back until it is known not to be.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);
  // Appends `text`; returns what may be emitted now. After a match, stopped() is true and the
  // returned text ends before the stop string (which is never emitted).
  std::string Push(std::string_view text);
  // The held-back text, at the end of generation without a match.
  std::string Flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

// "data: <json>\n\n"
std::string SseEvent(const nlohmann::json& payload);
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

// JSON text that never fails on invalid UTF-8 (bytes are replaced by U+FFFD).
std::string DumpJson(const nlohmann::json& j);

struct Usage {
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_tokens = 0;  // prompt tokens reused from the prefix cache (prompt_tokens_details)
};
nlohmann::json UsageJson(const Usage& u);

// A whole (non-streamed) response.
nlohmann::json CompletionResponse(ApiKind kind, const std::string& id, int64_t created,
                                  const std::string& model, const std::string& text,
                                  const std::string& finish_reason, const Usage& usage);
// One streamed chunk. `role_delta` puts {"role": "assistant"} in a chat delta (first chunk);
// finish_reason empty means null.
nlohmann::json CompletionChunk(ApiKind kind, const std::string& id, int64_t created,
                               const std::string& model, const std::string& text, bool role_delta,
                               const std::string& finish_reason);
// The final usage chunk of stream_options.include_usage (empty choices).
nlohmann::json UsageChunk(ApiKind kind, const std::string& id, int64_t created,
                          const std::string& model, const Usage& usage);

}  // namespace sextant::http
