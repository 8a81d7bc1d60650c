// AWS error answers, read the way each protocol writes them, with a hint for the ones an
// operator can act on, and whether the call is worth retrying.
//   query protocol (EC2):      <Response><Errors><Error><Code/><Message/></Error></Errors>
//   query protocol (STS, IAM): <ErrorResponse><Error><Code/><Message/></Error></ErrorResponse>
//   JSON protocols:            {"__type": "prefix#Code", "message"|"Message": ...}, or the
//                              x-amzn-ErrorType header ("Code:http://...")
// An answer in none of these shapes (an HTML page from a proxy, an empty body) gives the code
// "HTTP<status>" and the start of the body, with tags removed, as the message.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "app/console/cloud/cloud_types.h"
#include "connectors/cloud/http_client.h"

namespace sextant::cloud::aws {

using console::cloud::CallError;

// Code and message of an error answer; api_call, region and hint are the caller's.
CallError ParseAwsError(const HttpResponse& response);

// What to do about an error, in words; "" when there is nothing specific to say.
std::string HintFor(std::string_view code, std::string_view api_call);

// Throttling, 5xx, request timeouts and transport failures: worth another try.
bool IsRetryable(const CallError& e);

// The credentials themselves expired (the console re-assumes the role and tries once more).
bool IsExpiredCredentials(std::string_view code);

}  // namespace sextant::cloud::aws
