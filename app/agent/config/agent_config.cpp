#include "app/agent/config/agent_config.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "app/common/cloud_identity.h"

namespace sextant::agent {

namespace {

class Reader {
 public:
  Reader(std::string source, std::filesystem::path base)
      : source_(std::move(source)), base_(std::move(base)) {}

  Status Error(const YAML::Node& node, const std::string& what) const {
    const YAML::Mark m = node.Mark();
    return Status::InvalidArgument(source_ + ":" + std::to_string(m.line + 1) + ":" +
                                   std::to_string(m.column + 1) + ": " + what);
  }

  Status Keys(const YAML::Node& map, const std::set<std::string>& allowed,
              const std::string& where) const {
    if (!map.IsMap()) return Error(map, "'" + where + "' must be a mapping");
    for (const auto& kv : map) {
      if (!allowed.count(kv.first.Scalar())) {
        std::string list;
        for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
        return Error(kv.first, "unknown key '" + kv.first.Scalar() + "' in " + where +
                                   " (expected: " + list + ")");
      }
    }
    return Status();
  }

  Status String(const YAML::Node& map, const char* key, std::string* out) const {
    const YAML::Node n = map[key];
    if (!n) return Status();
    if (!n.IsScalar()) return Error(n, std::string(key) + " must be a string");
    *out = n.Scalar();
    return Status();
  }

  Status Path(const YAML::Node& map, const char* key, std::filesystem::path* out) const {
    std::string s;
    SEXTANT_RETURN_IF_ERROR(String(map, key, &s));
    if (map[key]) {
      if (s.rfind("file://", 0) == 0) s = s.substr(7);
      *out = s.empty() ? std::filesystem::path() : Resolve(s);
    }
    return Status();
  }

  template <typename T>
  Status Number(const YAML::Node& map, const char* key, T min, T max, T* out) const {
    const YAML::Node n = map[key];
    if (!n) return Status();
    T v{};
    if (!n.IsScalar() || !YAML::convert<T>::decode(n, v)) {
      return Error(n, std::string(key) + " must be an integer");
    }
    if (v < min || v > max) {
      return Error(n, std::string(key) + " must be in [" + std::to_string(min) + ", " +
                          std::to_string(max) + "]");
    }
    *out = v;
    return Status();
  }

  Status Bool(const YAML::Node& map, const char* key, bool* out) const {
    const YAML::Node n = map[key];
    if (!n) return Status();
    bool v = false;
    if (!n.IsScalar() || !YAML::convert<bool>::decode(n, v)) {
      return Error(n, std::string(key) + " must be true or false");
    }
    *out = v;
    return Status();
  }

  std::filesystem::path Resolve(const std::string& s) const {
    std::filesystem::path p(s);
    return p.is_absolute() ? p : base_ / p;
  }

 private:
  std::string source_;
  std::filesystem::path base_;
};

}  // namespace

Result<std::pair<std::string, int>> SplitHostPort(const std::string& address,
                                                  const std::string& field) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 >= address.size()) {
    return Status::InvalidArgument(field + ": expected host:port, got '" + address + "'");
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  int port = -1;
  try {
    size_t used = 0;
    port = std::stoi(address.substr(colon + 1), &used);
    if (used != address.size() - colon - 1) port = -1;
  } catch (...) {
    port = -1;
  }
  if (port < 0 || port > 65535 || host.empty()) {
    return Status::InvalidArgument(field + ": expected host:port with a port in [0, 65535], got '" +
                                   address + "'");
  }
  return std::make_pair(host, port);
}

Result<AgentConfig> AgentConfig::Parse(const std::string& text, const std::string& source,
                                       const std::filesystem::path& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(source + ":" + std::to_string(e.mark.line + 1) + ":" +
                                   std::to_string(e.mark.column + 1) +
                                   ": malformed YAML: " + e.msg);
  }
  Reader r(source, base_dir);
  AgentConfig c;
  try {
    if (root.IsNull()) return c;
    SEXTANT_RETURN_IF_ERROR(
        r.Keys(root,
               {"name", "grpc", "http", "policy", "state_dir", "model_store", "encryption_at_rest",
                "cloud", "limits", "console_keys", "admission", "validation"},
               "agent config"));
    SEXTANT_RETURN_IF_ERROR(r.String(root, "name", &c.name));
    if (const YAML::Node g = root["grpc"]) {
      SEXTANT_RETURN_IF_ERROR(r.Keys(g, {"listen", "ca", "cert", "key", "crl"}, "grpc"));
      SEXTANT_RETURN_IF_ERROR(r.String(g, "listen", &c.grpc_listen));
      auto hp = SplitHostPort(c.grpc_listen, "grpc.listen");
      if (!hp.ok()) return r.Error(g["listen"], hp.status().message());
      SEXTANT_RETURN_IF_ERROR(r.Path(g, "ca", &c.grpc_ca));
      SEXTANT_RETURN_IF_ERROR(r.Path(g, "cert", &c.grpc_cert));
      SEXTANT_RETURN_IF_ERROR(r.Path(g, "key", &c.grpc_key));
      SEXTANT_RETURN_IF_ERROR(r.Path(g, "crl", &c.grpc_crl));
    }
    if (const YAML::Node h = root["http"]) {
      SEXTANT_RETURN_IF_ERROR(
          r.Keys(h, {"listen", "cert", "key", "client_ca", "metrics", "limits"}, "http"));
      SEXTANT_RETURN_IF_ERROR(r.String(h, "listen", &c.http_listen));
      auto hp = SplitHostPort(c.http_listen, "http.listen");
      if (!hp.ok()) return r.Error(h["listen"], hp.status().message());
      SEXTANT_RETURN_IF_ERROR(r.Path(h, "cert", &c.http_cert));
      SEXTANT_RETURN_IF_ERROR(r.Path(h, "key", &c.http_key));
      SEXTANT_RETURN_IF_ERROR(r.Path(h, "client_ca", &c.http_client_ca));
      if (c.http_cert.empty() != c.http_key.empty()) {
        return r.Error(h, "http.cert and http.key must be given together");
      }
      if (!c.http_client_ca.empty() && c.http_cert.empty()) {
        return r.Error(h["client_ca"], "http.client_ca needs TLS (http.cert and http.key)");
      }
      std::string metrics = "open";
      SEXTANT_RETURN_IF_ERROR(r.String(h, "metrics", &metrics));
      if (metrics != "open" && metrics != "key") {
        return r.Error(h["metrics"], "http.metrics must be open or key");
      }
      c.http_metrics_need_key = metrics == "key";
      if (const YAML::Node l = h["limits"]) {
        SEXTANT_RETURN_IF_ERROR(
            r.Keys(l,
                   {"max_connections", "max_connections_per_client", "header_timeout_ms",
                    "idle_timeout_ms", "body_timeout_ms", "write_timeout_ms", "max_body_bytes",
                    "max_json_depth", "max_json_values", "workers"},
                   "http.limits"));
        HttpLimits& hl = c.http_limits;
        SEXTANT_RETURN_IF_ERROR(r.Number(l, "max_connections", 16, 1000000, &hl.max_connections));
        SEXTANT_RETURN_IF_ERROR(
            r.Number(l, "max_connections_per_client", 1, 1000000, &hl.max_connections_per_client));
        SEXTANT_RETURN_IF_ERROR(
            r.Number(l, "header_timeout_ms", 100, 600000, &hl.header_timeout_ms));
        SEXTANT_RETURN_IF_ERROR(r.Number(l, "idle_timeout_ms", 100, 3600000, &hl.idle_timeout_ms));
        SEXTANT_RETURN_IF_ERROR(r.Number(l, "body_timeout_ms", 100, 3600000, &hl.body_timeout_ms));
        SEXTANT_RETURN_IF_ERROR(
            r.Number(l, "write_timeout_ms", 100, 3600000, &hl.write_timeout_ms));
        SEXTANT_RETURN_IF_ERROR(
            r.Number<int64_t>(l, "max_body_bytes", 1024, int64_t{1} << 30, &hl.max_body_bytes));
        SEXTANT_RETURN_IF_ERROR(r.Number(l, "max_json_depth", 4, 10000, &hl.max_json_depth));
        SEXTANT_RETURN_IF_ERROR(
            r.Number<int64_t>(l, "max_json_values", 64, int64_t{1} << 26, &hl.max_json_values));
        SEXTANT_RETURN_IF_ERROR(r.Number(l, "workers", 1, 1024, &hl.workers));
      }
    }
    SEXTANT_RETURN_IF_ERROR(r.Path(root, "policy", &c.policy));
    SEXTANT_RETURN_IF_ERROR(r.Path(root, "state_dir", &c.state_dir));
    SEXTANT_RETURN_IF_ERROR(r.Path(root, "model_store", &c.model_store));
    SEXTANT_RETURN_IF_ERROR(r.Bool(root, "encryption_at_rest", &c.encryption_at_rest));
    if (const YAML::Node keys = root["console_keys"]) {
      if (!keys.IsSequence() && !keys.IsNull()) {
        return r.Error(keys, "console_keys must be a list of PEM files");
      }
      for (const auto& k : keys) {
        if (!k.IsScalar() || k.Scalar().empty()) {
          return r.Error(k, "console_keys: each entry must be the path of a PEM file");
        }
        c.console_keys.push_back(r.Resolve(k.Scalar()));
      }
    }
    if (const YAML::Node ad = root["admission"]) {
      if (!ad.IsNull()) {
        SEXTANT_RETURN_IF_ERROR(
            r.Keys(ad, {"approval_keys", "approvals", "allow_specs", "allow_models"}, "admission"));
        auto list = [&](const char* key, std::vector<std::string>* out) -> Status {
          const YAML::Node n = ad[key];
          if (!n || n.IsNull()) return Status();
          if (!n.IsSequence())
            return r.Error(n, std::string("admission.") + key + " must be a list");
          for (const auto& e : n) {
            if (!e.IsScalar() || e.Scalar().empty()) {
              return r.Error(e, std::string("admission.") + key + ": each entry must be a string");
            }
            out->push_back(e.Scalar());
          }
          return Status();
        };
        std::vector<std::string> keys;
        SEXTANT_RETURN_IF_ERROR(list("approval_keys", &keys));
        for (const auto& k : keys) c.admission.approval_keys.push_back(r.Resolve(k));
        SEXTANT_RETURN_IF_ERROR(r.Path(ad, "approvals", &c.admission.approvals));
        SEXTANT_RETURN_IF_ERROR(list("allow_specs", &c.admission.allow_specs));
        SEXTANT_RETURN_IF_ERROR(list("allow_models", &c.admission.allow_models));
        for (const auto* l : {&c.admission.allow_specs, &c.admission.allow_models}) {
          for (const auto& d : *l) {
            std::string hex = d.rfind("sha256:", 0) == 0 ? d.substr(7) : d;
            if (hex.size() != 64 ||
                hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
              return r.Error(ad, "admission: '" + d + "' is not a sha256 (64 hex digits)");
            }
          }
        }
        if (!c.admission.approval_keys.empty() && c.admission.approvals.empty()) {
          return r.Error(ad,
                         "admission.approval_keys needs admission.approvals (the file "
                         "approvals are kept in)");
        }
      }
    }
    if (const YAML::Node v = root["validation"]) {
      SEXTANT_RETURN_IF_ERROR(
          r.Keys(v, {"min_tokens_per_prompt", "answers_burst", "answers_per_hour"}, "validation"));
      SEXTANT_RETURN_IF_ERROR(
          r.Number(v, "min_tokens_per_prompt", 1, 100000, &c.validation.min_tokens_per_prompt));
      SEXTANT_RETURN_IF_ERROR(r.Number(v, "answers_burst", 1, 100000, &c.validation.answers_burst));
      SEXTANT_RETURN_IF_ERROR(
          r.Number(v, "answers_per_hour", 0, 1000000, &c.validation.answers_per_hour));
    }
    if (const YAML::Node cl = root["cloud"]) {
      SEXTANT_RETURN_IF_ERROR(r.Keys(
          cl, {"provider", "account", "region", "zone", "instance_type", "instance_id", "spot"},
          "cloud"));
      CloudContextInfo info;
      SEXTANT_RETURN_IF_ERROR(r.String(cl, "provider", &info.provider));
      static const std::set<std::string> kProviders = {"aws", "gcp", "azure", "on-prem"};
      if (!kProviders.count(info.provider)) {
        return r.Error(cl["provider"] ? cl["provider"] : cl,
                       "cloud.provider must be one of aws, gcp, azure, on-prem");
      }
      SEXTANT_RETURN_IF_ERROR(r.String(cl, "account", &info.account));
      SEXTANT_RETURN_IF_ERROR(r.String(cl, "region", &info.region));
      SEXTANT_RETURN_IF_ERROR(r.String(cl, "zone", &info.zone));
      SEXTANT_RETURN_IF_ERROR(r.String(cl, "instance_type", &info.instance_type));
      SEXTANT_RETURN_IF_ERROR(r.String(cl, "instance_id", &info.instance_id));
      // The console matches the agent with the account's instances by these: a malformed one is
      // a config error, not a machine the console would look for.
      if (Status s = CheckAccountId(info.provider, info.account); !s.ok()) {
        return r.Error(cl["account"], "cloud.account: " + s.message());
      }
      if (Status s = CheckInstanceId(info.provider, info.instance_id); !s.ok()) {
        return r.Error(cl["instance_id"], "cloud.instance_id: " + s.message());
      }
      SEXTANT_RETURN_IF_ERROR(r.Bool(cl, "spot", &info.spot));
      info.source = "config";
      c.cloud = info;
    }
    if (const YAML::Node l = root["limits"]) {
      SEXTANT_RETURN_IF_ERROR(
          r.Keys(l,
                 {"max_queue", "max_batch", "shutdown_grace_ms", "max_stream_ms", "imds_timeout_ms",
                  "denied_records_burst", "denied_records_per_minute"},
                 "limits"));
      SEXTANT_RETURN_IF_ERROR(r.Number(l, "max_queue", 1, 100000, &c.limits.max_queue));
      SEXTANT_RETURN_IF_ERROR(r.Number(l, "max_batch", 1, 1024, &c.limits.max_batch));
      SEXTANT_RETURN_IF_ERROR(
          r.Number(l, "shutdown_grace_ms", 0, 600000, &c.limits.shutdown_grace_ms));
      SEXTANT_RETURN_IF_ERROR(
          r.Number<int64_t>(l, "max_stream_ms", 1000, 86400000, &c.limits.max_stream_ms));
      SEXTANT_RETURN_IF_ERROR(r.Number(l, "imds_timeout_ms", 10, 10000, &c.limits.imds_timeout_ms));
      SEXTANT_RETURN_IF_ERROR(
          r.Number(l, "denied_records_burst", 1, 100000, &c.limits.denied_records_burst));
      SEXTANT_RETURN_IF_ERROR(
          r.Number(l, "denied_records_per_minute", 0, 100000, &c.limits.denied_records_per_minute));
    }
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(source + ":" + std::to_string(e.mark.line + 1) + ":" +
                                   std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  return c;
}

Result<AgentConfig> AgentConfig::LoadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot read agent config " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return Parse(ss.str(), path.string(), path.parent_path());
}

}  // namespace sextant::agent
