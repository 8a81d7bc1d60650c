#include "connectors/inventory/cloud_context.h"

#include <httplib.h>

#include <future>
#include <nlohmann/json.hpp>

#include "app/common/cloud_identity.h"

namespace sextant::inventory {

namespace {

using nlohmann::json;

struct Probe {
  std::optional<agent::CloudContextInfo> context;
  std::string note;
};

std::unique_ptr<httplib::Client> MakeClient(const std::string& endpoint,
                                            std::chrono::milliseconds timeout) {
  auto c = std::make_unique<httplib::Client>(endpoint);
  const auto sec = static_cast<time_t>(timeout.count() / 1000);
  const auto usec = static_cast<time_t>((timeout.count() % 1000) * 1000);
  c->set_connection_timeout(sec, usec);
  c->set_read_timeout(sec, usec);
  c->set_write_timeout(sec, usec);
  c->set_keep_alive(false);
  return c;
}

// Last path segment: "projects/1/zones/us-central1-a" -> "us-central1-a".
std::string LastSegment(const std::string& s) {
  const size_t slash = s.find_last_of('/');
  return slash == std::string::npos ? s : s.substr(slash + 1);
}

std::string StringField(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// The metadata service is trusted for where the agent runs, not for the shape of what it says:
// an account or instance id the console could not match is left out, and the note says why.
void DropMalformedIds(agent::CloudContextInfo& ctx, std::string& note) {
  if (Status s = CheckAccountId(ctx.provider, ctx.account); !s.ok()) {
    ctx.account.clear();
    note += "; left out: " + s.message();
  }
  if (Status s = CheckInstanceId(ctx.provider, ctx.instance_id); !s.ok()) {
    ctx.instance_id.clear();
    note += "; left out: " + s.message();
  }
}

Probe ProbeAws(const CloudContextOptions& o) {
  Probe p;
  auto c = MakeClient(o.aws_endpoint, o.timeout);
  auto token = c->Put("/latest/api/token", {{"X-aws-ec2-metadata-token-ttl-seconds", "60"}}, "",
                      "text/plain");
  if (!token || token->status != 200 || token->body.empty()) {
    p.note =
        token ? "aws: token request answered " + std::to_string(token->status) : "aws: no answer";
    return p;
  }
  const httplib::Headers auth = {{"X-aws-ec2-metadata-token", token->body}};
  auto doc = c->Get("/latest/dynamic/instance-identity/document", auth);
  if (!doc || doc->status != 200) {
    p.note = "aws: identity document unavailable";
    return p;
  }
  json j = json::parse(doc->body, nullptr, false);
  if (!j.is_object() || StringField(j, "region").empty()) {
    p.note = "aws: malformed identity document";
    return p;
  }
  agent::CloudContextInfo ctx;
  ctx.provider = "aws";
  ctx.account = StringField(j, "accountId");
  ctx.region = StringField(j, "region");
  ctx.zone = StringField(j, "availabilityZone");
  ctx.instance_type = StringField(j, "instanceType");
  ctx.instance_id = StringField(j, "instanceId");
  auto life = c->Get("/latest/meta-data/instance-life-cycle", auth);
  ctx.spot = life && life->status == 200 && life->body == "spot";
  ctx.source = "imds";
  p.note = "aws: instance metadata";
  DropMalformedIds(ctx, p.note);
  p.context = ctx;
  return p;
}

Probe ProbeGcp(const CloudContextOptions& o) {
  Probe p;
  auto c = MakeClient(o.gcp_endpoint, o.timeout);
  const httplib::Headers h = {{"Metadata-Flavor", "Google"}};
  auto get = [&](const std::string& path) -> std::optional<std::string> {
    auto r = c->Get("/computeMetadata/v1/" + path, h);
    // A real GCP server echoes the flavor header; anything else is not GCP's.
    if (!r || r->status != 200 || r->get_header_value("Metadata-Flavor") != "Google") {
      return std::nullopt;
    }
    return r->body;
  };
  auto zone = get("instance/zone");
  if (!zone || zone->empty()) {
    p.note = "gcp: no answer";
    return p;
  }
  agent::CloudContextInfo ctx;
  ctx.provider = "gcp";
  ctx.zone = LastSegment(*zone);
  const size_t dash = ctx.zone.find_last_of('-');
  ctx.region = dash == std::string::npos ? ctx.zone : ctx.zone.substr(0, dash);
  ctx.account = get("project/project-id").value_or("");
  ctx.instance_type = LastSegment(get("instance/machine-type").value_or(""));
  ctx.instance_id = get("instance/id").value_or("");
  const std::string preemptible = get("instance/scheduling/preemptible").value_or("");
  const std::string model = get("instance/scheduling/provisioning-model").value_or("");
  ctx.spot = preemptible == "TRUE" || model == "SPOT";
  ctx.source = "imds";
  p.note = "gcp: instance metadata";
  DropMalformedIds(ctx, p.note);
  p.context = ctx;
  return p;
}

Probe ProbeAzure(const CloudContextOptions& o) {
  Probe p;
  auto c = MakeClient(o.azure_endpoint, o.timeout);
  auto r = c->Get("/metadata/instance?api-version=2021-02-01", {{"Metadata", "true"}});
  if (!r || r->status != 200) {
    p.note = "azure: no answer";
    return p;
  }
  json j = json::parse(r->body, nullptr, false);
  if (!j.is_object() || !j.contains("compute") || !j["compute"].is_object()) {
    p.note = "azure: malformed instance document";
    return p;
  }
  const json& compute = j["compute"];
  agent::CloudContextInfo ctx;
  ctx.provider = "azure";
  ctx.account = StringField(compute, "subscriptionId");
  ctx.region = StringField(compute, "location");
  ctx.zone = StringField(compute, "zone");
  ctx.instance_type = StringField(compute, "vmSize");
  ctx.instance_id = StringField(compute, "vmId");
  const std::string priority = StringField(compute, "priority");
  ctx.spot = priority == "Spot" || priority == "Low";
  ctx.source = "imds";
  if (ctx.region.empty()) {
    p.note = "azure: malformed instance document";
    return p;
  }
  p.note = "azure: instance metadata";
  DropMalformedIds(ctx, p.note);
  p.context = ctx;
  return p;
}

}  // namespace

agent::CloudContextInfo CloudContextProbe::Context() {
  std::lock_guard<std::mutex> lock(mu_);
  if (cached_) return *cached_;
  if (options_.override_context) {
    cached_ = *options_.override_context;
    cached_->source = "config";
    note_ = "from the agent's config";
    return *cached_;
  }
  agent::CloudContextInfo on_prem;  // provider "on-prem", source "default"
  if (!options_.metadata_lookups) {
    cached_ = on_prem;
    note_ = "instance metadata lookups disabled";
    return *cached_;
  }
  const CloudContextOptions& o = options_;
  auto aws = std::async(std::launch::async, [&o] { return ProbeAws(o); });
  auto gcp = std::async(std::launch::async, [&o] { return ProbeGcp(o); });
  auto azure = std::async(std::launch::async, [&o] { return ProbeAzure(o); });
  const Probe results[] = {aws.get(), gcp.get(), azure.get()};
  note_.clear();
  for (const Probe& p : results) {
    note_ += (note_.empty() ? "" : "; ") + p.note;
    if (p.context && !cached_) cached_ = p.context;
  }
  if (!cached_) cached_ = on_prem;
  return *cached_;
}

std::string CloudContextProbe::note() const {
  std::lock_guard<std::mutex> lock(mu_);
  return note_;
}

}  // namespace sextant::inventory
