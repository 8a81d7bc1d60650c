// What the console learns from a customer's cloud account through the vendor role: who it is
// there, the regions, GPU instance types and their offers, the running instances, the billed
// cost, the account's posture facts and its Kubernetes clusters. Plain values, provider-neutral;
// connectors/cloud fills them (AWS first), app/ and the front ends read them.
//
// Every figure carries when it was observed (`observed_at`) and where it came from (`source`:
// the API call, or the price catalog's file:line and date), so a front end can say how old a
// number is and never shows a stale one as fresh. A figure that could not be had is empty
// (std::nullopt), never 0, and the reason is in a note next to it.
//
// Thread-safety: values; distinct objects may be used from different threads freely.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace sextant::console::cloud {

// Milliseconds since the Unix epoch (the same unit as console::TimeMs of the console store).
using TimeMs = int64_t;

// One API call's failure, as every view and verb shows it: which call, where, the provider's
// error code and message, and a hint saying what to do about it.
struct CallError {
  std::string api_call;  // "ec2:DescribeInstances"
  std::string region;    // empty for global calls
  std::string code;      // the provider's error code ("AccessDenied", "ExpiredToken"), or
                         // a transport condition ("ConnectionFailed", "Timeout")
  std::string message;   // the provider's message
  std::string hint;      // what to do, in words; may be empty
  int http_status = 0;   // 0 when no HTTP answer came

  // "ec2:DescribeInstances (eu-west-1): AccessDenied: <message> (hint: <hint>)".
  std::string ToString() const;
};

// Who the console is in the account once it holds the vendor role's credentials.
struct CallerIdentity {
  std::string account_id;
  std::string arn;  // arn:aws:sts::123456789012:assumed-role/sextant-vendor/sextant-console
  std::string user_id;
};

struct RegionInfo {
  std::string name;           // "eu-west-1"
  std::string opt_in_status;  // "opt-in-not-required", "opted-in", "not-opted-in"
  bool enabled = false;       // the account may use it
};

// An instance type with accelerators, as the provider describes it.
struct GpuInstanceType {
  std::string instance_type;  // "p5.48xlarge"
  std::string gpu;            // the provider's GPU name: "H100", "A10G", "Radeon Pro V520"
  std::string gpu_vendor;     // "NVIDIA", "AMD", ...
  int gpu_count = 0;
  int64_t gpu_memory_mib = 0;  // per GPU
  int vcpus = 0;
  int64_t memory_mib = 0;
};

// A price with its origin and date. The date is when the price was set or published (a spot
// price's timestamp, a catalog's price_date), `observed_at` when the console read it.
struct DatedPrice {
  double usd_per_hour = 0;  // per instance
  std::string source;       // "ec2:DescribeSpotPriceHistory", "pricing:GetProducts",
                            // "resources/prices/aws.csv:4 (2024-06-01)"
  std::string as_of;        // RFC 3339 time or YYYY-MM-DD of the price itself
  TimeMs observed_at = 0;
};

// The account's quota for an instance family, in vCPUs (how AWS counts On-Demand and Spot
// instance quotas), and what running instances already use of it.
struct QuotaHeadroom {
  std::string quota_code;  // "L-417A185B"
  std::string quota_name;  // "Running On-Demand P instances"
  double limit_vcpus = 0;
  double used_vcpus = 0;  // vCPUs of running instances of the family in the region
  std::string source;     // "servicequotas:GetServiceQuota + ec2:DescribeInstances"
  TimeMs observed_at = 0;

  double FreeVcpus() const { return limit_vcpus > used_vcpus ? limit_vcpus - used_vcpus : 0; }
  // How many more instances of `vcpus` vCPUs fit; 0 when vcpus <= 0.
  int64_t Instances(int vcpus) const;
};

// One instance type offered in one zone of one region of one account.
struct GpuOffer {
  std::string provider;  // "aws"
  std::string account;   // the console's name for the account
  std::string region;
  std::string zone;
  GpuInstanceType type;
  std::optional<DatedPrice> on_demand;
  std::optional<DatedPrice> spot;
  std::optional<QuotaHeadroom> quota;
  std::vector<std::string> notes;  // why a price or the quota is missing

  // Price per GPU-hour of the on-demand / spot price; nullopt without that price or GPUs.
  std::optional<double> OnDemandPerGpuHour() const;
  std::optional<double> SpotPerGpuHour() const;
};

// A running (or stopped) instance in the account.
struct CloudInstance {
  std::string instance_id;  // "i-0123456789abcdef0"
  std::string instance_type;
  std::string region;
  std::string zone;
  std::string state;        // "pending", "running", "stopping", "stopped", ...
  std::string lifecycle;    // "on-demand", "spot", "capacity-block", "scheduled"
  std::string launch_time;  // RFC 3339
  std::string http_tokens;  // IMDS: "required" (IMDSv2 only) or "optional"
  std::vector<std::string> security_group_ids;
  std::map<std::string, std::string> tags;
  int gpu_count = 0;  // from the instance type; 0 for instances without GPUs
  std::string gpu;
  int vcpus = 0;
};

// Billed cost from the provider's billing API, per day and per value of a cost-allocation tag.
struct BilledCostLine {
  std::string day;        // YYYY-MM-DD (the period's start, UTC)
  std::string tag_value;  // the tag's value; empty for cost without the tag
  double amount = 0;
  std::string unit;        // "USD"
  bool estimated = false;  // the provider marks the day's figures as not final
};

struct BilledCost {
  std::string tag_key;  // "sextant.io/deployment"
  std::string metric;   // "UnblendedCost", "AmortizedCost", ...
  std::string start;    // YYYY-MM-DD, inclusive
  std::string end;      // YYYY-MM-DD, exclusive
  std::vector<BilledCostLine> lines;
  std::string source;  // "ce:GetCostAndUsage"
  TimeMs observed_at = 0;
};

// A managed Kubernetes cluster (EKS) and its node groups.
struct NodeGroup {
  std::string name;
  std::string status;
  std::vector<std::string> instance_types;
  std::string capacity_type;  // "ON_DEMAND", "SPOT", "CAPACITY_BLOCK"
  std::string ami_type;
  int desired_size = 0;
  int min_size = 0;
  int max_size = 0;
  std::string gpu;  // from the first instance type's description; empty without GPUs
  int gpus_per_node = 0;
};

struct ManagedCluster {
  std::string name;
  std::string arn;
  std::string region;
  std::string status;   // "ACTIVE", "CREATING", ...
  std::string version;  // Kubernetes version
  std::string endpoint;
  std::vector<NodeGroup> node_groups;
  std::vector<CallError> errors;  // node groups that could not be read
  TimeMs observed_at = 0;
};

// A Kubernetes node with accelerators, read through the cluster's API server.
struct KubeGpuResource {
  std::string resource;  // "nvidia.com/gpu", "amd.com/gpu"
  int64_t capacity = 0;
  int64_t allocatable = 0;
};

struct KubeNode {
  std::string name;
  std::string instance_type;  // node.kubernetes.io/instance-type
  std::string zone;           // topology.kubernetes.io/zone
  std::string region;         // topology.kubernetes.io/region
  std::string gpu_product;    // nvidia.com/gpu.product, when the GPU feature discovery set it
  bool ready = false;
  bool unschedulable = false;
  std::vector<KubeGpuResource> gpus;  // only accelerator resources with capacity > 0
};

struct KubePod {
  std::string ns;
  std::string name;
  std::string node;
  std::string phase;  // "Pending", "Running", "Succeeded", "Failed", "Unknown"
  bool ready = false;
  int restarts = 0;
  std::string reason;  // a container's waiting/terminated reason, when not ready
};

struct KubeClusterState {
  std::string context;              // the kubeconfig context used
  std::string server;               // the API server's URL
  std::string version;              // gitVersion from /version, when readable
  std::vector<KubeNode> nodes;      // every node; GPU nodes have non-empty gpus
  std::vector<KubePod> agent_pods;  // pods of the Sextant agent
  TimeMs observed_at = 0;
};

}  // namespace sextant::console::cloud
