// The OpenAI request parser on any body (completions and chat): a 400 naming the field or
// offset, or a request whose numbers are finite and in range; stop strings never leak out of
// the matcher.
#include <cmath>
#include <cstdint>
#include <string>

#include "connectors/http/openai_api.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  using namespace sextant::http;
  const ApiKind kind = (data[0] & 1) ? ApiKind::kChat : ApiKind::kCompletion;
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  ApiError error;
  JsonLimits limits;
  limits.max_depth = 16;
  limits.max_values = 4096;
  auto request = ParseCompletionRequest(body, kind, &error, limits);
  if (!request) {
    SEXTANT_FUZZ_CHECK(error.http_status == 400);
    SEXTANT_FUZZ_CHECK(!error.message.empty());
    (void)error.ToJson();
    return 0;
  }
  SEXTANT_FUZZ_CHECK(!request->model.empty());
  if (request->temperature) {
    SEXTANT_FUZZ_CHECK(std::isfinite(*request->temperature) && *request->temperature >= 0 &&
                       *request->temperature <= 2);
  }
  if (request->top_p) SEXTANT_FUZZ_CHECK(*request->top_p > 0 && *request->top_p <= 1);
  if (request->max_tokens) SEXTANT_FUZZ_CHECK(*request->max_tokens >= 1);
  SEXTANT_FUZZ_CHECK(request->stop.size() <= 4);
  StopMatcher stop(request->stop);
  std::string out;
  for (const auto& m : request->messages) out += stop.Push(m.content);
  out += stop.Push(request->prompt);
  out += stop.Flush();
  for (const std::string& s : request->stop) {
    SEXTANT_FUZZ_CHECK(out.find(s) == std::string::npos);
  }
  (void)SseEvent(CompletionChunk(kind, "id", 0, request->model, out, true, "stop"));
  return 0;
}
