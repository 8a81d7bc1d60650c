#include "connectors/cloud/aws/ec2_client.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "connectors/cloud/aws/xml_reader.h"
#include "connectors/cloud/time_format.h"

namespace sextant::cloud::aws {

namespace {

constexpr std::string_view kVersion = "2016-11-15";
constexpr int kMaxPages = 100;

// Calls `action` page by page; `on_page` reads each document's root.
template <typename OnPage>
CallResult<bool> Paginate(AwsClient& client, const ServiceCall& call, KeyValues params,
                          OnPage on_page) {
  std::string token;
  std::set<std::string> seen;
  for (int page = 0; page < kMaxPages; ++page) {
    KeyValues p = params;
    if (!token.empty()) p.emplace_back("NextToken", token);
    auto body = client.Query(call, kVersion, p);
    if (!body.ok()) return body.error();
    auto doc = ParseXml(call, *body);
    if (!doc.ok()) return doc.error();
    pugi::xml_node root = (*doc)->document_element();
    on_page(root);
    token = XmlText(root, "nextToken");
    if (token.empty()) return true;
    if (!seen.insert(token).second) return Malformed(call, "the page token repeats: " + token);
  }
  return Malformed(call, "more than " + std::to_string(kMaxPages) + " pages");
}

void AddFilter(KeyValues* params, int n, const std::string& name,
               const std::vector<std::string>& values) {
  const std::string prefix = "Filter." + std::to_string(n);
  params->emplace_back(prefix + ".Name", name);
  for (size_t i = 0; i < values.size(); ++i) {
    params->emplace_back(prefix + ".Value." + std::to_string(i + 1), values[i]);
  }
}

}  // namespace

bool IsAcceleratedFamily(std::string_view instance_type) {
  size_t n = 0;
  while (n < instance_type.size() && std::isalpha(static_cast<unsigned char>(instance_type[n]))) {
    ++n;
  }
  const std::string_view family = instance_type.substr(0, n);
  for (std::string_view f : {"p", "g", "gr", "dl", "vt", "f", "inf", "trn"}) {
    if (family == f) return true;
  }
  return false;
}

CallResult<std::vector<RegionInfo>> DescribeRegions(AwsClient& client, const std::string& region) {
  const ServiceCall call{"ec2", region, "DescribeRegions"};
  auto body = client.Query(call, kVersion, {{"AllRegions", "true"}});
  if (!body.ok()) return body.error();
  auto doc = ParseXml(call, *body);
  if (!doc.ok()) return doc.error();
  std::vector<RegionInfo> out;
  for (pugi::xml_node item : (*doc)->document_element().child("regionInfo").children("item")) {
    RegionInfo r;
    r.name = XmlText(item, "regionName");
    r.opt_in_status = XmlText(item, "optInStatus");
    r.enabled = r.opt_in_status != "not-opted-in";
    if (!r.name.empty()) out.push_back(r);
  }
  if (out.empty()) return Malformed(call, "no regionInfo items");
  return out;
}

CallResult<std::vector<GpuInstanceType>> DescribeGpuInstanceTypes(AwsClient& client,
                                                                  const std::string& region) {
  // The types offered in the region, then the descriptions of the accelerated-computing ones,
  // 100 at a time: DescribeInstanceTypes has no filter for GPUs.
  const ServiceCall offered_call{"ec2", region, "DescribeInstanceTypeOfferings"};
  std::set<std::string> offered;
  auto listed = Paginate(
      client, offered_call, {{"LocationType", "region"}, {"MaxResults", "1000"}},
      [&](pugi::xml_node root) {
        for (pugi::xml_node item : root.child("instanceTypeOfferingSet").children("item")) {
          const std::string t = XmlText(item, "instanceType");
          if (!t.empty()) offered.insert(t);
        }
      });
  if (!listed.ok()) return listed.error();
  std::vector<std::string> names;
  for (const auto& t : offered) {
    if (IsAcceleratedFamily(t)) names.push_back(t);
  }

  const ServiceCall call{"ec2", region, "DescribeInstanceTypes"};
  std::vector<GpuInstanceType> out;
  for (size_t start = 0; start < names.size(); start += 100) {
    KeyValues params;
    for (size_t i = start; i < std::min(names.size(), start + 100); ++i) {
      params.emplace_back("InstanceType." + std::to_string(i - start + 1), names[i]);
    }
    auto done = Paginate(client, call, params, [&](pugi::xml_node root) {
      for (pugi::xml_node item : root.child("instanceTypeSet").children("item")) {
        pugi::xml_node gpus = item.first_element_by_path("gpuInfo/gpus");
        pugi::xml_node gpu = gpus.child("item");
        if (!gpu) continue;
        GpuInstanceType t;
        t.instance_type = XmlText(item, "instanceType");
        t.gpu = XmlText(gpu, "name");
        t.gpu_vendor = XmlText(gpu, "manufacturer");
        for (pugi::xml_node g : gpus.children("item")) {
          t.gpu_count += static_cast<int>(XmlInt(g, "count"));
        }
        t.gpu_memory_mib = XmlInt(gpu, "memoryInfo/sizeInMiB");
        t.vcpus = static_cast<int>(XmlInt(item, "vCpuInfo/defaultVCpus"));
        t.memory_mib = XmlInt(item, "memoryInfo/sizeInMiB");
        if (!t.instance_type.empty() && t.gpu_count > 0) out.push_back(t);
      }
    });
    if (!done.ok()) return done.error();
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.instance_type < b.instance_type; });
  return out;
}

CallResult<std::vector<TypeOffering>> DescribeInstanceTypeOfferings(
    AwsClient& client, const std::string& region, const std::vector<std::string>& types) {
  const ServiceCall call{"ec2", region, "DescribeInstanceTypeOfferings"};
  std::vector<TypeOffering> out;
  for (size_t start = 0; start < types.size(); start += 50) {
    const std::vector<std::string> chunk(
        types.begin() + static_cast<std::ptrdiff_t>(start),
        types.begin() + static_cast<std::ptrdiff_t>(std::min(types.size(), start + 50)));
    KeyValues params = {{"LocationType", "availability-zone"}, {"MaxResults", "1000"}};
    AddFilter(&params, 1, "instance-type", chunk);
    auto done = Paginate(client, call, params, [&](pugi::xml_node root) {
      for (pugi::xml_node item : root.child("instanceTypeOfferingSet").children("item")) {
        TypeOffering o{XmlText(item, "instanceType"), XmlText(item, "location")};
        if (!o.instance_type.empty() && !o.zone.empty()) out.push_back(o);
      }
    });
    if (!done.ok()) return done.error();
  }
  return out;
}

CallResult<std::vector<SpotPrice>> DescribeSpotPrices(AwsClient& client, const std::string& region,
                                                      const std::vector<std::string>& types) {
  const ServiceCall call{"ec2", region, "DescribeSpotPriceHistory"};
  std::map<std::pair<std::string, std::string>, SpotPrice> latest;
  const std::string now = FormatRfc3339(client.Now());
  for (size_t start = 0; start < types.size(); start += 50) {
    KeyValues params = {
        {"StartTime", now}, {"ProductDescription.1", "Linux/UNIX"}, {"MaxResults", "1000"}};
    for (size_t i = start; i < std::min(types.size(), start + 50); ++i) {
      params.emplace_back("InstanceType." + std::to_string(i - start + 1), types[i]);
    }
    auto done = Paginate(client, call, params, [&](pugi::xml_node root) {
      for (pugi::xml_node item : root.child("spotPriceHistorySet").children("item")) {
        if (XmlText(item, "productDescription").rfind("Linux/UNIX", 0) != 0) continue;
        SpotPrice p;
        p.instance_type = XmlText(item, "instanceType");
        p.zone = XmlText(item, "availabilityZone");
        p.usd_per_hour = XmlDouble(item, "spotPrice", -1);
        p.timestamp = XmlText(item, "timestamp");
        if (p.instance_type.empty() || p.zone.empty() || p.usd_per_hour < 0) continue;
        auto key = std::make_pair(p.instance_type, p.zone);
        auto it = latest.find(key);
        if (it == latest.end() || it->second.timestamp < p.timestamp) latest[key] = p;
      }
    });
    if (!done.ok()) return done.error();
  }
  std::vector<SpotPrice> out;
  for (auto& [k, v] : latest) out.push_back(v);
  return out;
}

CallResult<std::vector<CloudInstance>> DescribeInstances(AwsClient& client,
                                                         const std::string& region) {
  const ServiceCall call{"ec2", region, "DescribeInstances"};
  KeyValues params = {{"MaxResults", "1000"}};
  AddFilter(&params, 1, "instance-state-name",
            {"pending", "running", "shutting-down", "stopping", "stopped"});
  std::vector<CloudInstance> out;
  auto done = Paginate(client, call, params, [&](pugi::xml_node root) {
    for (pugi::xml_node res : root.child("reservationSet").children("item")) {
      for (pugi::xml_node item : res.child("instancesSet").children("item")) {
        CloudInstance i;
        i.instance_id = XmlText(item, "instanceId");
        i.instance_type = XmlText(item, "instanceType");
        i.region = region;
        i.zone = XmlText(item, "placement/availabilityZone");
        i.state = XmlText(item, "instanceState/name");
        i.lifecycle = XmlText(item, "instanceLifecycle");
        if (i.lifecycle.empty()) i.lifecycle = "on-demand";
        i.launch_time = XmlText(item, "launchTime");
        i.http_tokens = XmlText(item, "metadataOptions/httpTokens");
        const int64_t cores = XmlInt(item, "cpuOptions/coreCount");
        const int64_t threads = XmlInt(item, "cpuOptions/threadsPerCore", 1);
        i.vcpus = static_cast<int>(cores * threads);
        for (pugi::xml_node g : item.child("groupSet").children("item")) {
          i.security_group_ids.push_back(XmlText(g, "groupId"));
        }
        for (pugi::xml_node t : item.child("tagSet").children("item")) {
          i.tags[XmlText(t, "key")] = XmlText(t, "value");
        }
        if (!i.instance_id.empty()) out.push_back(std::move(i));
      }
    }
  });
  if (!done.ok()) return done.error();
  return out;
}

CallResult<bool> GetEbsEncryptionByDefault(AwsClient& client, const std::string& region) {
  const ServiceCall call{"ec2", region, "GetEbsEncryptionByDefault"};
  auto body = client.Query(call, kVersion, {});
  if (!body.ok()) return body.error();
  auto doc = ParseXml(call, *body);
  if (!doc.ok()) return doc.error();
  const std::string v = XmlText((*doc)->document_element(), "ebsEncryptionByDefault");
  if (v != "true" && v != "false") return Malformed(call, "no ebsEncryptionByDefault");
  return v == "true";
}

CallResult<std::vector<SecurityGroupFact>> DescribeSecurityGroups(
    AwsClient& client, const std::string& region, const std::vector<std::string>& ids) {
  const ServiceCall call{"ec2", region, "DescribeSecurityGroups"};
  KeyValues params;
  if (ids.empty()) params.emplace_back("MaxResults", "1000");
  for (size_t i = 0; i < ids.size(); ++i) {
    params.emplace_back("GroupId." + std::to_string(i + 1), ids[i]);
  }
  std::vector<SecurityGroupFact> out;
  auto done = Paginate(client, call, params, [&](pugi::xml_node root) {
    for (pugi::xml_node item : root.child("securityGroupInfo").children("item")) {
      SecurityGroupFact sg;
      sg.id = XmlText(item, "groupId");
      sg.name = XmlText(item, "groupName");
      for (pugi::xml_node perm : item.child("ipPermissions").children("item")) {
        console::cloud::IngressRule rule;
        rule.protocol = XmlText(perm, "ipProtocol");
        rule.from_port = static_cast<int>(XmlInt(perm, "fromPort", -1));
        rule.to_port = static_cast<int>(XmlInt(perm, "toPort", -1));
        for (pugi::xml_node r : perm.child("ipRanges").children("item")) {
          rule.cidrs.push_back(XmlText(r, "cidrIp"));
        }
        for (pugi::xml_node r : perm.child("ipv6Ranges").children("item")) {
          rule.cidrs.push_back(XmlText(r, "cidrIpv6"));
        }
        sg.ingress.push_back(std::move(rule));
      }
      out.push_back(std::move(sg));
    }
  });
  if (!done.ok()) return done.error();
  return out;
}

}  // namespace sextant::cloud::aws
