// The signer against AWS's published Signature Version 4 test suite (testdata/README.md says
// where the vectors come from and how the files are read).
#include "connectors/cloud/aws/sigv4.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace sextant::cloud::aws {
namespace {

namespace fs = std::filesystem;

const fs::path kSuite =
    fs::path(SEXTANT_SOURCE_DIR) / "tests/connectors/cloud/aws/testdata/aws-sig-v4-test-suite";

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Credentials SuiteCredentials() {
  Credentials c;
  c.access_key_id = "AKIDEXAMPLE";
  c.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  return c;
}

SigningScope SuiteScope() {
  std::tm tm{};
  tm.tm_year = 2015 - 1900;
  tm.tm_mon = 7;
  tm.tm_mday = 30;
  tm.tm_hour = 12;
  tm.tm_min = 36;
  return {"us-east-1", "service", std::chrono::system_clock::from_time_t(timegm(&tm))};
}

struct SuiteRequest {
  CanonicalInput input;
  std::string body;
  std::string expected_authorization;
  std::string security_token;  // X-Amz-Security-Token, kept out of `input`
};

// Reads NAME.sreq: request line, headers (continuation lines are further values of the header
// above them), the Authorization header (the expectation), an empty line and the body.
SuiteRequest ReadSreq(const std::string& name) {
  const std::string text = ReadFile(kSuite / (name + ".sreq"));
  EXPECT_FALSE(text.empty()) << name;
  SuiteRequest r;
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = line.rfind(' ');
  r.input.method = line.substr(0, sp1);
  std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const size_t q = target.find('?');
  r.input.path = target.substr(0, q);
  if (q != std::string::npos) {
    std::string query = target.substr(q + 1);
    size_t i = 0;
    while (i <= query.size()) {
      size_t amp = query.find('&', i);
      if (amp == std::string::npos) amp = query.size();
      std::string pair = query.substr(i, amp - i);
      const size_t eq = pair.find('=');
      r.input.query.emplace_back(pair.substr(0, eq),
                                 eq == std::string::npos ? "" : pair.substr(eq + 1));
      i = amp + 1;
    }
  }
  std::string last_name;
  bool in_body = false;
  while (std::getline(in, line)) {
    if (in_body) {
      r.body += (r.body.empty() ? "" : "\n") + line;
      continue;
    }
    if (line.empty()) {
      in_body = true;
      continue;
    }
    if (line[0] == ' ' || line[0] == '\t') {
      r.input.headers.emplace_back(last_name, line);
      continue;
    }
    const size_t colon = line.find(':');
    last_name = line.substr(0, colon);
    std::string value = line.substr(colon + 1);
    if (last_name == "Authorization") {
      r.expected_authorization = value.substr(value.find_first_not_of(' '));
    } else if (last_name == "X-Amz-Security-Token") {
      r.security_token = value;
    } else {
      r.input.headers.emplace_back(last_name, value);
    }
  }
  return r;
}

class SigV4Suite : public ::testing::TestWithParam<std::string> {};

TEST_P(SigV4Suite, AuthorizationHeaderMatchesThePublishedOne) {
  SuiteRequest r = ReadSreq(GetParam());
  ASSERT_FALSE(r.expected_authorization.empty());
  Credentials creds = SuiteCredentials();
  // header-before: the token is one of the signed headers; header-after: it is added later.
  if (!r.security_token.empty() && GetParam() == "post-sts-header-before") {
    r.input.headers.emplace_back("X-Amz-Security-Token", r.security_token);
  }
  r.input.payload = r.body;
  Signature s = SignV4(r.input, creds, SuiteScope());
  EXPECT_EQ(s.authorization, r.expected_authorization) << s.canonical_request;

  if (fs::exists(kSuite / (GetParam() + ".creq"))) {
    EXPECT_EQ(s.canonical_request, ReadFile(kSuite / (GetParam() + ".creq")));
  }
  if (fs::exists(kSuite / (GetParam() + ".sts"))) {
    EXPECT_EQ(s.string_to_sign, ReadFile(kSuite / (GetParam() + ".sts")));
  }
}

std::vector<std::string> SuiteNames() {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(kSuite)) {
    if (e.path().extension() == ".sreq") names.push_back(e.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

INSTANTIATE_TEST_SUITE_P(Published, SigV4Suite, ::testing::ValuesIn(SuiteNames()),
                         [](const ::testing::TestParamInfo<std::string>& p) {
                           std::string n = p.param;
                           for (char& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

TEST(SigV4, TheSuiteIsThere) {
  // 28 vectors; a checkout that lost the files must fail, not pass with no cases.
  EXPECT_EQ(SuiteNames().size(), 28u);
}

TEST(SigV4, AnyChangeToTheRequestChangesTheSignature) {
  SuiteRequest r = ReadSreq("post-x-www-form-urlencoded");
  r.input.payload = r.body;
  const std::string base = SignV4(r.input, SuiteCredentials(), SuiteScope()).signature;
  auto changed = r;
  changed.input.payload = "Param1=value2";
  EXPECT_NE(SignV4(changed.input, SuiteCredentials(), SuiteScope()).signature, base);
  changed = r;
  changed.input.headers.emplace_back("X-Amz-Target", "x");
  EXPECT_NE(SignV4(changed.input, SuiteCredentials(), SuiteScope()).signature, base);
  SigningScope other = SuiteScope();
  other.region = "eu-west-1";
  EXPECT_NE(SignV4(r.input, SuiteCredentials(), other).signature, base);
  other = SuiteScope();
  other.time += std::chrono::seconds(1);
  EXPECT_NE(SignV4(r.input, SuiteCredentials(), other).signature, base);
  Credentials wrong = SuiteCredentials();
  wrong.secret_access_key.back() = 'X';
  EXPECT_NE(SignV4(r.input, wrong, SuiteScope()).signature, base);
}

TEST(SigV4, UriEncodingAndPaths) {
  EXPECT_EQ(UriEncode("a b/c~d*e", true), "a%20b%2Fc~d%2Ae");
  EXPECT_EQ(UriEncode("a b/c", false), "a%20b/c");
  EXPECT_EQ(UriEncode("\xe1\x88\xb4"), "%E1%88%B4");
  // A path already percent-encoded on the wire is encoded again (every service but S3).
  EXPECT_EQ(CanonicalUri("/clusters/my%20c", true), "/clusters/my%2520c");
  EXPECT_EQ(CanonicalUri("//a//b/", false), "//a//b/");  // S3 keeps the path as is
  EXPECT_EQ(NormalizePath("/a/b/.."), "/a/");
  EXPECT_EQ(NormalizePath(""), "/");
  EXPECT_EQ(AmzDate(SuiteScope().time), "20150830T123600Z");
}

}  // namespace
}  // namespace sextant::cloud::aws
