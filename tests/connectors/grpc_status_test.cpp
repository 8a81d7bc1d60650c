#include "connectors/grpc_status.h"

#include <gtest/gtest.h>

#include "sextant/v1/agent.pb.h"

namespace sextant {
namespace {

TEST(GrpcStatus, RoundTripsEveryCode) {
  for (int c = 1; c <= 16; ++c) {
    Status s(static_cast<StatusCode>(c), "msg " + std::to_string(c));
    grpc::Status g = ToGrpcStatus(s);
    EXPECT_EQ(static_cast<int>(g.error_code()), c);
    EXPECT_EQ(FromGrpcStatus(g), s);
  }
  EXPECT_TRUE(ToGrpcStatus(Status()).ok());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

TEST(AgentProto, AgentInfoSerializesAndParses) {
  v1::AgentInfo info;
  info.set_version("0.1.0");
  info.add_backends("cpu");
  std::string wire;
  ASSERT_TRUE(info.SerializeToString(&wire));
  v1::AgentInfo back;
  ASSERT_TRUE(back.ParseFromString(wire));
  EXPECT_EQ(back.version(), "0.1.0");
  ASSERT_EQ(back.backends_size(), 1);
  // Truncated bytes are rejected, not half-read.
  EXPECT_FALSE(back.ParseFromString(wire.substr(0, wire.size() - 1)));
}

}  // namespace
}  // namespace sextant
