#include "app/agent/policy/access_policy.h"

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "engine/base/sha256.h"

namespace sextant::agent {

namespace {

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string At(const std::string& source, const YAML::Mark& mark) {
  return source + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

Status ErrorAt(const std::string& source, const YAML::Node& node, const std::string& what) {
  return Status::InvalidArgument(At(source, node.Mark()) + ": " + what);
}

Status CheckKeys(const std::string& source, const YAML::Node& map,
                 const std::set<std::string>& allowed, const std::string& where) {
  for (const auto& kv : map) {
    const std::string key = kv.first.Scalar();
    if (!allowed.count(key)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      return ErrorAt(source, kv.first,
                     "unknown key '" + key + "' in " + where + " (expected: " + list + ")");
    }
  }
  return Status();
}

Result<std::string> ScalarOf(const std::string& source, const YAML::Node& node,
                             const std::string& what) {
  if (!node.IsScalar() || node.Scalar().empty()) {
    return ErrorAt(source, node, what + " must be a non-empty string");
  }
  return node.Scalar();
}

}  // namespace

Result<std::shared_ptr<const AgentPolicy>> AgentPolicy::Parse(
    const std::string& text, const std::string& source, const std::set<std::string>& known_rpcs) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(At(source, e.mark) + ": malformed YAML: " + e.msg);
  }
  auto policy = std::make_shared<AgentPolicy>();
  policy->source_ = source;
  policy->digest_ = Sha256Hex(text);
  try {
    if (!root.IsMap()) return ErrorAt(source, root, "a policy must be a mapping");
    SEXTANT_RETURN_IF_ERROR(CheckKeys(source, root, {"version", "roles", "identities"}, "policy"));
    const YAML::Node version = root["version"];
    if (!version) return ErrorAt(source, root, "missing 'version' (expected 1)");
    if (!version.IsScalar() || version.Scalar() != "1") {
      return ErrorAt(source, version, "unsupported version (expected 1)");
    }
    const YAML::Node roles = root["roles"];
    if (!roles || !roles.IsMap())
      return ErrorAt(source, roles ? roles : root, "'roles' must be a mapping");
    for (const auto& kv : roles) {
      RoleRule rule;
      rule.name = kv.first.Scalar();
      const YAML::Node body = kv.second;
      if (!body.IsMap()) return ErrorAt(source, body, "role '" + rule.name + "' must be a mapping");
      SEXTANT_RETURN_IF_ERROR(
          CheckKeys(source, body, {"rpcs", "audit_scope"}, "role '" + rule.name + "'"));
      const YAML::Node rpcs = body["rpcs"];
      if (rpcs) {
        if (!rpcs.IsSequence()) {
          return ErrorAt(source, rpcs, "'rpcs' of role '" + rule.name + "' must be a list");
        }
        for (const auto& r : rpcs) {
          SEXTANT_ASSIGN_OR_RETURN(std::string name, ScalarOf(source, r, "an RPC name"));
          if (!known_rpcs.empty() && !known_rpcs.count(name)) {
            return ErrorAt(source, r, "unknown RPC '" + name + "' in role '" + rule.name + "'");
          }
          rule.rpcs.insert(name);
        }
      }
      if (const YAML::Node scope = body["audit_scope"]) {
        SEXTANT_ASSIGN_OR_RETURN(rule.audit_scope, ScalarOf(source, scope, "audit_scope"));
        if (rule.audit_scope != "own" && rule.audit_scope != "all") {
          return ErrorAt(source, scope, "audit_scope must be 'own' or 'all'");
        }
      }
      if (policy->roles_.count(rule.name)) {
        return ErrorAt(source, kv.first, "role '" + rule.name + "' defined twice");
      }
      policy->roles_[rule.name] = std::move(rule);
    }
    const YAML::Node ids = root["identities"];
    if (!ids || !ids.IsSequence()) {
      return ErrorAt(source, ids ? ids : root, "'identities' must be a list");
    }
    for (const auto& item : ids) {
      if (!item.IsMap()) return ErrorAt(source, item, "an identity rule must be a mapping");
      SEXTANT_RETURN_IF_ERROR(CheckKeys(source, item, {"match", "role"}, "identity rule"));
      if (!item["match"]) return ErrorAt(source, item, "identity rule without 'match'");
      if (!item["role"]) return ErrorAt(source, item, "identity rule without 'role'");
      IdentityRule rule;
      rule.line = item.Mark().line + 1;
      SEXTANT_ASSIGN_OR_RETURN(rule.match, ScalarOf(source, item["match"], "match"));
      SEXTANT_ASSIGN_OR_RETURN(rule.role, ScalarOf(source, item["role"], "role"));
      if (!policy->roles_.count(rule.role)) {
        return ErrorAt(source, item["role"], "unknown role '" + rule.role + "'");
      }
      if (rule.match.back() == '*') {
        rule.match.pop_back();
        rule.prefix = true;
      } else if (rule.match.back() == '/') {
        rule.prefix = true;
      }
      if (rule.match.rfind("spiffe://", 0) != 0) {
        return ErrorAt(source, item["match"], "match must start with spiffe://");
      }
      policy->identities_.push_back(std::move(rule));
    }
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(At(source, e.mark) + ": " + e.msg);
  }
  return std::shared_ptr<const AgentPolicy>(std::move(policy));
}

Result<std::shared_ptr<const AgentPolicy>> AgentPolicy::LoadFile(
    const std::filesystem::path& path, const std::set<std::string>& known_rpcs) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot read policy file " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return Parse(ss.str(), path.string(), known_rpcs);
}

std::optional<std::string> AgentPolicy::RoleOf(const std::string& identity) const {
  const IdentityRule* best = nullptr;
  for (const auto& rule : identities_) {
    if (!rule.prefix) {
      if (identity == rule.match) return rule.role;
      continue;
    }
    if (identity.size() > rule.match.size() &&
        identity.compare(0, rule.match.size(), rule.match) == 0) {
      if (!best || rule.match.size() > best->match.size()) best = &rule;
    }
  }
  if (best) return best->role;
  return std::nullopt;
}

const RoleRule* AgentPolicy::Role(const std::string& name) const {
  auto it = roles_.find(name);
  return it == roles_.end() ? nullptr : &it->second;
}

Decision AgentPolicy::Decide(const std::string& identity, const std::string& rpc) const {
  Decision d;
  auto role = RoleOf(identity);
  if (!role) {
    d.message = "identity " + identity + " has no role in the agent policy; " + rpc + " denied";
    return d;
  }
  d.role = *role;
  const RoleRule* rule = Role(*role);
  if (rule && rule->rpcs.count(rpc)) {
    d.allowed = true;
    return d;
  }
  d.message = "role " + *role + " (identity " + identity + ") is not allowed to call " + rpc;
  return d;
}

PolicyHolder::PolicyHolder(std::shared_ptr<const AgentPolicy> policy)
    : policy_(std::move(policy)), loaded_at_unix_ms_(NowUnixMs()) {}

std::shared_ptr<const AgentPolicy> PolicyHolder::Get() const {
  std::lock_guard<std::mutex> lock(mu_);
  return policy_;
}

void PolicyHolder::Set(std::shared_ptr<const AgentPolicy> policy) {
  std::lock_guard<std::mutex> lock(mu_);
  policy_ = std::move(policy);
  loaded_at_unix_ms_ = NowUnixMs();
}

int64_t PolicyHolder::loaded_at_unix_ms() const {
  std::lock_guard<std::mutex> lock(mu_);
  return loaded_at_unix_ms_;
}

}  // namespace sextant::agent
