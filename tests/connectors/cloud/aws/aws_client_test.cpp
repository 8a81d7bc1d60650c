// AwsClient: endpoints, signed request shape, error shapes, retries with backoff and jitter,
// expired credentials refreshed once. The network is a ScriptedHttpClient here (AWS throttling
// and mid-call expiry cannot be produced on demand), except where a real closed port is used.
#include "connectors/cloud/aws/aws_client.h"

#include <gtest/gtest.h>

#include "connectors/cloud/aws/aws_error.h"
#include "tests/connectors/cloud/scripted_http_client.h"

namespace sextant::cloud::aws {
namespace {

using testing::ScriptedHttpClient;

// Counts Invalidate() calls and hands out a new key after each.
class CountingCredentials final : public CredentialsProvider {
 public:
  CallResult<Credentials> Get() override {
    Credentials c;
    c.access_key_id = "ASIAKEY" + std::to_string(generation_);
    c.secret_access_key = "secret";
    c.session_token = "token" + std::to_string(generation_);
    return c;
  }
  void Invalidate() override { ++generation_; }
  std::string Describe() const override { return "counting"; }
  int generation_ = 0;
};

struct Harness {
  std::shared_ptr<ScriptedHttpClient> http = std::make_shared<ScriptedHttpClient>();
  std::shared_ptr<CountingCredentials> creds = std::make_shared<CountingCredentials>();
  std::vector<std::chrono::milliseconds> sleeps;
  std::unique_ptr<AwsClient> client;

  explicit Harness(std::string endpoint = "", int attempts = 5) {
    AwsClientOptions o;
    o.endpoint_url = std::move(endpoint);
    o.max_attempts = attempts;
    o.backoff_base = std::chrono::milliseconds(100);
    o.backoff_cap = std::chrono::milliseconds(1000);
    o.sleep = [this](std::chrono::milliseconds d) { sleeps.push_back(d); };
    o.now = [] { return std::chrono::system_clock::from_time_t(1'767'225'600); };  // 2026-01-01
    client = std::make_unique<AwsClient>(http, creds, o);
  }
};

const char* kThrottled = R"({"__type":"com.amazon.coral.availability#ThrottlingException",
                             "message":"Rate exceeded"})";
const char* kEc2Denied = R"(<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>UnauthorizedOperation</Code>
<Message>You are not authorized to perform this operation.</Message></Error></Errors>
<RequestID>abc</RequestID></Response>)";
const char* kExpired = R"(<ErrorResponse><Error><Type>Sender</Type><Code>ExpiredToken</Code>
<Message>The security token included in the request is expired</Message></Error>
<RequestId>r</RequestId></ErrorResponse>)";

TEST(AwsEndpoints, RegionalGlobalChinaAndOverride) {
  Harness h;
  auto ep = [&](const char* service, const char* region) {
    return h.client->Endpoint({service, region, "X"});
  };
  EXPECT_EQ(
      ep("ec2", "eu-west-1"),
      std::make_pair(std::string("https://ec2.eu-west-1.amazonaws.com"), std::string("eu-west-1")));
  EXPECT_EQ(ep("iam", "eu-west-1").first, "https://iam.amazonaws.com");
  EXPECT_EQ(ep("iam", "eu-west-1").second, "us-east-1");
  EXPECT_EQ(ep("ce", "ap-south-1").first, "https://ce.us-east-1.amazonaws.com");
  EXPECT_EQ(ep("pricing", "eu-west-1").first, "https://api.pricing.us-east-1.amazonaws.com");
  EXPECT_EQ(ep("sts", "cn-north-1").first, "https://sts.cn-north-1.amazonaws.com.cn");
  Harness o("http://127.0.0.1:5000/");
  EXPECT_EQ(o.client->Endpoint({"ec2", "eu-west-1", "X"}),
            std::make_pair(std::string("http://127.0.0.1:5000"), std::string("eu-west-1")));
  EXPECT_EQ(o.client->Endpoint({"ce", "eu-west-1", "X"}).second, "us-east-1");
}

TEST(AwsClient, QueryRequestsAreSignedFormPosts) {
  Harness h("http://127.0.0.1:5000");
  h.http->Answer(200, "<DescribeRegionsResponse/>");
  auto r = h.client->Query({"ec2", "eu-west-1", "DescribeRegions"}, "2016-11-15",
                           {{"Filter.1.Name", "region-name"}, {"Filter.1.Value.1", "eu west"}});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  ASSERT_EQ(h.http->requests().size(), 1u);
  const HttpRequest req = h.http->requests()[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.url, "http://127.0.0.1:5000/");
  EXPECT_EQ(req.body,
            "Action=DescribeRegions&Version=2016-11-15&Filter.1.Name=region-name&"
            "Filter.1.Value.1=eu%20west");
  EXPECT_TRUE(req.bypass_proxy);  // loopback endpoint
  EXPECT_EQ(ScriptedHttpClient::HeaderOf(req, "Host"), "127.0.0.1:5000");
  EXPECT_EQ(ScriptedHttpClient::HeaderOf(req, "X-Amz-Date"), "20260101T000000Z");
  EXPECT_EQ(ScriptedHttpClient::HeaderOf(req, "X-Amz-Security-Token"), "token0");
  const std::string auth = ScriptedHttpClient::HeaderOf(req, "Authorization");
  EXPECT_EQ(auth.rfind("AWS4-HMAC-SHA256 Credential=ASIAKEY0/20260101/eu-west-1/ec2/aws4_request, "
                       "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, "
                       "Signature=",
                       0),
            0u)
      << auth;
}

TEST(AwsClient, JsonAndRestRequestsCarryTheirTargetAndPath) {
  Harness h;
  h.http->Answer(200, R"({"Quota":{"Value":384}})");
  auto j = h.client->Json({"servicequotas", "us-east-1", "GetServiceQuota"},
                          "ServiceQuotasV20190624", {{"ServiceCode", "ec2"}});
  ASSERT_TRUE(j.ok());
  EXPECT_EQ((*j)["Quota"]["Value"], 384);
  EXPECT_EQ(ScriptedHttpClient::HeaderOf(h.http->requests()[0], "X-Amz-Target"),
            "ServiceQuotasV20190624.GetServiceQuota");
  EXPECT_EQ(ScriptedHttpClient::HeaderOf(h.http->requests()[0], "Content-Type"),
            "application/x-amz-json-1.1");
  h.http->Answer(200, R"({"clusters":[]})");
  auto r = h.client->Rest({"eks", "us-west-2", "ListClusters"}, "GET", "/clusters",
                          {{"maxResults", "100"}, {"nextToken", "a/b"}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(h.http->requests()[1].url,
            "https://eks.us-west-2.amazonaws.com/clusters?maxResults=100&nextToken=a%2Fb");
  EXPECT_FALSE(h.http->requests()[1].bypass_proxy);
}

TEST(AwsClient, ThrottlingIsRetriedWithJitteredExponentialBackoffUnderTheCap) {
  Harness h;
  for (int i = 0; i < 4; ++i) h.http->Answer(400, kThrottled);
  h.http->Answer(200, "{}");
  auto r = h.client->Json({"ce", "us-east-1", "GetCostAndUsage"}, "AWSInsightsIndexService", {});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(h.http->requests().size(), 5u);
  ASSERT_EQ(h.sleeps.size(), 4u);
  const int64_t ceilings[] = {100, 200, 400, 800};
  for (size_t i = 0; i < h.sleeps.size(); ++i) {
    EXPECT_GE(h.sleeps[i].count(), 0);
    EXPECT_LE(h.sleeps[i].count(), ceilings[i]) << "attempt " << i + 1;
  }
}

TEST(AwsClient, BackoffIsJitteredNotFixed) {
  // Across many retried calls the pauses of the third attempt must differ (full jitter), and
  // never pass the cap.
  Harness h("", 6);
  for (int call = 0; call < 20; ++call) {
    for (int i = 0; i < 5; ++i) h.http->Answer(503, "");
    h.http->Answer(200, "{}");
    ASSERT_TRUE(h.client->Json({"ce", "us-east-1", "X"}, "P", {}).ok());
  }
  std::set<int64_t> third;
  for (size_t i = 2; i < h.sleeps.size(); i += 5) third.insert(h.sleeps[i].count());
  EXPECT_GT(third.size(), 3u);
  for (auto s : h.sleeps) EXPECT_LE(s.count(), 1000);
}

TEST(AwsClient, GivesUpAfterTheLastAttemptWithTheCodeAndAHint) {
  Harness h;
  for (int i = 0; i < 5; ++i) h.http->Answer(503, "<html><body>Service Unavailable</body></html>");
  auto r = h.client->Query({"ec2", "us-east-1", "DescribeInstances"}, "2016-11-15", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(h.http->requests().size(), 5u);
  EXPECT_EQ(h.sleeps.size(), 4u);
  EXPECT_EQ(r.error().code, "HTTP503");
  EXPECT_EQ(r.error().message, "Service Unavailable");
  EXPECT_EQ(r.error().api_call, "ec2:DescribeInstances");
  EXPECT_EQ(r.error().region, "us-east-1");
  EXPECT_NE(r.error().hint.find("after 5 attempts"), std::string::npos);
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
}

TEST(AwsClient, AccessDeniedIsNotRetriedAndSaysWhichCallToAllow) {
  Harness h;
  h.http->Answer(403, kEc2Denied);
  auto r = h.client->Query({"ec2", "eu-west-1", "DescribeSecurityGroups"}, "2016-11-15", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(h.http->requests().size(), 1u);
  EXPECT_EQ(r.error().code, "UnauthorizedOperation");
  EXPECT_EQ(r.error().http_status, 403);
  EXPECT_NE(r.error().hint.find("ec2:DescribeSecurityGroups"), std::string::npos);
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
}

TEST(AwsClient, ExpiredCredentialsAreRenewedOnceAndTheCallRepeated) {
  Harness h;
  h.http->Answer(400, kExpired);
  h.http->Answer(200, "<ok/>");
  auto r = h.client->Query({"sts", "us-east-1", "GetCallerIdentity"}, "2011-06-15", {});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(h.creds->generation_, 1);
  ASSERT_EQ(h.http->requests().size(), 2u);
  EXPECT_NE(ScriptedHttpClient::HeaderOf(h.http->requests()[1], "Authorization")
                .find("Credential=ASIAKEY1/"),
            std::string::npos);
  EXPECT_TRUE(h.sleeps.empty());  // not a throttle: no pause

  // Expired again right after renewal: reported, with the hint, not looped.
  h.http->Answer(400, kExpired);
  h.http->Answer(400, kExpired);
  auto again = h.client->Query({"sts", "us-east-1", "GetCallerIdentity"}, "2011-06-15", {});
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, "ExpiredToken");
  EXPECT_NE(again.error().hint.find("expired"), std::string::npos);
  EXPECT_EQ(again.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(h.http->pending(), 0u);
}

TEST(AwsClient, NoServerIsAConnectionFailureWithAHint) {
  // A real connection to a closed port on 127.0.0.1.
  AwsClientOptions o;
  o.endpoint_url = "http://127.0.0.1:1";
  o.max_attempts = 2;
  o.backoff_base = std::chrono::milliseconds(1);
  Credentials c;
  c.access_key_id = "AKID";
  c.secret_access_key = "s";
  AwsClient client(std::make_shared<CurlHttpClient>(), std::make_shared<StaticCredentials>(c), o);
  auto r = client.Query({"ec2", "us-east-1", "DescribeRegions"}, "2016-11-15", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "ConnectionFailed");
  EXPECT_NE(r.error().message.find("127.0.0.1:1"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().hint.find("after 2 attempts"), std::string::npos);  // retried
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
}

TEST(AwsErrors, EveryProtocolsShapeGivesCodeAndMessage) {
  HttpResponse r;
  r.status = 400;
  r.body = kExpired;
  EXPECT_EQ(ParseAwsError(r).code, "ExpiredToken");
  r.body = kEc2Denied;
  EXPECT_EQ(ParseAwsError(r).message, "You are not authorized to perform this operation.");
  r.body = kThrottled;
  EXPECT_EQ(ParseAwsError(r).code, "ThrottlingException");
  EXPECT_EQ(ParseAwsError(r).message, "Rate exceeded");
  r.body = R"({"message":"User is not authorized"})";
  r.headers = {{"X-Amzn-ErrorType", "AccessDeniedException:http://internal.amazon.com/"}};
  EXPECT_EQ(ParseAwsError(r).code, "AccessDeniedException");
  r.headers.clear();
  r.status = 502;
  r.body = "<html><head><title>502 Bad Gateway</title></head></html>";
  EXPECT_EQ(ParseAwsError(r).code, "HTTP502");
  EXPECT_EQ(ParseAwsError(r).message, "502 Bad Gateway");
  r.body = "";
  EXPECT_EQ(ParseAwsError(r).code, "HTTP502");
  r.body = "<Error><Code>truncated";  // malformed XML: still an answer, never a crash
  EXPECT_EQ(ParseAwsError(r).code, "HTTP502");
}

TEST(AwsErrors, HintsForWhatAnOperatorCanFix) {
  EXPECT_NE(HintFor("OptInRequired", "ec2:DescribeInstances").find("not enabled"),
            std::string::npos);
  EXPECT_NE(HintFor("AccessDenied", "sts:AssumeRole").find("external id"), std::string::npos);
  EXPECT_NE(HintFor("NoSuchEntity", "iam:GetRole").find("deleted"), std::string::npos);
  EXPECT_NE(HintFor("SignatureDoesNotMatch", "x").find("clock"), std::string::npos);
  EXPECT_TRUE(IsRetryable({"x", "", "RequestLimitExceeded", "", "", 503}));
  EXPECT_TRUE(IsRetryable({"x", "", "HTTP429", "", "", 429}));
  EXPECT_FALSE(IsRetryable({"x", "", "AccessDenied", "", "", 403}));
  EXPECT_FALSE(IsRetryable({"x", "", "ValidationException", "", "", 400}));
}

}  // namespace
}  // namespace sextant::cloud::aws
