// STS: AssumeRole (the vendor role, with its external id) and GetCallerIdentity.
// Thread-safety: free functions over a thread-safe AwsClient.
#pragma once

#include "app/console/cloud/cloud_types.h"
#include "connectors/cloud/aws/aws_client.h"
#include "connectors/cloud/aws/credentials.h"

namespace sextant::cloud::aws {

struct AssumedRole {
  Credentials credentials;  // with expiration
  std::string assumed_role_arn;
};

// sts:AssumeRole at options.sts_region, signed by `sts`'s credentials.
CallResult<AssumedRole> StsAssumeRole(AwsClient& sts, const AssumeRoleOptions& options);

// sts:GetCallerIdentity: who the client's credentials are.
CallResult<console::cloud::CallerIdentity> StsGetCallerIdentity(AwsClient& client,
                                                                const std::string& region);

}  // namespace sextant::cloud::aws
