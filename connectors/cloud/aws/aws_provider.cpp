#include "connectors/cloud/aws/aws_provider.h"
#include "connectors/cloud/json_fields.h"

#include <algorithm>
#include <functional>
#include <set>

#include "connectors/cloud/aws/aws_error.h"
#include "connectors/cloud/aws/cloudtrail_client.h"
#include "connectors/cloud/aws/cost_explorer_client.h"
#include "connectors/cloud/aws/ec2_client.h"
#include "connectors/cloud/aws/eks_client.h"
#include "connectors/cloud/aws/iam_client.h"
#include "connectors/cloud/aws/pricing_client.h"
#include "connectors/cloud/aws/service_quotas_client.h"
#include "connectors/cloud/aws/sts_client.h"
#include "connectors/cloud/time_format.h"

namespace sextant::cloud::aws {

namespace cc = console::cloud;

namespace {

constexpr auto kRegionsTtl = std::chrono::hours(1);
constexpr auto kRegionsErrorTtl = std::chrono::minutes(1);  // a failed listing is not retried
                                                            // by every call of one operation
constexpr auto kTypesTtl = std::chrono::hours(24);

bool IsDate(const std::string& s) {
  auto t = ParseRfc3339(s + "T00:00:00Z");
  return s.size() == 10 && t.ok();
}

// A probe's call failing for want of the resource (a name the probe made up) still proves the
// role may make the call; access denied, refused credentials and a region not enabled prove it
// may not; anything else proves nothing.
cc::ProbeOutcome OutcomeOf(const CallError& e) {
  const StatusCode c = StatusCodeFor(e);
  if (c == StatusCode::kNotFound || c == StatusCode::kInvalidArgument) {
    return cc::ProbeOutcome::kAllowed;
  }
  if (c == StatusCode::kPermissionDenied || c == StatusCode::kUnauthenticated ||
      e.code == "OptInRequired") {
    return cc::ProbeOutcome::kDenied;
  }
  return cc::ProbeOutcome::kFailed;
}

}  // namespace

AwsProvider::AwsProvider(AwsAccountConfig account, AwsProviderOptions options)
    : account_(std::move(account)), options_(std::move(options)) {
  if (!options_.http) options_.http = std::make_shared<CurlHttpClient>();
  if (!options_.base_credentials) {
    CredentialsChainOptions chain;
    chain.http = options_.http;
    chain.clock = options_.client.now;
    options_.base_credentials = std::make_shared<DefaultCredentialsChain>(std::move(chain));
  }
  AwsClientOptions co = options_.client;
  co.endpoint_url = account_.endpoint_url;
  base_client_ = std::make_shared<AwsClient>(options_.http, options_.base_credentials, co);
  if (account_.role_arn.empty()) {
    client_ = base_client_;
    return;
  }
  AssumeRoleOptions ro;
  ro.role_arn = account_.role_arn;
  ro.external_id = account_.external_id;
  ro.session_name = options_.session_name;
  ro.sts_region = HomeRegion();
  role_credentials_ = std::make_shared<AssumeRoleCredentials>(base_client_, ro);
  client_ = std::make_shared<AwsClient>(options_.http, role_credentials_, co);
}

std::string AwsProvider::HomeRegion() const {
  return account_.regions.empty() ? std::string("us-east-1") : account_.regions.front();
}

int64_t AwsProvider::NowMs() const { return ToUnixMs(client_->Now()); }

int AwsProvider::role_assumptions() const {
  return role_credentials_ ? role_credentials_->assumptions() : 0;
}

Status AwsProvider::Reach() {
  auto c = role_credentials_ ? role_credentials_->Get() : options_.base_credentials->Get();
  if (!c.ok()) return ToStatus(c.error()).WithContext("account " + account_.name);
  return Status::Ok();
}

Result<cc::CallerIdentity> AwsProvider::Identity() {
  SEXTANT_RETURN_IF_ERROR(Reach());
  auto id = StsGetCallerIdentity(*client_, HomeRegion());
  if (!id.ok()) return ToStatus(id.error()).WithContext("account " + account_.name);
  return *id;
}

Result<std::vector<cc::RegionInfo>> AwsProvider::Regions() {
  SEXTANT_RETURN_IF_ERROR(Reach());
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (regions_ && client_->Now() - regions_at_ < kRegionsTtl) return *regions_;
    if (regions_error_ && client_->Now() - regions_at_ < kRegionsErrorTtl) {
      return ToStatus(*regions_error_).WithContext("account " + account_.name);
    }
  }
  auto r = DescribeRegions(*client_, HomeRegion());
  if (!r.ok()) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    regions_error_ = r.error();
    regions_at_ = client_->Now();
    return ToStatus(r.error()).WithContext("account " + account_.name);
  }
  std::lock_guard<std::mutex> lock(cache_mu_);
  regions_ = *r;
  regions_error_.reset();
  regions_at_ = client_->Now();
  return *r;
}

std::optional<CallError> AwsProvider::RegionGate(const std::string& region) {
  auto regions = Regions();
  if (!regions.ok()) return std::nullopt;  // no list to judge by: let the calls say
  for (const auto& r : *regions) {
    if (r.name != region) continue;
    if (r.enabled) return std::nullopt;
    CallError e;
    e.api_call = "ec2:DescribeRegions";
    e.region = region;
    e.code = "OptInRequired";
    e.message = "the region is not enabled for the account (OptInStatus " + r.opt_in_status + ")";
    e.hint = HintFor(e.code, e.api_call);
    return e;
  }
  CallError e;
  e.api_call = "ec2:DescribeRegions";
  e.region = region;
  e.code = "UnknownRegion";
  e.message = "the account lists no region " + region;
  e.hint = "check the region's name in the account's regions";
  return e;
}

CallResult<std::vector<cc::GpuInstanceType>> AwsProvider::GpuTypes(const std::string& region) {
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = types_.find(region);
    if (it != types_.end() && client_->Now() - it->second.at < kTypesTtl) return it->second.types;
  }
  auto t = DescribeGpuInstanceTypes(*client_, region);
  if (!t.ok()) return t.error();
  std::lock_guard<std::mutex> lock(cache_mu_);
  types_[region] = {*t, client_->Now()};
  return *t;
}

Result<cc::RegionalResult<cc::GpuOffer>> AwsProvider::Offers(const cc::OfferQuery& query) {
  SEXTANT_RETURN_IF_ERROR(Reach());
  cc::RegionalResult<cc::GpuOffer> out;
  out.observed_at = NowMs();
  const std::vector<std::string> regions =
      query.region.empty() ? account_.regions : std::vector<std::string>{query.region};
  bool pricing_usable = options_.use_pricing_api;
  std::string pricing_note;
  std::vector<cc::GpuOffer> offers;

  for (const std::string& region : regions) {
    if (auto gate = RegionGate(region)) {
      out.errors.push_back(*gate);
      continue;
    }
    auto all_types = GpuTypes(region);
    if (!all_types.ok()) {
      out.errors.push_back(all_types.error());
      continue;
    }
    std::map<std::string, cc::GpuInstanceType> types;
    std::map<std::string, int> vcpus_of;  // every GPU type, for quota use
    for (const auto& t : *all_types) {
      vcpus_of[t.instance_type] = t.vcpus;
      if (!query.gpu.empty() && !cc::GpuNameMatches(t.gpu, query.gpu)) continue;
      if (t.gpu_count < query.min_gpus) continue;
      types[t.instance_type] = t;
    }
    if (types.empty()) {
      out.regions_answered.push_back(region);
      continue;
    }
    std::vector<std::string> names;
    for (const auto& [n, t] : types) names.push_back(n);
    auto offerings = DescribeInstanceTypeOfferings(*client_, region, names);
    if (!offerings.ok()) {
      out.errors.push_back(offerings.error());
      continue;
    }
    std::set<std::string> offered_set;
    for (const auto& o : *offerings) offered_set.insert(o.instance_type);
    const std::vector<std::string> offered(offered_set.begin(), offered_set.end());

    // Spot prices per (type, zone).
    std::map<std::pair<std::string, std::string>, SpotPrice> spot;
    std::string spot_note;
    auto spots = DescribeSpotPrices(*client_, region, offered);
    if (spots.ok()) {
      for (const auto& p : *spots) spot[{p.instance_type, p.zone}] = p;
    } else {
      out.errors.push_back(spots.error());
      spot_note = "spot price unavailable: " + spots.error().ToString();
    }

    // Quota use: vCPUs of running instances per quota code.
    std::map<std::string, double> used_vcpus;
    std::string quota_note;
    auto instances = DescribeInstances(*client_, region);
    if (instances.ok()) {
      for (const auto& i : *instances) {
        if (i.state != "running" && i.state != "pending") continue;
        auto code = QuotaForInstanceType(i.instance_type, i.lifecycle == "spot");
        if (!code) continue;
        int v = i.vcpus;
        if (v <= 0) {
          auto it = vcpus_of.find(i.instance_type);
          v = it == vcpus_of.end() ? 0 : it->second;
        }
        used_vcpus[std::string(code->code)] += v;
      }
    } else {
      out.errors.push_back(instances.error());
      quota_note = "quota headroom unknown: " + instances.error().ToString();
    }
    std::map<std::string, CallResult<ServiceQuota>> quotas;

    for (const std::string& type_name : offered) {
      const cc::GpuInstanceType& type = types[type_name];
      // On-demand: the Pricing API where it answers, the catalogs otherwise.
      std::optional<cc::DatedPrice> on_demand;
      std::vector<std::string> notes;
      if (pricing_usable) {
        auto p = GetOnDemandPrice(*client_, region, type_name);
        if (p.ok()) {
          on_demand = *p;
          if (!on_demand) notes.push_back("pricing:GetProducts lists no on-demand price");
        } else {
          pricing_usable = false;  // one failure is enough: the catalogs for the rest
          out.errors.push_back(p.error());
          pricing_note = "Pricing API unavailable (" + p.error().code + ")";
        }
      }
      if (!on_demand && options_.catalog) {
        for (const auto& row : options_.catalog->rows()) {
          if (row.provider != "aws" || row.region != region || row.instance_type != type_name) {
            continue;
          }
          auto rate = options_.catalog->Rate(
              {"aws", region, type_name, row.gpu_model, console::PricingModel::kOnDemand});
          if (rate.ok()) {
            on_demand = cc::DatedPrice{rate->usd_per_gpu_hour * row.gpus_per_instance, rate->origin,
                                       row.price_date, out.observed_at};
          }
          break;
        }
      }
      if (!on_demand) {
        notes.push_back("on-demand price unknown: " +
                        (pricing_note.empty() ? std::string() : pricing_note + "; ") +
                        "no price catalog row for aws/" + region + "/" + type_name);
      }

      std::optional<cc::QuotaHeadroom> headroom;
      if (auto code = QuotaForInstanceType(type_name, /*spot=*/false)) {
        const std::string key(code->code);
        auto it = quotas.find(key);
        if (it == quotas.end()) {
          it = quotas.emplace(key, GetEc2ServiceQuota(*client_, region, key)).first;
          if (!it->second.ok()) out.errors.push_back(it->second.error());
        }
        if (!it->second.ok()) {
          notes.push_back("quota headroom unknown: " + it->second.error().ToString());
        } else if (!quota_note.empty()) {
          notes.push_back(quota_note);
        } else {
          cc::QuotaHeadroom q;
          q.quota_code = key;
          q.quota_name = it->second->name.empty() ? std::string(code->name) : it->second->name;
          q.limit_vcpus = it->second->value;
          q.used_vcpus = used_vcpus[key];
          q.source = "servicequotas:GetServiceQuota, ec2:DescribeInstances";
          q.observed_at = out.observed_at;
          headroom = q;
        }
      } else {
        notes.push_back("no vCPU quota known for the " + type_name + " family");
      }

      for (const auto& o : *offerings) {
        if (o.instance_type != type_name) continue;
        cc::GpuOffer offer;
        offer.provider = "aws";
        offer.account = account_.name;
        offer.region = region;
        offer.zone = o.zone;
        offer.type = type;
        offer.on_demand = on_demand;
        offer.quota = headroom;
        offer.notes = notes;
        auto s = spot.find({type_name, o.zone});
        if (s != spot.end()) {
          offer.spot = cc::DatedPrice{s->second.usd_per_hour, "ec2:DescribeSpotPriceHistory",
                                      s->second.timestamp, out.observed_at};
        } else {
          offer.notes.push_back(spot_note.empty() ? "no spot price listed for this zone"
                                                  : spot_note);
        }
        offers.push_back(std::move(offer));
      }
    }
    out.regions_answered.push_back(region);
  }
  out.items = cc::FilterAndSortOffers(std::move(offers), query);
  return out;
}

Result<cc::RegionalResult<cc::CloudInstance>> AwsProvider::GpuInstances() {
  SEXTANT_RETURN_IF_ERROR(Reach());
  cc::RegionalResult<cc::CloudInstance> out;
  out.observed_at = NowMs();
  for (const std::string& region : account_.regions) {
    if (auto gate = RegionGate(region)) {
      out.errors.push_back(*gate);
      continue;
    }
    auto types = GpuTypes(region);
    if (!types.ok()) {
      out.errors.push_back(types.error());
      continue;
    }
    auto instances = DescribeInstances(*client_, region);
    if (!instances.ok()) {
      out.errors.push_back(instances.error());
      continue;
    }
    std::map<std::string, const cc::GpuInstanceType*> by_name;
    for (const auto& t : *types) by_name[t.instance_type] = &t;
    for (auto& i : *instances) {
      auto it = by_name.find(i.instance_type);
      if (it == by_name.end()) continue;
      i.gpu = it->second->gpu;
      i.gpu_count = it->second->gpu_count;
      if (i.vcpus <= 0) i.vcpus = it->second->vcpus;
      out.items.push_back(std::move(i));
    }
    out.regions_answered.push_back(region);
  }
  return out;
}

Result<cc::BilledCost> AwsProvider::Billed(const cc::CostWindow& window) {
  if (!IsDate(window.start) || !IsDate(window.end) || window.start >= window.end) {
    return Status::InvalidArgument("cost window: start and end must be YYYY-MM-DD, start < end (" +
                                   window.start + " .. " + window.end + ")");
  }
  if (window.tag_key.empty()) return Status::InvalidArgument("cost window: empty tag key");
  SEXTANT_RETURN_IF_ERROR(Reach());
  auto cost = GetCostAndUsage(*client_, window.start, window.end, window.tag_key);
  if (!cost.ok()) return ToStatus(cost.error()).WithContext("account " + account_.name);
  return *cost;
}

Result<cc::AccountPostureFacts> AwsProvider::Posture() {
  SEXTANT_RETURN_IF_ERROR(Reach());
  cc::AccountPostureFacts facts;
  facts.account = account_.name;
  facts.account_id = AccountFromArn(account_.role_arn);
  facts.external_id = account_.external_id;
  facts.observed_at = NowMs();
  for (const std::string& region : account_.regions) {
    cc::RegionPostureFacts r;
    r.region = region;
    if (auto gate = RegionGate(region)) {
      r.errors.push_back(*gate);
      facts.regions.push_back(std::move(r));
      continue;
    }
    std::vector<CallError> status_errors;
    auto trails = DescribeTrailsWithStatus(*client_, region, &status_errors);
    if (trails.ok()) {
      r.trails = *trails;
    } else {
      r.errors.push_back(trails.error());
    }
    r.errors.insert(r.errors.end(), status_errors.begin(), status_errors.end());
    auto ebs = GetEbsEncryptionByDefault(*client_, region);
    if (ebs.ok()) {
      r.ebs_encryption_by_default = *ebs;
    } else {
      r.errors.push_back(ebs.error());
    }
    auto types = GpuTypes(region);
    auto instances = DescribeInstances(*client_, region);
    if (types.ok() && instances.ok()) {
      std::set<std::string> gpu_types;
      for (const auto& t : *types) gpu_types.insert(t.instance_type);
      std::vector<cc::CloudInstance> gpu;
      std::set<std::string> groups;
      for (const auto& i : *instances) {
        if (gpu_types.count(i.instance_type) == 0) continue;
        gpu.push_back(i);
        groups.insert(i.security_group_ids.begin(), i.security_group_ids.end());
      }
      r.gpu_instances = gpu;
      if (groups.empty()) {
        r.security_groups = std::vector<cc::SecurityGroupFact>{};
      } else {
        auto sgs = DescribeSecurityGroups(*client_, region, {groups.begin(), groups.end()});
        if (sgs.ok()) {
          r.security_groups = *sgs;
        } else {
          r.errors.push_back(sgs.error());
        }
      }
    } else {
      const CallError& e = types.ok() ? instances.error() : types.error();
      r.errors.push_back(e);
      CallError sg = e;
      sg.api_call = "ec2:DescribeSecurityGroups";
      sg.message = "not read: the GPU instances could not be listed (" + e.message + ")";
      r.errors.push_back(sg);
    }
    facts.regions.push_back(std::move(r));
  }

  facts.role.role_arn = account_.role_arn;
  const std::string role_name = RoleNameFromArn(account_.role_arn);
  if (role_name.empty()) {
    CallError e;
    e.api_call = "iam:GetRole";
    e.code = "NoRole";
    e.message = "the account has no vendor role ARN";
    facts.role.errors.push_back(e);
    return facts;
  }
  auto role = IamGetRole(*client_, role_name);
  if (role.ok()) {
    facts.role.trust_policy_json = role->trust_policy_json;
  } else {
    facts.role.errors.push_back(role.error());
  }
  auto policies = IamRolePolicies(*client_, role_name, &facts.role.errors);
  if (policies.ok()) {
    facts.role.policies = *policies;
  } else {
    facts.role.errors.push_back(policies.error());
  }
  return facts;
}

Result<cc::RegionalResult<cc::ManagedCluster>> AwsProvider::Clusters() {
  SEXTANT_RETURN_IF_ERROR(Reach());
  cc::RegionalResult<cc::ManagedCluster> out;
  out.observed_at = NowMs();
  for (const std::string& region : account_.regions) {
    if (auto gate = RegionGate(region)) {
      out.errors.push_back(*gate);
      continue;
    }
    auto names = EksListClusters(*client_, region);
    if (!names.ok()) {
      out.errors.push_back(names.error());
      continue;
    }
    auto types = GpuTypes(region);
    std::map<std::string, cc::GpuInstanceType> gpu;
    if (types.ok()) {
      for (const auto& t : *types) gpu[t.instance_type] = t;
    } else {
      out.errors.push_back(types.error());
    }
    bool complete = true;
    for (const auto& name : *names) {
      auto c = EksDescribeCluster(*client_, region, name);
      if (!c.ok()) {
        out.errors.push_back(c.error());
        complete = false;
        continue;
      }
      for (auto& ng : c->node_groups) {
        for (const auto& it : ng.instance_types) {
          auto g = gpu.find(it);
          if (g == gpu.end()) continue;
          ng.gpu = g->second.gpu;
          ng.gpus_per_node = g->second.gpu_count;
          break;
        }
      }
      out.errors.insert(out.errors.end(), c->errors.begin(), c->errors.end());
      out.items.push_back(std::move(*c));
    }
    if (complete) out.regions_answered.push_back(region);
  }
  return out;
}

Result<cc::AccessReport> AwsProvider::CheckAccess() {
  SEXTANT_RETURN_IF_ERROR(Reach());
  cc::AccessReport report;
  report.account = account_.name;
  report.observed_at = NowMs();
  auto id = StsGetCallerIdentity(*client_, HomeRegion());
  if (!id.ok()) return ToStatus(id.error()).WithContext("account " + account_.name);
  report.identity = *id;

  const std::string role_name = RoleNameFromArn(account_.role_arn);
  const std::string probe_name = "sextant-access-probe";
  // Names found by earlier probes make later probes real calls; otherwise they ask for a name
  // that does not exist, and "not found" proves the permission as well.
  std::string inline_policy, attached_policy_arn, trail_arn;
  std::map<std::string, std::string> cluster_of;  // region -> a cluster name

  auto query = [&](const ServiceCall& c, std::string_view version, const KeyValues& p) {
    auto r = client_->Query(c, version, p);
    return r.ok() ? CallResult<std::string>(std::move(r).value()) : r.error();
  };
  auto as_text = [](CallResult<nlohmann::json> j) -> CallResult<std::string> {
    if (!j.ok()) return j.error();
    return j->dump();
  };
  const std::string now = FormatRfc3339(client_->Now());
  const std::string today = FormatDate(client_->Now());
  const std::string yesterday = FormatDate(client_->Now() - std::chrono::hours(24));

  using Probe = std::function<CallResult<std::string>(const std::string& region)>;
  std::map<std::string_view, Probe> probes = {
      {"ec2:DescribeRegions",
       [&](const std::string& r) {
         return query({"ec2", r, "DescribeRegions"}, "2016-11-15", {{"AllRegions", "true"}});
       }},
      {"ec2:DescribeInstanceTypeOfferings",
       [&](const std::string& r) {
         return query({"ec2", r, "DescribeInstanceTypeOfferings"}, "2016-11-15",
                      {{"Filter.1.Name", "instance-type"}, {"Filter.1.Value.1", "t3.micro"}});
       }},
      {"ec2:DescribeInstanceTypes",
       [&](const std::string& r) {
         return query({"ec2", r, "DescribeInstanceTypes"}, "2016-11-15",
                      {{"InstanceType.1", "t3.micro"}});
       }},
      {"ec2:DescribeSpotPriceHistory",
       [&](const std::string& r) {
         return query({"ec2", r, "DescribeSpotPriceHistory"}, "2016-11-15",
                      {{"StartTime", now}, {"InstanceType.1", "t3.micro"}, {"MaxResults", "5"}});
       }},
      {"ec2:DescribeInstances",
       [&](const std::string& r) {
         return query({"ec2", r, "DescribeInstances"}, "2016-11-15", {{"MaxResults", "5"}});
       }},
      {"ec2:GetEbsEncryptionByDefault",
       [&](const std::string& r) {
         return query({"ec2", r, "GetEbsEncryptionByDefault"}, "2016-11-15", {});
       }},
      {"ec2:DescribeSecurityGroups",
       [&](const std::string& r) {
         return query({"ec2", r, "DescribeSecurityGroups"}, "2016-11-15", {{"MaxResults", "5"}});
       }},
      {"servicequotas:GetServiceQuota",
       [&](const std::string& r) {
         return as_text(client_->Json({"servicequotas", r, "GetServiceQuota"},
                                      "ServiceQuotasV20190624",
                                      {{"ServiceCode", "ec2"}, {"QuotaCode", "L-417A185B"}}));
       }},
      {"pricing:GetProducts",
       [&](const std::string&) {
         return as_text(client_->Json({"pricing", "us-east-1", "GetProducts"},
                                      "AWSPriceListService",
                                      {{"ServiceCode", "AmazonEC2"}, {"MaxResults", 1}}));
       }},
      {"ce:GetCostAndUsage",
       [&](const std::string&) {
         return as_text(client_->Json({"ce", "us-east-1", "GetCostAndUsage"},
                                      "AWSInsightsIndexService",
                                      {{"TimePeriod", {{"Start", yesterday}, {"End", today}}},
                                       {"Granularity", "DAILY"},
                                       {"Metrics", {"UnblendedCost"}}}));
       }},
      {"cloudtrail:DescribeTrails",
       [&](const std::string& r) {
         auto j = client_->Json({"cloudtrail", r, "DescribeTrails"},
                                "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101",
                                {{"includeShadowTrails", true}});
         if (j.ok() && !JsonArray(*j, "trailList").empty()) {
           trail_arn = JsonString(JsonArray(*j, "trailList")[0], "TrailARN");
         }
         return as_text(std::move(j));
       }},
      {"cloudtrail:GetTrailStatus",
       [&](const std::string& r) {
         return as_text(client_->Json({"cloudtrail", r, "GetTrailStatus"},
                                      "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101",
                                      {{"Name", trail_arn.empty() ? probe_name : trail_arn}}));
       }},
      {"eks:ListClusters",
       [&](const std::string& r) {
         auto j =
             client_->Rest({"eks", r, "ListClusters"}, "GET", "/clusters", {{"maxResults", "5"}});
         if (j.ok() && !JsonArray(*j, "clusters").empty() &&
             JsonArray(*j, "clusters")[0].is_string()) {
           cluster_of[r] = JsonArray(*j, "clusters")[0].get<std::string>();
         }
         return as_text(std::move(j));
       }},
      {"eks:DescribeCluster",
       [&](const std::string& r) {
         const std::string c = cluster_of.count(r) ? cluster_of[r] : probe_name;
         return as_text(
             client_->Rest({"eks", r, "DescribeCluster"}, "GET", "/clusters/" + UriEncode(c), {}));
       }},
      {"eks:ListNodegroups",
       [&](const std::string& r) {
         const std::string c = cluster_of.count(r) ? cluster_of[r] : probe_name;
         return as_text(client_->Rest({"eks", r, "ListNodegroups"}, "GET",
                                      "/clusters/" + UriEncode(c) + "/node-groups",
                                      {{"maxResults", "5"}}));
       }},
      {"eks:DescribeNodegroup",
       [&](const std::string& r) {
         const std::string c = cluster_of.count(r) ? cluster_of[r] : probe_name;
         return as_text(client_->Rest({"eks", r, "DescribeNodegroup"}, "GET",
                                      "/clusters/" + UriEncode(c) + "/node-groups/" + probe_name,
                                      {}));
       }},
      {"iam:GetRole",
       [&](const std::string&) {
         return query({"iam", "us-east-1", "GetRole"}, "2010-05-08",
                      {{"RoleName", role_name.empty() ? probe_name : role_name}});
       }},
      {"iam:ListAttachedRolePolicies",
       [&](const std::string&) {
         auto r = query({"iam", "us-east-1", "ListAttachedRolePolicies"}, "2010-05-08",
                        {{"RoleName", role_name.empty() ? probe_name : role_name}});
         if (r.ok()) {
           const size_t at = r->find("<PolicyArn>");
           if (at != std::string::npos) {
             const size_t end = r->find("</PolicyArn>", at);
             attached_policy_arn = r->substr(at + 11, end - at - 11);
           }
         }
         return r;
       }},
      {"iam:ListRolePolicies",
       [&](const std::string&) {
         auto r = query({"iam", "us-east-1", "ListRolePolicies"}, "2010-05-08",
                        {{"RoleName", role_name.empty() ? probe_name : role_name}});
         if (r.ok()) {
           const size_t names = r->find("<PolicyNames>");
           const size_t at = names == std::string::npos ? names : r->find("<member>", names);
           if (at != std::string::npos) {
             const size_t end = r->find("</member>", at);
             inline_policy = r->substr(at + 8, end - at - 8);
           }
         }
         return r;
       }},
      {"iam:GetRolePolicy",
       [&](const std::string&) {
         return query({"iam", "us-east-1", "GetRolePolicy"}, "2010-05-08",
                      {{"RoleName", role_name.empty() ? probe_name : role_name},
                       {"PolicyName", inline_policy.empty() ? probe_name : inline_policy}});
       }},
      {"iam:GetPolicy",
       [&](const std::string&) {
         return query(
             {"iam", "us-east-1", "GetPolicy"}, "2010-05-08",
             {{"PolicyArn", attached_policy_arn.empty() ? "arn:aws:iam::aws:policy/" + probe_name
                                                        : attached_policy_arn}});
       }},
      {"iam:GetPolicyVersion",
       [&](const std::string&) {
         return query(
             {"iam", "us-east-1", "GetPolicyVersion"}, "2010-05-08",
             {{"PolicyArn", attached_policy_arn.empty() ? "arn:aws:iam::aws:policy/" + probe_name
                                                        : attached_policy_arn},
              {"VersionId", "v1"}});
       }},
  };

  // Global calls once; regional calls in every region of the account (a region that is not
  // enabled fails them all with OptInRequired). The IAM listing probes run before the probes
  // that use what they found (the table's order).
  auto global = [](std::string_view action) {
    return action.rfind("iam:", 0) == 0 || action.rfind("ce:", 0) == 0 ||
           action.rfind("pricing:", 0) == 0 || action == "ec2:DescribeRegions";
  };
  std::vector<const cc::RequiredAction*> order;
  for (const auto& a : cc::RequiredActions()) order.push_back(&a);
  std::stable_sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
    auto rank = [](std::string_view x) {
      return x == "iam:ListAttachedRolePolicies" || x == "iam:ListRolePolicies" ? 0 : 1;
    };
    return rank(a->action) < rank(b->action);
  });
  for (const std::string& region : account_.regions) {
    if (auto gate = RegionGate(region)) {
      for (const auto* a : order) {
        if (global(a->action)) continue;
        report.probes.push_back(
            {std::string(a->action), region, std::string(a->used_for), OutcomeOf(*gate), *gate});
      }
    }
  }
  std::vector<std::string> scopes = {""};  // "" for the global calls
  scopes.insert(scopes.end(), account_.regions.begin(), account_.regions.end());
  for (const std::string& scope : scopes) {
    for (const auto* a : order) {
      const bool is_global = global(a->action);
      if (scope.empty() != is_global) continue;
      if (!scope.empty() && RegionGate(scope)) continue;
      auto p = probes.find(a->action);
      cc::ApiProbe probe;
      probe.api_call = std::string(a->action);
      probe.region = scope;
      probe.used_for = std::string(a->used_for);
      if (p == probes.end()) {
        probe.error = CallError{probe.api_call, scope, "NoProbe", "no probe for this call", "", 0};
      } else {
        auto r = p->second(scope.empty() ? HomeRegion() : scope);
        probe.outcome = r.ok() ? cc::ProbeOutcome::kAllowed : OutcomeOf(r.error());
        if (probe.outcome != cc::ProbeOutcome::kAllowed) probe.error = r.error();
      }
      report.probes.push_back(std::move(probe));
    }
  }

  if (role_name.empty()) {
    report.notes.push_back("no role ARN: the console uses its base credentials as they are");
  } else {
    std::vector<CallError> errors;
    auto policies = IamRolePolicies(*client_, role_name, &errors);
    if (!policies.ok()) {
      report.notes.push_back(
          "the role's policies could not be read, so what it may do beyond "
          "the console's needs is unknown: " +
          policies.error().ToString());
    } else {
      report.excess = cc::FindExcessGrants(*policies, &report.notes);
    }
    for (const auto& e : errors) {
      report.notes.push_back("a policy of the role could not be read: " + e.ToString());
    }
  }
  return report;
}

}  // namespace sextant::cloud::aws
