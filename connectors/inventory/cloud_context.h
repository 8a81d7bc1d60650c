// CloudContextProbe: where the agent runs (provider, account, region, zone, instance type, spot
// or on-demand). An override from the agent's config wins; otherwise, unless disabled, the
// instance metadata services are asked once, all three at the same time, each with a short
// timeout (default 300 ms):
//   - AWS IMDSv2: PUT /latest/api/token (X-aws-ec2-metadata-token-ttl-seconds), then with the
//     token GET /latest/dynamic/instance-identity/document (accountId, region,
//     availabilityZone, instanceType, instanceId) and /latest/meta-data/instance-life-cycle
//     (spot);
//   - GCP: GET /computeMetadata/v1/{project/project-id, instance/id, instance/zone,
//     instance/machine-type, instance/scheduling/preemptible,
//     instance/scheduling/provisioning-model} with Metadata-Flavor: Google;
//   - Azure: GET /metadata/instance?api-version=2021-02-01 with Metadata: true (compute.
//     subscriptionId, location, zone, vmSize, vmId, priority).
// The first that answers with a well-formed document wins (AWS, then GCP, then Azure when
// several do); when none answers the context is "on-prem". A malformed answer is treated as no
// answer (and noted); an account or instance id without its provider's shape
// (app/common/cloud_identity.h) is left out of an otherwise good answer, and noted. The result
// is resolved once and cached.
//
// Tests point the endpoints at a local server on 127.0.0.1, or disable the lookups.
//
// Thread-safety: Context() is safe from any thread; the first call resolves (blocking up to the
// timeout), later calls return the cached value.
#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <string>

#include "app/agent/state/sources.h"

namespace sextant::inventory {

struct CloudContextOptions {
  std::optional<agent::CloudContextInfo> override_context;  // from the config: used as is
  bool metadata_lookups = true;                             // false: never touch the network
  std::chrono::milliseconds timeout{300};                   // per metadata request
  // Base URLs ("http://host:port"); the link-local address serves all three in the clouds.
  std::string aws_endpoint = "http://169.254.169.254";
  std::string gcp_endpoint = "http://169.254.169.254";
  std::string azure_endpoint = "http://169.254.169.254";
};

class CloudContextProbe : public agent::CloudContextSource {
 public:
  explicit CloudContextProbe(CloudContextOptions options) : options_(std::move(options)) {}
  agent::CloudContextInfo Context() override;
  // How the context was found, or why each service gave nothing (no payloads, just outcomes).
  std::string note() const;

 private:
  const CloudContextOptions options_;
  mutable std::mutex mu_;
  std::optional<agent::CloudContextInfo> cached_;  // GUARDED_BY(mu_)
  std::string note_;                               // GUARDED_BY(mu_)
};

}  // namespace sextant::inventory
