// CloudTrail: the trails a region sees and whether each is logging (cloudtrail:DescribeTrails,
// cloudtrail:GetTrailStatus).
// Thread-safety: free function over a thread-safe AwsClient.
#pragma once

#include <string>
#include <vector>

#include "app/console/cloud/posture.h"
#include "connectors/cloud/aws/aws_client.h"

namespace sextant::cloud::aws {

// The trails of `region` (including multi-region trails homed elsewhere). A trail whose status
// cannot be read keeps logging = nullopt and its error is appended to `status_errors`.
CallResult<std::vector<console::cloud::TrailFact>> DescribeTrailsWithStatus(
    AwsClient& client, const std::string& region, std::vector<CallError>* status_errors);

}  // namespace sextant::cloud::aws
