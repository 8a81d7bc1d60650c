#include "connectors/cloud/aws/credentials.h"

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "connectors/cloud/aws/aws_error.h"
#include "connectors/cloud/aws/sts_client.h"
#include "connectors/cloud/time_format.h"

namespace sextant::cloud::aws {

namespace fs = std::filesystem;

namespace {

CallError CredError(std::string code, std::string message) {
  CallError e;
  e.api_call = "credentials";
  e.code = std::move(code);
  e.message = std::move(message);
  e.hint = HintFor(e.code, e.api_call);
  return e;
}

std::string Trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

bool Fresh(const Credentials& c, std::chrono::system_clock::time_point now,
           std::chrono::seconds margin) {
  return !c.expiration || *c.expiration - margin > now;
}

Clock OrSystemClock(Clock c) {
  if (c) return c;
  return [] { return std::chrono::system_clock::now(); };
}

}  // namespace

Environment ProcessEnvironment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

Environment MapEnvironment(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

CallResult<Credentials> CredentialsFromEnvironment(const Environment& env) {
  auto id = env("AWS_ACCESS_KEY_ID");
  auto secret = env("AWS_SECRET_ACCESS_KEY");
  if ((!id || id->empty()) && (!secret || secret->empty())) {
    return CredError("NoCredentials", "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set");
  }
  if (!id || id->empty() || !secret || secret->empty()) {
    return CredError("InvalidProfile",
                     std::string("the environment sets ") +
                         (id && !id->empty() ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY") +
                         " without " +
                         (id && !id->empty() ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID"));
  }
  Credentials c;
  c.access_key_id = *id;
  c.secret_access_key = *secret;
  if (auto token = env("AWS_SESSION_TOKEN")) c.session_token = *token;
  c.source = "environment";
  return c;
}

Result<std::map<std::string, std::map<std::string, std::string>>> ParseIni(
    std::string_view text, const std::string& name) {
  std::map<std::string, std::map<std::string, std::string>> out;
  std::string section;
  bool in_section = false;
  int line_no = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t nl = text.find('\n', i);
    if (nl == std::string_view::npos) nl = text.size();
    std::string line = Trim(text.substr(i, nl - i));
    i = nl + 1;
    ++line_no;
    const std::string where = name + ":" + std::to_string(line_no);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line[0] == '[') {
      if (line.back() != ']') return Status::InvalidArgument(where + ": unterminated section");
      section = Trim(std::string_view(line).substr(1, line.size() - 2));
      if (section.empty()) return Status::InvalidArgument(where + ": empty section name");
      out[section];
      in_section = true;
      continue;
    }
    const size_t eq = line.find('=');
    if (eq == std::string::npos) {
      return Status::InvalidArgument(where + ": expected \"key = value\"");
    }
    if (!in_section) return Status::InvalidArgument(where + ": a key before any [section]");
    const std::string key = Trim(std::string_view(line).substr(0, eq));
    if (key.empty()) return Status::InvalidArgument(where + ": empty key");
    out[section][key] = Trim(std::string_view(line).substr(eq + 1));
  }
  return out;
}

CallResult<Credentials> CredentialsFromProfile(const fs::path& credentials_file,
                                               const fs::path& config_file,
                                               const std::string& profile) {
  struct Source {
    fs::path path;
    std::string section;
  };
  const Source sources[] = {
      {credentials_file, profile},
      {config_file, profile == "default" ? profile : "profile " + profile},
  };
  for (const auto& src : sources) {
    std::error_code ec;
    if (src.path.empty() || !fs::exists(src.path, ec)) continue;
    std::ifstream in(src.path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    auto ini = ParseIni(ss.str(), src.path.string());
    if (!ini.ok()) return CredError("InvalidProfile", ini.status().message());
    auto sec = ini->find(src.section);
    if (sec == ini->end()) continue;
    const auto& kv = sec->second;
    auto get = [&](const char* k) {
      auto it = kv.find(k);
      return it == kv.end() ? std::string() : it->second;
    };
    Credentials c;
    c.access_key_id = get("aws_access_key_id");
    c.secret_access_key = get("aws_secret_access_key");
    c.session_token = get("aws_session_token");
    c.source = "profile " + profile + " (" + src.path.string() + ")";
    if (!c.Empty()) return c;
    for (const char* unsupported : {"role_arn", "credential_process", "sso_session",
                                    "sso_start_url", "web_identity_token_file"}) {
      if (kv.count(unsupported) != 0) {
        return CredError("InvalidProfile", "profile " + profile + " in " + src.path.string() +
                                               " uses " + unsupported +
                                               ", which the console does not support: give it "
                                               "aws_access_key_id and aws_secret_access_key");
      }
    }
    return CredError("InvalidProfile", "profile " + profile + " in " + src.path.string() +
                                           " has no aws_access_key_id/aws_secret_access_key");
  }
  return CredError("NoCredentials", "no profile " + profile + " in " + credentials_file.string() +
                                        " or " + config_file.string());
}

InstanceMetadataCredentials::InstanceMetadataCredentials(std::shared_ptr<HttpClient> http,
                                                         std::string endpoint,
                                                         std::chrono::milliseconds timeout,
                                                         Clock clock,
                                                         std::chrono::seconds refresh_margin)
    : http_(std::move(http)),
      endpoint_(std::move(endpoint)),
      timeout_(timeout),
      clock_(OrSystemClock(std::move(clock))),
      margin_(refresh_margin) {}

CallResult<Credentials> InstanceMetadataCredentials::Get() {
  std::lock_guard<std::mutex> lock(mu_);
  if (cached_ && Fresh(*cached_, clock_(), margin_)) return *cached_;
  auto fresh = Fetch();
  if (fresh.ok()) cached_ = *fresh;
  return fresh;
}

void InstanceMetadataCredentials::Invalidate() {
  std::lock_guard<std::mutex> lock(mu_);
  cached_.reset();
}

CallResult<Credentials> InstanceMetadataCredentials::Fetch() {
  auto fail = [&](std::string code, std::string msg, int status = 0) {
    CallError e = CredError(std::move(code), "instance metadata: " + std::move(msg));
    e.api_call = "imds:GetCredentials";
    e.http_status = status;
    return e;
  };
  HttpRequest token_req;
  token_req.method = "PUT";
  token_req.url = endpoint_ + "/latest/api/token";
  token_req.headers = {{"X-aws-ec2-metadata-token-ttl-seconds", "21600"}};
  token_req.timeout = timeout_;
  token_req.bypass_proxy = true;
  auto token = http_->Send(token_req);
  if (!token.ok()) return fail("NoCredentials", token.status().message());
  if (token->status != 200 || token->body.empty()) {
    return fail("NoCredentials",
                "no IMDSv2 session token (HTTP " + std::to_string(token->status) + ")",
                token->status);
  }
  HttpRequest get;
  get.url = endpoint_ + "/latest/meta-data/iam/security-credentials/";
  get.headers = {{"X-aws-ec2-metadata-token", token->body}};
  get.timeout = timeout_;
  get.bypass_proxy = true;
  auto roles = http_->Send(get);
  if (!roles.ok()) return fail("NoCredentials", roles.status().message());
  if (roles->status != 200) {
    return fail("NoCredentials",
                "the instance has no instance role (HTTP " + std::to_string(roles->status) + ")",
                roles->status);
  }
  std::string role = Trim(roles->body.substr(0, roles->body.find('\n')));
  if (role.empty() || role.find('/') != std::string::npos) {
    return fail("NoCredentials", "no instance role name in the answer");
  }
  get.url += role;
  auto doc = http_->Send(get);
  if (!doc.ok()) return fail("NoCredentials", doc.status().message());
  if (doc->status != 200) {
    return fail("NoCredentials", "credentials of " + role + " unavailable", doc->status);
  }
  nlohmann::json j = nlohmann::json::parse(doc->body, nullptr, false);
  auto str = [&](const char* k) {
    auto it = j.is_object() ? j.find(k) : j.end();
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (!j.is_object() || str("Code") != "Success") {
    return fail("MalformedResponse", "the credentials document of " + role +
                                         " is malformed or not a success (Code \"" + str("Code") +
                                         "\")");
  }
  Credentials c;
  c.access_key_id = str("AccessKeyId");
  c.secret_access_key = str("SecretAccessKey");
  c.session_token = str("Token");
  c.source = "instance role " + role;
  auto exp = ParseRfc3339(str("Expiration"));
  if (c.Empty() || !exp.ok()) {
    return fail("MalformedResponse",
                "the credentials document of " + role + " lacks a key or a valid Expiration");
  }
  c.expiration = *exp;
  return c;
}

DefaultCredentialsChain::DefaultCredentialsChain(CredentialsChainOptions options)
    : options_(std::move(options)) {
  options_.clock = OrSystemClock(options_.clock);
  if (options_.home.empty()) {
    if (auto home = options_.env("HOME")) options_.home = *home;
  }
  if (!options_.http) options_.http = std::make_shared<CurlHttpClient>();
}

CallResult<Credentials> DefaultCredentialsChain::Get() {
  std::lock_guard<std::mutex> lock(mu_);
  if (chosen_) return chosen_->Get();
  std::vector<std::string> tried;
  // 1. The environment.
  auto env = CredentialsFromEnvironment(options_.env);
  if (env.ok()) {
    chosen_ = std::make_unique<StaticCredentials>(*env);
    chosen_name_ = "environment";
    return env;
  }
  if (env.error().code != "NoCredentials") return env;
  tried.push_back(env.error().message);
  // 2. A profile.
  const std::string profile = options_.env("AWS_PROFILE").value_or("default");
  const fs::path creds_file = options_.env("AWS_SHARED_CREDENTIALS_FILE")
                                  .value_or((options_.home / ".aws" / "credentials").string());
  const fs::path config_file =
      options_.env("AWS_CONFIG_FILE").value_or((options_.home / ".aws" / "config").string());
  auto prof = CredentialsFromProfile(creds_file, config_file, profile);
  if (prof.ok()) {
    chosen_ = std::make_unique<StaticCredentials>(*prof);
    chosen_name_ = prof->source;
    return prof;
  }
  if (prof.error().code != "NoCredentials" || options_.env("AWS_PROFILE")) return prof;
  tried.push_back(prof.error().message);
  // 3. The instance role.
  if (options_.env("AWS_EC2_METADATA_DISABLED").value_or("") != "true") {
    const std::string endpoint =
        options_.env("AWS_EC2_METADATA_SERVICE_ENDPOINT").value_or("http://169.254.169.254");
    auto imds = std::make_unique<InstanceMetadataCredentials>(
        options_.http, endpoint.back() == '/' ? endpoint.substr(0, endpoint.size() - 1) : endpoint,
        options_.imds_timeout, options_.clock);
    auto got = imds->Get();
    if (got.ok()) {
      chosen_name_ = imds->Describe();
      chosen_ = std::move(imds);
      return got;
    }
    tried.push_back(got.error().message);
  } else {
    tried.push_back("instance metadata: disabled by AWS_EC2_METADATA_DISABLED");
  }
  std::string all;
  for (const auto& t : tried) all += (all.empty() ? "" : "; ") + t;
  return CredError("NoCredentials", "no AWS credentials found: " + all);
}

void DefaultCredentialsChain::Invalidate() {
  std::lock_guard<std::mutex> lock(mu_);
  if (chosen_) chosen_->Invalidate();
}

std::string DefaultCredentialsChain::Describe() const {
  std::lock_guard<std::mutex> lock(mu_);
  return chosen_ ? chosen_name_ : "default chain (environment, profile, instance metadata)";
}

AssumeRoleCredentials::AssumeRoleCredentials(std::shared_ptr<AwsClient> sts,
                                             AssumeRoleOptions options)
    : sts_(std::move(sts)), options_(std::move(options)) {}

CallResult<Credentials> AssumeRoleCredentials::Get() {
  std::lock_guard<std::mutex> lock(mu_);
  if (cached_ && Fresh(*cached_, sts_->Now(), options_.refresh_margin)) return *cached_;
  auto assumed = StsAssumeRole(*sts_, options_);
  if (!assumed.ok()) return assumed.error();
  ++assumptions_;
  cached_ = assumed->credentials;
  return *cached_;
}

void AssumeRoleCredentials::Invalidate() {
  std::lock_guard<std::mutex> lock(mu_);
  cached_.reset();
}

int AssumeRoleCredentials::assumptions() const {
  std::lock_guard<std::mutex> lock(mu_);
  return assumptions_;
}

}  // namespace sextant::cloud::aws
