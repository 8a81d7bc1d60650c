#include "app/common/cloud_identity.h"

#include <gtest/gtest.h>

namespace sextant {
namespace {

TEST(CloudIdentity, InstanceIdsHaveTheirProvidersShape) {
  EXPECT_TRUE(CheckInstanceId("aws", "i-0123456789abcdef0").ok());
  EXPECT_TRUE(CheckInstanceId("aws", "i-01234567").ok());  // the older 8-digit form
  EXPECT_TRUE(CheckInstanceId("gcp", "4520031799277581759").ok());
  EXPECT_TRUE(CheckInstanceId("azure", "0b9e6a3e-9c1f-4d3b-8f5e-1a2b3c4d5e6f").ok());
  for (const char* p : {"aws", "gcp", "azure", "on-prem"}) {
    EXPECT_TRUE(CheckInstanceId(p, "").ok()) << p << ": empty means unknown";
  }

  EXPECT_FALSE(CheckInstanceId("aws", "i-0123456789ABCDEF0").ok());    // upper case
  EXPECT_FALSE(CheckInstanceId("aws", "i-0123456789abcdef").ok());     // 16 digits
  EXPECT_FALSE(CheckInstanceId("aws", "j-0123456789abcdef0").ok());    // prefix
  EXPECT_FALSE(CheckInstanceId("aws", "i-0123456789abcdef0\n").ok());  // trailing newline
  EXPECT_FALSE(CheckInstanceId("aws", "i-").ok());
  EXPECT_FALSE(CheckInstanceId("gcp", "123456789012345678901").ok());  // 21 digits
  EXPECT_FALSE(CheckInstanceId("gcp", "12a").ok());
  EXPECT_FALSE(CheckInstanceId("azure", "0b9e6a3e9c1f4d3b8f5e1a2b3c4d5e6f").ok());  // no dashes
  EXPECT_FALSE(CheckInstanceId("azure", "0b9e6a3e-9c1f-4d3b-8f5e-1a2b3c4d5e6g").ok());
  EXPECT_FALSE(CheckInstanceId("on-prem", "i-0123456789abcdef0").ok());
  EXPECT_FALSE(CheckInstanceId("moon", "i-0123456789abcdef0").ok());
}

TEST(CloudIdentity, AccountIdsHaveTheirProvidersShape) {
  EXPECT_TRUE(CheckAccountId("aws", "123456789012").ok());
  EXPECT_TRUE(CheckAccountId("gcp", "my-project-42").ok());
  EXPECT_TRUE(CheckAccountId("azure", "0b9e6a3e-9c1f-4d3b-8f5e-1a2b3c4d5e6f").ok());
  EXPECT_FALSE(CheckAccountId("aws", "12345678901").ok());
  EXPECT_FALSE(CheckAccountId("aws", "12345678901a").ok());
  EXPECT_FALSE(CheckAccountId("gcp", "My-Project").ok());
  EXPECT_FALSE(CheckAccountId("gcp", "proj-").ok());
  EXPECT_FALSE(CheckAccountId("gcp", "1project").ok());
  EXPECT_FALSE(CheckAccountId("azure", "sub-1").ok());
}

TEST(CloudIdentity, TheMessageNamesTheShapeAndQuotesTheValueSafely) {
  Status s = CheckInstanceId("aws", "i-12345");
  EXPECT_EQ(s.message(),
            "instance id 'i-12345' is malformed for aws (expected i- and 8 or 17 hex digits)");
  // Control bytes are not echoed and a long value is cut.
  s = CheckInstanceId("aws", std::string("i-\x1b[2J") + std::string(200, 'a'));
  EXPECT_EQ(s.message().find('\x1b'), std::string::npos) << s.message();
  EXPECT_LT(s.message().size(), 160u) << s.message();
  EXPECT_NE(s.message().find("...'"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace sextant
