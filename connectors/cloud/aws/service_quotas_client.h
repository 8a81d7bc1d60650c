// Service Quotas: the account's vCPU quota for an EC2 instance family (servicequotas:
// GetServiceQuota), and which quota covers which GPU family.
// Thread-safety: free functions over a thread-safe AwsClient.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "connectors/cloud/aws/aws_client.h"

namespace sextant::cloud::aws {

struct Ec2QuotaCode {
  std::string_view code;  // "L-417A185B"
  std::string_view name;  // "Running On-Demand P instances"
};

// The quota that counts vCPUs of running instances of `instance_type`'s family, for on-demand
// or spot capacity; nullopt for families without a GPU quota the console knows (P: p*, G and
// VT: g*, vt*).
std::optional<Ec2QuotaCode> QuotaForInstanceType(std::string_view instance_type, bool spot);

struct ServiceQuota {
  std::string code;
  std::string name;
  double value = 0;
};

// servicequotas:GetServiceQuota for service "ec2".
CallResult<ServiceQuota> GetEc2ServiceQuota(AwsClient& client, const std::string& region,
                                            std::string_view quota_code);

}  // namespace sextant::cloud::aws
