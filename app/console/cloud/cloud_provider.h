// CloudProvider: the console's port to one customer cloud account, reached through the vendor
// role the customer granted. AWS implements it first (connectors/cloud/aws); GCP and Azure
// implement the same calls. The console, its views and its verbs know only this interface.
//
// Results that span regions are RegionalResult: what the regions that answered said, and one
// CallError per call that failed (a region not enabled, access denied, throttled past the
// retries). A failure that leaves nothing to say about the account (the role cannot be
// assumed, the credentials expired) is an error Status whose message is the CallError's text,
// with the provider's error code and a hint.
//
// Thread-safety: implementations are safe to call from several threads at once (each call
// makes its own requests; credentials are refreshed under a lock).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "app/console/cloud/cloud_types.h"
#include "app/console/cloud/iam_policy.h"
#include "app/console/cloud/posture.h"
#include "engine/base/status.h"

namespace sextant::console::cloud {

template <typename T>
struct RegionalResult {
  std::vector<T> items;
  std::vector<CallError> errors;              // empty when every region answered every call
  std::vector<std::string> regions_answered;  // regions whose items are complete
  TimeMs observed_at = 0;
};

// How a probe went: the role may make the call (it answered, or said the made-up resource it
// was asked about does not exist); it may not (access denied, the credentials refused, the
// region not enabled); or the call failed for another reason, which says nothing about the
// permission (the service erred, kept throttling, or could not be reached).
enum class ProbeOutcome { kAllowed, kDenied, kFailed };
std::string_view ProbeOutcomeName(ProbeOutcome o);

// One call the console makes with the role, tried once, and how it went.
struct ApiProbe {
  std::string api_call;  // "ec2:DescribeInstances"
  std::string region;    // empty for global calls
  std::string used_for;  // from RequiredActions()
  ProbeOutcome outcome = ProbeOutcome::kFailed;
  std::optional<CallError> error;  // set unless allowed
};

struct AccessReport {
  std::string account;
  CallerIdentity identity;
  std::vector<ApiProbe> probes;     // every required call, per region where regional
  std::vector<ExcessGrant> excess;  // what the role may do beyond what the console needs
  std::vector<std::string> notes;   // e.g. a policy document that did not parse
  TimeMs observed_at = 0;

  bool AllAllowed() const;
};

struct OfferQuery {
  std::string gpu;     // GPU name to match ("H100"), case-insensitive; empty: any
  int min_gpus = 0;    // GPUs per instance, at least
  std::string region;  // one region; empty: the account's regions
  enum class SortBy { kOnDemand, kSpot } sort_by = SortBy::kOnDemand;
};

// A cost window: [start, end) in YYYY-MM-DD, and the cost-allocation tag to group by.
struct CostWindow {
  std::string start;
  std::string end;
  std::string tag_key = "sextant.io/deployment";
};

class CloudProvider {
 public:
  virtual ~CloudProvider() = default;

  virtual std::string_view provider() const = 0;   // "aws"
  virtual const std::string& account() const = 0;  // the console's name for the account

  // Who the console is in the account (assumes the role when it must).
  virtual Result<CallerIdentity> Identity() = 0;
  // Every region the provider has, with whether the account may use it.
  virtual Result<std::vector<RegionInfo>> Regions() = 0;
  // Tries every call of RequiredActions() once and reads the role's own policies.
  virtual Result<AccessReport> CheckAccess() = 0;
  // Instance types with GPUs offered in the account's regions, with their prices and quota
  // headroom, filtered and sorted as the query says.
  virtual Result<RegionalResult<GpuOffer>> Offers(const OfferQuery& query) = 0;
  // Instances with GPUs in the account's regions (every state but terminated).
  virtual Result<RegionalResult<CloudInstance>> GpuInstances() = 0;
  // Billed cost per day and tag value; each call may be charged by the provider.
  virtual Result<BilledCost> Billed(const CostWindow& window) = 0;
  // The facts the posture rules read (posture.h).
  virtual Result<AccountPostureFacts> Posture() = 0;
  // Managed Kubernetes clusters in the account's regions, with their node groups.
  virtual Result<RegionalResult<ManagedCluster>> Clusters() = 0;
};

// Offers matching the query, sorted by price per GPU-hour (the query's price; offers without
// it after those with it, by the other price; then by region, zone and instance type).
std::vector<GpuOffer> FilterAndSortOffers(std::vector<GpuOffer> offers, const OfferQuery& query);

// Whether a provider's GPU name is the one asked for: case-insensitive equality, ignoring
// spaces and dashes ("h100" == "H100", "radeon pro v520" == "Radeon Pro V520").
bool GpuNameMatches(std::string_view provider_name, std::string_view wanted);

}  // namespace sextant::console::cloud
