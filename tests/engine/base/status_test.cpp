#include "engine/base/status.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace sextant {
namespace {

TEST(Status, DefaultIsOkAndPrintsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(Status, ErrorCarriesCodeAndMessage) {
  Status s = Status::InvalidArgument("tensor 'blk.0.attn_q.weight': offset 123 past end");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.ToString(), "INVALID_ARGUMENT: tensor 'blk.0.attn_q.weight': offset 123 past end");
}

TEST(Status, WithContextPrefixesErrorsAndKeepsOk) {
  EXPECT_TRUE(Status().WithContext("loading").ok());
  Status s = Status::NotFound("no such file").WithContext("model.gguf");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "model.gguf: no such file");
}

Result<int> ParsePositive(int v) {
  if (v <= 0) return Status::OutOfRange("value " + std::to_string(v) + " is not positive");
  return v;
}

Result<int> Doubled(int v) {
  SEXTANT_ASSIGN_OR_RETURN(int x, ParsePositive(v));
  return 2 * x;
}

Status CheckBoth(int a, int b) {
  SEXTANT_RETURN_IF_ERROR(ParsePositive(a).status());
  SEXTANT_RETURN_IF_ERROR(ParsePositive(b).status());
  return Status::Ok();
}

TEST(Result, HoldsValueOrError) {
  Result<int> ok = ParsePositive(3);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 3);
  EXPECT_TRUE(ok.status().ok());

  Result<int> bad = ParsePositive(-1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(bad.value_or(7), 7);
}

TEST(Result, MacrosPropagateTheFirstError) {
  EXPECT_EQ(*Doubled(4), 8);
  EXPECT_EQ(Doubled(0).status().message(), "value 0 is not positive");
  EXPECT_TRUE(CheckBoth(1, 2).ok());
  EXPECT_EQ(CheckBoth(1, -2).message(), "value -2 is not positive");
}

TEST(Result, MoveOnlyValues) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(5);
  ASSERT_TRUE(r.ok());
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 5);
}

TEST(StatusCode, NamesMatchTheCanonicalSet) {
  EXPECT_EQ(StatusCodeName(StatusCode::kUnauthenticated), "UNAUTHENTICATED");
  EXPECT_EQ(StatusCodeName(StatusCode::kPermissionDenied), "PERMISSION_DENIED");
  EXPECT_EQ(static_cast<int>(StatusCode::kUnauthenticated), 16);
}

}  // namespace
}  // namespace sextant
