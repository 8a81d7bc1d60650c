#include "app/common/spec_diff.h"

#include <set>

namespace sextant::spec {
namespace {

std::string Dump(const nlohmann::json& v) {
  return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void Diff(const nlohmann::json& a, const nlohmann::json& b, const std::string& path,
          std::vector<FieldDifference>& out) {
  if (a == b) return;
  if (a.is_object() && b.is_object()) {
    std::set<std::string> keys;
    for (auto it = a.begin(); it != a.end(); ++it) keys.insert(it.key());
    for (auto it = b.begin(); it != b.end(); ++it) keys.insert(it.key());
    for (const auto& k : keys) {
      const std::string sub = path.empty() ? k : path + "." + k;
      const bool in_a = a.contains(k), in_b = b.contains(k);
      if (in_a && in_b) {
        Diff(a.at(k), b.at(k), sub, out);
      } else {
        out.push_back({sub, in_a ? Dump(a.at(k)) : "", in_b ? Dump(b.at(k)) : ""});
      }
    }
    return;
  }
  if (a.is_array() && b.is_array() && a.size() == b.size()) {
    for (size_t i = 0; i < a.size(); ++i) {
      Diff(a[i], b[i], path + "[" + std::to_string(i) + "]", out);
    }
    return;
  }
  out.push_back({path, Dump(a), Dump(b)});
}

}  // namespace

std::vector<FieldDifference> DiffSpecs(const DeploymentSpec& before, const DeploymentSpec& after) {
  std::vector<FieldDifference> out;
  Diff(ToCanonicalJsonValue(before), ToCanonicalJsonValue(after), "", out);
  return out;
}

bool IsScalingField(std::string_view field) {
  return field == "resources.replicas.min" || field == "resources.replicas.max" ||
         field.rfind("scaling.", 0) == 0;
}

Status CheckOnlyScalingDiffers(const DeploymentSpec& before, const DeploymentSpec& after) {
  for (const auto& d : DiffSpecs(before, after)) {
    if (IsScalingField(d.field)) continue;
    auto shown = [](const std::string& v) {
      if (v.empty()) return std::string("(absent)");
      return v.size() > 80 ? v.substr(0, 77) + "..." : v;
    };
    return Status::FailedPrecondition("the specs differ in " + d.field + " (" + shown(d.before) +
                                      " -> " + shown(d.after) + "), not only in scaling");
  }
  return Status();
}

Result<DeploymentSpec> WithReplicaBounds(const DeploymentSpec& spec, int replicas_min,
                                         int replicas_max) {
  nlohmann::json j = ToCanonicalJsonValue(spec);
  j["resources"]["replicas"]["min"] = replicas_min;
  j["resources"]["replicas"]["max"] = replicas_max;
  // The canonical JSON is itself a spec: the parser applies its own range and order rules.
  SpecParseResult parsed = ParseDeploymentSpec(Dump(j));
  if (!parsed.ok()) {
    std::string msg;
    for (const auto& e : parsed.errors) {
      msg += (msg.empty() ? "" : "; ") + (e.field.empty() ? "" : e.field + ": ") + e.message;
    }
    return Status::InvalidArgument(msg);
  }
  return std::move(parsed.spec);
}

}  // namespace sextant::spec
