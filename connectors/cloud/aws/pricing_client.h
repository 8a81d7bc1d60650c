// The AWS Price List API: the on-demand list price of an instance type in a region
// (pricing:GetProducts, Linux, shared tenancy, no pre-installed software). The API answers
// from us-east-1; where it cannot be reached the console uses its price catalogs instead.
// Thread-safety: free functions over a thread-safe AwsClient.
#pragma once

#include <optional>
#include <string>

#include "app/console/cloud/cloud_types.h"
#include "connectors/cloud/aws/aws_client.h"

namespace sextant::cloud::aws {

// The hourly on-demand USD price in one PriceList entry (a JSON document as a string):
// terms.OnDemand.*.priceDimensions.* with unit "Hrs"; `effective_date` gets the term's
// effectiveDate. An error names what is missing.
Result<double> ParseOnDemandPrice(std::string_view price_list_entry, std::string* effective_date);

// nullopt when the API lists no such product.
CallResult<std::optional<console::cloud::DatedPrice>> GetOnDemandPrice(
    AwsClient& client, const std::string& region, const std::string& instance_type);

}  // namespace sextant::cloud::aws
