// Cost Explorer: billed cost per day grouped by a cost-allocation tag (ce:GetCostAndUsage).
// AWS charges for each request; callers cache the answer (the console refreshes it at most
// hourly).
// Thread-safety: free function over a thread-safe AwsClient.
#pragma once

#include <string>

#include "app/console/cloud/cloud_types.h"
#include "connectors/cloud/aws/aws_client.h"

namespace sextant::cloud::aws {

// Every page of GetCostAndUsage for [start, end) (YYYY-MM-DD), DAILY, metric `metric`, grouped
// by TAG `tag_key`. A group key "tag$value" gives the tag's value ("" for untagged cost).
CallResult<console::cloud::BilledCost> GetCostAndUsage(AwsClient& client, const std::string& start,
                                                       const std::string& end,
                                                       const std::string& tag_key,
                                                       const std::string& metric = "UnblendedCost");

}  // namespace sextant::cloud::aws
