// AwsClient: signed requests to AWS service APIs in the three protocols the console needs,
// with retries.
//   Query   (EC2, STS, IAM): POST form "Action=...&Version=...&..." -> XML
//   Json    (Cost Explorer, Service Quotas, CloudTrail, Pricing): POST JSON with
//           X-Amz-Target "<prefix>.<Action>" (awsJson1_1) -> JSON
//   Rest    (EKS): GET/POST on a resource path with a query -> JSON
// Endpoints are the public regional ones (https://<service>.<region>.amazonaws.com; IAM, Cost
// Explorer and Pricing are global and signed for us-east-1), or every service at
// `endpoint_url` when one is given (a private endpoint, or a test server such as moto).
//
// Retries: throttling, 5xx answers and transport failures are tried again, at most
// `max_attempts` times in all, after a pause drawn uniformly from [0, min(cap, base * 2^n)]
// ("full jitter"). Expired credentials are refreshed and the call tried once more. Every other
// error is returned at once as a CallError with the AWS code, the message and a hint.
//
// Thread-safety: calls may be made from several threads at once; the HttpClient and the
// CredentialsProvider must be thread-safe (the project's are).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <string_view>

#include "connectors/cloud/aws/credentials.h"
#include "connectors/cloud/aws/sigv4.h"
#include "connectors/cloud/call_result.h"
#include "connectors/cloud/http_client.h"

namespace sextant::cloud::aws {

struct AwsClientOptions {
  std::string endpoint_url;  // "" for the public endpoints
  int max_attempts = 5;
  std::chrono::milliseconds backoff_base{200};
  std::chrono::milliseconds backoff_cap{8'000};
  std::chrono::milliseconds timeout{30'000};                   // per attempt
  std::function<void(std::chrono::milliseconds)> sleep;        // default: sleep_for
  std::function<std::chrono::system_clock::time_point()> now;  // default: system clock
};

// What is called, for signing, routing and error messages: api_call() is "ec2:DescribeRegions".
struct ServiceCall {
  std::string service;  // signing name and IAM prefix: ec2, sts, iam, ce, servicequotas ...
  std::string region;
  std::string action;
  std::string api_call() const { return service + ":" + action; }
};

class AwsClient {
 public:
  AwsClient(std::shared_ptr<HttpClient> http, std::shared_ptr<CredentialsProvider> credentials,
            AwsClientOptions options);

  // Query protocol; the answer's XML text.
  CallResult<std::string> Query(const ServiceCall& call, std::string_view version,
                                const KeyValues& params);
  // awsJson1_1 protocol; the answer's JSON ({} for an empty body).
  CallResult<nlohmann::json> Json(const ServiceCall& call, std::string_view target_prefix,
                                  const nlohmann::json& body);
  // REST-JSON protocol; path segments must already be URI-encoded. A non-null body is sent as
  // JSON.
  CallResult<nlohmann::json> Rest(const ServiceCall& call, std::string_view method,
                                  std::string_view path, const KeyValues& query,
                                  const nlohmann::json& body = nullptr);
  // Any other request (S3's REST-XML, say): the answer's body as it came. S3 paths are signed
  // as they are (no normalisation) and carry x-amz-content-sha256.
  CallResult<std::string> Raw(const ServiceCall& call, std::string_view method,
                              std::string_view path, const KeyValues& query,
                              const KeyValues& headers, std::string body);

  // The endpoint base URL and signing region for a service call (no trailing slash).
  std::pair<std::string, std::string> Endpoint(const ServiceCall& call) const;
  const AwsClientOptions& options() const { return options_; }
  std::chrono::system_clock::time_point Now() const { return options_.now(); }

 private:
  struct Prepared {
    std::string method;
    std::string path;  // wire path
    KeyValues query;
    KeyValues headers;  // without host, x-amz-date, security token, authorization
    std::string body;
  };
  CallResult<std::string> Send(const ServiceCall& call, const Prepared& p);
  std::chrono::milliseconds Backoff(int attempt);

  std::shared_ptr<HttpClient> http_;
  std::shared_ptr<CredentialsProvider> credentials_;
  AwsClientOptions options_;
  std::mutex rng_mu_;
  std::mt19937_64 rng_;  // GUARDED_BY(rng_mu_)
};

// "a=1&b=x%20y": keys and values URI-encoded as SigV4 wants them.
std::string FormEncode(const KeyValues& params);

}  // namespace sextant::cloud::aws
