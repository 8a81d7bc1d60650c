// What the OpenAI request parser refuses before it builds anything: nesting past the depth
// limit, more values than allowed, numbers that overflow a double; and what it still takes.
#include <gtest/gtest.h>

#include <string>

#include "connectors/http/openai_api.h"

namespace sextant::http {
namespace {

TEST(OpenAiBounds, NestingAndValueCountAreRefusedNamingTheOffset) {
  ApiError e;
  const std::string deep = std::string(4 << 20, '[');
  EXPECT_FALSE(ParseCompletionRequest(deep, ApiKind::kCompletion, &e));
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.code, "json_too_deep");
  EXPECT_NE(e.message.find("deeper than 64 levels (at byte 64)"), std::string::npos) << e.message;

  // Brackets inside strings are text, not nesting.
  const std::string in_string = R"({"model":"m","prompt":")" + std::string(1000, '[') + "\"}";
  EXPECT_TRUE(ParseCompletionRequest(in_string, ApiKind::kCompletion, &e)) << e.message;
  // Escaped quotes do not end a string early.
  EXPECT_TRUE(ParseCompletionRequest(R"({"model":"m","prompt":"a\"[[[[\\"})", ApiKind::kCompletion,
                                     &e, {.max_depth = 2}))
      << e.message;

  std::string many = R"({"model":"m","prompt":[)";
  for (int i = 0; i < 2000; ++i) many += "1,";
  many += "1]}";
  EXPECT_FALSE(ParseCompletionRequest(many, ApiKind::kCompletion, &e,
                                      {.max_depth = 64, .max_values = 1000}));
  EXPECT_EQ(e.code, "json_too_many_values");
  EXPECT_NE(e.message.find("more than 1000 values"), std::string::npos) << e.message;
  EXPECT_TRUE(ParseCompletionRequest(many, ApiKind::kCompletion, &e)) << e.message;
}

TEST(OpenAiBounds, NumbersThatOverflowADoubleAre400) {
  for (const char* body : {R"({"model":"m","prompt":"x","temperature":1e309})",
                           R"({"model":"m","prompt":"x","top_p":-1e400})",
                           R"({"model":"m","prompt":"x","seed":1e999})"}) {
    ApiError e;
    EXPECT_FALSE(ParseCompletionRequest(body, ApiKind::kCompletion, &e)) << body;
    EXPECT_EQ(e.http_status, 400) << body;
    EXPECT_NE(e.message.find("too large"), std::string::npos) << e.message;
  }
  // Large but finite is a range error naming the field.
  ApiError e;
  EXPECT_FALSE(ParseCompletionRequest(R"({"model":"m","prompt":"x","temperature":1e308})",
                                      ApiKind::kCompletion, &e));
  EXPECT_EQ(e.param, "temperature");
}

}  // namespace
}  // namespace sextant::http
