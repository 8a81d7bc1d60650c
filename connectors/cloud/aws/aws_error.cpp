#include "connectors/cloud/aws/aws_error.h"

#include <pugixml.hpp>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "connectors/cloud/call_result.h"

namespace sextant::cloud {

StatusCode StatusCodeFor(const CallError& e) {
  const std::string& c = e.code;
  auto is = [&](std::initializer_list<std::string_view> codes) {
    return std::find(codes.begin(), codes.end(), c) != codes.end();
  };
  if (is({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess",
          "UnauthorizedException"})) {
    return StatusCode::kPermissionDenied;
  }
  if (is({"ExpiredToken", "ExpiredTokenException", "RequestExpired", "InvalidClientTokenId",
          "UnrecognizedClientException", "AuthFailure", "SignatureDoesNotMatch",
          "InvalidAccessKeyId", "IncompleteSignature", "MissingAuthenticationToken",
          "NoCredentials", "Unauthorized"})) {
    return StatusCode::kUnauthenticated;
  }
  if (is({"OptInRequired", "RegionDisabledException", "DataUnavailableException"})) {
    return StatusCode::kFailedPrecondition;
  }
  if (is({"NoSuchEntity", "NoSuchResourceException", "ResourceNotFoundException",
          "TrailNotFoundException", "NotFound"})) {
    return StatusCode::kNotFound;
  }
  if (is({"ConnectionFailed"})) return StatusCode::kUnavailable;
  if (is({"Timeout"})) return StatusCode::kDeadlineExceeded;
  if (is({"InvalidParameterValue", "InvalidParameterCombination", "ValidationException",
          "ValidationError", "InvalidParameter", "InvalidInput"})) {
    return StatusCode::kInvalidArgument;
  }
  if (aws::IsRetryable(e)) return StatusCode::kResourceExhausted;
  if (is({"MalformedResponse"})) return StatusCode::kDataLoss;
  return StatusCode::kUnknown;
}

namespace aws {

namespace {

// "com.amazon.coral.service#ThrottlingException" -> "ThrottlingException";
// "AccessDeniedException:http://internal.amazon.com/" -> "AccessDeniedException".
std::string CleanCode(std::string code) {
  const size_t hash = code.rfind('#');
  if (hash != std::string::npos) code = code.substr(hash + 1);
  const size_t colon = code.find(':');
  if (colon != std::string::npos) code = code.substr(0, colon);
  return code;
}

std::string TextPreview(std::string_view body) {
  std::string out;
  bool tag = false;
  for (char c : body) {
    if (c == '<') tag = true;
    if (!tag) out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
    if (c == '>') tag = false;
    if (out.size() >= 200) break;
  }
  // Collapse runs of spaces.
  std::string collapsed;
  for (char c : out) {
    if (c == ' ' && (collapsed.empty() || collapsed.back() == ' ')) continue;
    collapsed += c;
  }
  while (!collapsed.empty() && collapsed.back() == ' ') collapsed.pop_back();
  return collapsed;
}

}  // namespace

CallError ParseAwsError(const HttpResponse& response) {
  CallError e;
  e.http_status = response.status;
  const std::string header_type = response.Header("x-amzn-ErrorType");
  const std::string& body = response.body;
  const size_t first = body.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && body[first] == '<') {
    pugi::xml_document doc;
    if (doc.load_buffer(body.data(), body.size())) {
      pugi::xpath_node code = doc.select_node("//Error/Code");
      if (code) {
        e.code = code.node().text().as_string();
        e.message = doc.select_node("//Error/Message").node().text().as_string();
      }
    }
  } else if (first != std::string::npos && body[first] == '{') {
    nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_object()) {
      for (const char* k : {"__type", "code", "Code"}) {
        if (auto it = j.find(k); it != j.end() && it->is_string()) {
          e.code = CleanCode(it->get<std::string>());
          break;
        }
      }
      for (const char* k : {"message", "Message", "errorMessage"}) {
        if (auto it = j.find(k); it != j.end() && it->is_string()) {
          e.message = it->get<std::string>();
          break;
        }
      }
    }
  }
  if (e.code.empty() && !header_type.empty()) e.code = CleanCode(header_type);
  if (e.code.empty()) {
    e.code = "HTTP" + std::to_string(response.status);
    e.message = TextPreview(body);
  }
  return e;
}

bool IsExpiredCredentials(std::string_view code) {
  return code == "ExpiredToken" || code == "ExpiredTokenException" || code == "RequestExpired";
}

bool IsRetryable(const CallError& e) {
  static constexpr std::string_view kCodes[] = {
      "Throttling",
      "ThrottlingException",
      "ThrottledException",
      "RequestThrottledException",
      "RequestThrottled",
      "TooManyRequestsException",
      "RequestLimitExceeded",
      "ProvisionedThroughputExceededException",
      "SlowDown",
      "PriorRequestNotComplete",
      "RequestTimeout",
      "RequestTimeoutException",
      "InternalError",
      "InternalFailure",
      "InternalServerError",
      "InternalServerException",
      "ServiceUnavailable",
      "ServiceUnavailableException",
      "EC2ThrottledException",
      "BandwidthLimitExceeded",
      "ConnectionFailed",
      "Timeout",
  };
  if (std::find(std::begin(kCodes), std::end(kCodes), e.code) != std::end(kCodes)) return true;
  return e.http_status == 429 || e.http_status == 500 || e.http_status == 502 ||
         e.http_status == 503 || e.http_status == 504;
}

std::string HintFor(std::string_view code, std::string_view api_call) {
  if (IsExpiredCredentials(code)) {
    return "the credentials expired: renew the console's base credentials (environment, "
           "~/.aws/credentials profile or instance role); the role is assumed again on the "
           "next call";
  }
  if (code == "InvalidClientTokenId" || code == "UnrecognizedClientException" ||
      code == "InvalidAccessKeyId") {
    return "AWS does not know this access key: check the console's base credentials (the key "
           "may have been deleted or deactivated)";
  }
  if (code == "AuthFailure") {
    return "AWS could not validate the credentials: check the base credentials; in an opt-in "
           "region AWS also answers this while the region is not enabled for the account";
  }
  if (code == "SignatureDoesNotMatch" || code == "IncompleteSignature") {
    return "the secret key does not match the access key, or this machine's clock is off: "
           "check the credentials and the clock";
  }
  if (code == "RequestTimeTooSkewed") return "this machine's clock is off: synchronise it (NTP)";
  if (code == "NoCredentials") {
    return "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile in ~/.aws/credentials "
           "(AWS_PROFILE), or run on an instance with an instance role";
  }
  if ((code == "AccessDenied" || code == "AccessDeniedException") && api_call == "sts:AssumeRole") {
    return "the role was not assumed: it may have been deleted, its trust policy may not name "
           "the console's principal, or the external id differs from the one given to "
           "`sextant accounts add`";
  }
  if (code == "AccessDenied" || code == "AccessDeniedException" ||
      code == "UnauthorizedOperation" || code == "UnauthorizedAccess" ||
      code == "UnauthorizedException") {
    return "the vendor role may not call " + std::string(api_call) +
           ": add it to the role's policy (docs/cloud-accounts.md has the minimal policy), or "
           "leave it out and the console goes without what it gives";
  }
  if (code == "OptInRequired") {
    return "the region is not enabled for the account: enable it in the account settings, or "
           "remove it from the account's regions";
  }
  if (code == "RegionDisabledException") {
    return "STS is not active in this region for the account: activate it (IAM account "
           "settings) or use another region";
  }
  if (code == "NoSuchEntity") {
    return "the role does not exist: it may have been deleted; recreate it from "
           "docs/cloud-accounts.md or update the account's role ARN";
  }
  if (code == "NoSuchResourceException") {
    return "the service has no such quota in this region";
  }
  if (code == "DataUnavailableException") {
    return "Cost Explorer has no data for the account yet: enable Cost Explorer in the billing "
           "console (data appears within 24 hours)";
  }
  if (code == "ConnectionFailed") {
    return "no connection to the endpoint: check the network path (proxy, VPC endpoint) or "
           "--endpoint-url";
  }
  if (code == "Timeout") return "the endpoint did not answer in time: retry later";
  return "";
}

}  // namespace aws
}  // namespace sextant::cloud
