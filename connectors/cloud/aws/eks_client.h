// EKS: the clusters of a region and their node groups (eks:ListClusters, eks:DescribeCluster,
// eks:ListNodegroups, eks:DescribeNodegroup).
// Thread-safety: free functions over a thread-safe AwsClient.
#pragma once

#include <string>
#include <vector>

#include "app/console/cloud/cloud_types.h"
#include "connectors/cloud/aws/aws_client.h"

namespace sextant::cloud::aws {

CallResult<std::vector<std::string>> EksListClusters(AwsClient& client, const std::string& region);

// The cluster and each of its node groups (gpu fields are left to the caller). A node group
// that cannot be described is left out and its error kept in the cluster's errors.
CallResult<console::cloud::ManagedCluster> EksDescribeCluster(AwsClient& client,
                                                              const std::string& region,
                                                              const std::string& name);

}  // namespace sextant::cloud::aws
