#include "connectors/cloud/aws/eks_client.h"
#include "connectors/cloud/json_fields.h"

#include <set>

#include "connectors/cloud/aws/xml_reader.h"
#include "connectors/cloud/time_format.h"

namespace sextant::cloud::aws {

namespace {

// Pages of a list call: `key` holds the names, "nextToken" the next page.
CallResult<std::vector<std::string>> ListAll(AwsClient& client, const ServiceCall& call,
                                             const std::string& path, const char* key) {
  std::vector<std::string> out;
  std::string token;
  std::set<std::string> seen;
  for (int page = 0; page < 100; ++page) {
    KeyValues query = {{"maxResults", "100"}};
    if (!token.empty()) query.emplace_back("nextToken", token);
    auto j = client.Rest(call, "GET", path, query);
    if (!j.ok()) return j.error();
    auto list = j->find(key);
    if (list == j->end() || !list->is_array()) return Malformed(call, std::string("no ") + key);
    for (const auto& n : *list) {
      if (n.is_string()) out.push_back(n.get<std::string>());
    }
    auto next = j->find("nextToken");
    token = next != j->end() && next->is_string() ? next->get<std::string>() : "";
    if (token.empty()) return out;
    if (!seen.insert(token).second) return Malformed(call, "the page token repeats");
  }
  return Malformed(call, "more than 100 pages");
}

int IntField(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int>() : 0;
}

}  // namespace

CallResult<std::vector<std::string>> EksListClusters(AwsClient& client, const std::string& region) {
  return ListAll(client, {"eks", region, "ListClusters"}, "/clusters", "clusters");
}

CallResult<console::cloud::ManagedCluster> EksDescribeCluster(AwsClient& client,
                                                              const std::string& region,
                                                              const std::string& name) {
  const std::string base = "/clusters/" + UriEncode(name);
  const ServiceCall call{"eks", region, "DescribeCluster"};
  auto j = client.Rest(call, "GET", base, {});
  if (!j.ok()) return j.error();
  auto c = j->find("cluster");
  if (c == j->end() || !c->is_object()) return Malformed(call, "no cluster object");
  console::cloud::ManagedCluster out;
  out.name = JsonString(*c, "name", name);
  out.arn = JsonString(*c, "arn");
  out.region = region;
  out.status = JsonString(*c, "status");
  out.version = JsonString(*c, "version");
  out.endpoint = JsonString(*c, "endpoint");

  auto groups =
      ListAll(client, {"eks", region, "ListNodegroups"}, base + "/node-groups", "nodegroups");
  if (!groups.ok()) {
    out.errors.push_back(groups.error());
  } else {
    for (const auto& g : *groups) {
      const ServiceCall dcall{"eks", region, "DescribeNodegroup"};
      auto d = client.Rest(dcall, "GET", base + "/node-groups/" + UriEncode(g), {});
      if (!d.ok()) {
        out.errors.push_back(d.error());
        continue;
      }
      auto ng = d->find("nodegroup");
      if (ng == d->end() || !ng->is_object()) {
        out.errors.push_back(Malformed(dcall, "no nodegroup object for " + g));
        continue;
      }
      console::cloud::NodeGroup n;
      n.name = JsonString(*ng, "nodegroupName", g);
      n.status = JsonString(*ng, "status");
      n.capacity_type = JsonString(*ng, "capacityType");
      n.ami_type = JsonString(*ng, "amiType");
      if (auto types = ng->find("instanceTypes"); types != ng->end() && types->is_array()) {
        for (const auto& t : *types) {
          if (t.is_string()) n.instance_types.push_back(t.get<std::string>());
        }
      }
      if (auto sc = ng->find("scalingConfig"); sc != ng->end() && sc->is_object()) {
        n.desired_size = IntField(*sc, "desiredSize");
        n.min_size = IntField(*sc, "minSize");
        n.max_size = IntField(*sc, "maxSize");
      }
      out.node_groups.push_back(std::move(n));
    }
  }
  out.observed_at = ToUnixMs(client.Now());
  return out;
}

}  // namespace sextant::cloud::aws
