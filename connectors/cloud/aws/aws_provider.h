// AwsProvider: the CloudProvider of one AWS account, reached by assuming the vendor role
// (STS AssumeRole with the external id the customer set) with the console's base credentials.
//
// Offers come from DescribeInstanceTypes (GPU types), DescribeInstanceTypeOfferings (zones),
// DescribeSpotPriceHistory (spot), the Pricing API or the price catalogs (on-demand, the source
// named on each price), and Service Quotas with DescribeInstances (vCPU headroom of the
// family). A region the account has not enabled is reported as such (OptInRequired, from
// DescribeRegions) without calling it. Instance types are cached for a day and the region list
// for an hour, in memory; prices, quotas, instances and cost are read on every call (the
// console's store decides how often to ask).
//
// Thread-safety: all methods may be called from several threads at once.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "app/console/cloud/cloud_provider.h"
#include "app/console/cost/price_catalog.h"
#include "connectors/cloud/aws/aws_client.h"
#include "connectors/cloud/aws/credentials.h"

namespace sextant::cloud::aws {

struct AwsAccountConfig {
  std::string name;         // the console's name for the account
  std::string role_arn;     // the vendor role; empty: use the base credentials as they are
  std::string external_id;  // required by the role's trust policy
  std::vector<std::string> regions;
  std::string endpoint_url;  // every service at this URL (private endpoint, test server)
};

struct AwsProviderOptions {
  std::shared_ptr<HttpClient> http;                       // default: CurlHttpClient
  std::shared_ptr<CredentialsProvider> base_credentials;  // default: DefaultCredentialsChain
  std::shared_ptr<const console::PriceCatalog> catalog;   // on-demand prices without the API
  bool use_pricing_api = true;
  AwsClientOptions client;  // retries, clock, sleep (endpoint_url comes from the account)
  console::cloud::PostureOptions posture;
  std::string session_name = "sextant-console";
};

class AwsProvider final : public console::cloud::CloudProvider {
 public:
  AwsProvider(AwsAccountConfig account, AwsProviderOptions options);

  std::string_view provider() const override { return "aws"; }
  const std::string& account() const override { return account_.name; }

  Result<console::cloud::CallerIdentity> Identity() override;
  Result<std::vector<console::cloud::RegionInfo>> Regions() override;
  Result<console::cloud::AccessReport> CheckAccess() override;
  Result<console::cloud::RegionalResult<console::cloud::GpuOffer>> Offers(
      const console::cloud::OfferQuery& query) override;
  Result<console::cloud::RegionalResult<console::cloud::CloudInstance>> GpuInstances() override;
  Result<console::cloud::BilledCost> Billed(const console::cloud::CostWindow& window) override;
  Result<console::cloud::AccountPostureFacts> Posture() override;
  Result<console::cloud::RegionalResult<console::cloud::ManagedCluster>> Clusters() override;

  // The client that signs with the role's credentials (for tests and tools).
  AwsClient& client() { return *client_; }
  // How many times the role was assumed (0 without a role).
  int role_assumptions() const;

 private:
  // The role's credentials, or the error that makes the account unreachable.
  Status Reach();
  // OK, or OptInRequired / an unknown region. Regions() failing lets every region through.
  std::optional<CallError> RegionGate(const std::string& region);
  CallResult<std::vector<console::cloud::GpuInstanceType>> GpuTypes(const std::string& region);
  std::string HomeRegion() const;
  int64_t NowMs() const;

  const AwsAccountConfig account_;
  AwsProviderOptions options_;
  std::shared_ptr<AwsClient> base_client_;  // base credentials (signs AssumeRole)
  std::shared_ptr<AssumeRoleCredentials> role_credentials_;
  std::shared_ptr<AwsClient> client_;  // role credentials

  std::mutex cache_mu_;
  std::optional<std::vector<console::cloud::RegionInfo>> regions_;  // GUARDED_BY(cache_mu_)
  std::optional<CallError> regions_error_;                          // GUARDED_BY(cache_mu_)
  std::chrono::system_clock::time_point regions_at_;                // GUARDED_BY(cache_mu_)
  struct TypesEntry {
    std::vector<console::cloud::GpuInstanceType> types;
    std::chrono::system_clock::time_point at;
  };
  std::map<std::string, TypesEntry> types_;  // GUARDED_BY(cache_mu_), by region
};

}  // namespace sextant::cloud::aws
