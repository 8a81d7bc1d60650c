// EC2 calls the console makes (all reads): regions, GPU instance types and where they are
// offered, spot prices, instances, EBS encryption by default and security groups. Every list is
// read to its last page (at most 100 pages; a page token that repeats is an error).
// Thread-safety: free functions over a thread-safe AwsClient.
#pragma once

#include <string>
#include <vector>

#include "app/console/cloud/cloud_types.h"
#include "app/console/cloud/posture.h"
#include "connectors/cloud/aws/aws_client.h"

namespace sextant::cloud::aws {

using console::cloud::CloudInstance;
using console::cloud::GpuInstanceType;
using console::cloud::RegionInfo;
using console::cloud::SecurityGroupFact;

// ec2:DescribeRegions with AllRegions: every region and whether the account may use it.
CallResult<std::vector<RegionInfo>> DescribeRegions(AwsClient& client, const std::string& region);

// Whether an instance type belongs to one of EC2's accelerated-computing families (p, g, gr, dl,
// vt, f, inf, trn: the family is the letters before the generation digit). Every EC2 type with
// GPUs is in one of them; a family added later must be added here.
bool IsAcceleratedFamily(std::string_view instance_type);

// The instance types with GPUs that the region offers: ec2:DescribeInstanceTypeOfferings (by
// region), then ec2:DescribeInstanceTypes for the accelerated-computing ones, 100 at a time.
CallResult<std::vector<GpuInstanceType>> DescribeGpuInstanceTypes(AwsClient& client,
                                                                  const std::string& region);

struct TypeOffering {
  std::string instance_type;
  std::string zone;
};
// ec2:DescribeInstanceTypeOfferings by availability zone, for the given types (in chunks).
CallResult<std::vector<TypeOffering>> DescribeInstanceTypeOfferings(
    AwsClient& client, const std::string& region, const std::vector<std::string>& types);

struct SpotPrice {
  std::string instance_type;
  std::string zone;
  double usd_per_hour = 0;
  std::string timestamp;  // when AWS set this price (RFC 3339)
};
// ec2:DescribeSpotPriceHistory from now: the price in effect per type and zone (Linux/UNIX).
CallResult<std::vector<SpotPrice>> DescribeSpotPrices(AwsClient& client, const std::string& region,
                                                      const std::vector<std::string>& types);

// ec2:DescribeInstances of every state but terminated (gpu fields are left to the caller).
CallResult<std::vector<CloudInstance>> DescribeInstances(AwsClient& client,
                                                         const std::string& region);

// ec2:GetEbsEncryptionByDefault.
CallResult<bool> GetEbsEncryptionByDefault(AwsClient& client, const std::string& region);

// ec2:DescribeSecurityGroups of the given ids (every group when ids is empty).
CallResult<std::vector<SecurityGroupFact>> DescribeSecurityGroups(
    AwsClient& client, const std::string& region, const std::vector<std::string>& ids);

}  // namespace sextant::cloud::aws
