#include "connectors/cloud/aws/aws_client.h"

#include <algorithm>
#include <thread>

#include "connectors/cloud/aws/aws_error.h"

namespace sextant::cloud::aws {

namespace {

bool IsGlobalService(std::string_view service) {
  return service == "iam" || service == "ce" || service == "pricing";
}

std::string DnsSuffix(std::string_view region) {
  return region.rfind("cn-", 0) == 0 ? "amazonaws.com.cn" : "amazonaws.com";
}

bool IsLoopback(std::string_view url) {
  const std::string host = UrlAuthority(url);
  return host.rfind("127.", 0) == 0 || host.rfind("localhost", 0) == 0 ||
         host.rfind("[::1]", 0) == 0;
}

}  // namespace

std::string FormEncode(const KeyValues& params) {
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out += '&';
    out += UriEncode(k) + "=" + UriEncode(v);
  }
  return out;
}

AwsClient::AwsClient(std::shared_ptr<HttpClient> http,
                     std::shared_ptr<CredentialsProvider> credentials, AwsClientOptions options)
    : http_(std::move(http)),
      credentials_(std::move(credentials)),
      options_(std::move(options)),
      rng_(std::random_device{}()) {
  if (!options_.sleep) {
    options_.sleep = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
  }
  if (!options_.now) options_.now = [] { return std::chrono::system_clock::now(); };
  if (options_.max_attempts < 1) options_.max_attempts = 1;
  while (!options_.endpoint_url.empty() && options_.endpoint_url.back() == '/') {
    options_.endpoint_url.pop_back();
  }
}

std::pair<std::string, std::string> AwsClient::Endpoint(const ServiceCall& call) const {
  std::string signing_region = call.region;
  if (IsGlobalService(call.service)) {
    signing_region = call.region.rfind("cn-", 0) == 0 ? "cn-northwest-1" : "us-east-1";
  }
  if (!options_.endpoint_url.empty()) return {options_.endpoint_url, signing_region};
  const std::string suffix = DnsSuffix(call.region);
  if (call.service == "iam") {
    return {call.region.rfind("cn-", 0) == 0 ? "https://iam.cn-north-1." + suffix
                                             : "https://iam." + suffix,
            signing_region};
  }
  if (call.service == "pricing") {
    return {"https://api.pricing." + signing_region + "." + suffix, signing_region};
  }
  return {"https://" + call.service + "." + signing_region + "." + suffix, signing_region};
}

std::chrono::milliseconds AwsClient::Backoff(int attempt) {
  const int64_t base = options_.backoff_base.count();
  const int64_t cap = options_.backoff_cap.count();
  int64_t ceiling = base;
  for (int i = 1; i < attempt && ceiling < cap; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, cap);
  std::lock_guard<std::mutex> lock(rng_mu_);
  std::uniform_int_distribution<int64_t> dist(0, std::max<int64_t>(ceiling, 0));
  return std::chrono::milliseconds(dist(rng_));
}

CallResult<std::string> AwsClient::Send(const ServiceCall& call, const Prepared& p) {
  const auto [base, signing_region] = Endpoint(call);
  std::string url = base + p.path;
  if (!p.query.empty()) url += "?" + FormEncode(p.query);
  const std::string host = UrlAuthority(base);

  CallError last;
  bool refreshed = false;
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    auto creds = credentials_->Get();
    if (!creds.ok()) {
      CallError e = creds.error();
      if (e.api_call.empty()) e.api_call = call.api_call();
      return e;
    }
    const auto now = options_.now();
    HttpRequest req;
    req.method = p.method;
    req.url = url;
    req.body = p.body;
    req.timeout = options_.timeout;
    req.bypass_proxy = IsLoopback(base);
    KeyValues headers = p.headers;
    headers.emplace_back("Host", host);
    headers.emplace_back("X-Amz-Date", AmzDate(now));
    if (!creds->session_token.empty()) {
      headers.emplace_back("X-Amz-Security-Token", creds->session_token);
    }
    const bool s3 = call.service == "s3";
    if (s3) headers.emplace_back("X-Amz-Content-Sha256", Sha256Hex(p.body));
    CanonicalInput input{p.method, p.path, p.query, headers, p.body};
    Signature sig = SignV4(input, *creds, {signing_region, call.service, now},
                           /*normalize_path=*/!s3);
    req.headers = headers;
    req.headers.emplace_back("Authorization", sig.authorization);

    auto resp = http_->Send(req);
    if (resp.ok() && resp->status >= 200 && resp->status < 300) return std::move(resp->body);

    if (!resp.ok()) {
      last = CallError{};
      last.code =
          resp.status().code() == StatusCode::kDeadlineExceeded ? "Timeout" : "ConnectionFailed";
      last.message = resp.status().message();
    } else {
      last = ParseAwsError(*resp);
    }
    last.api_call = call.api_call();
    last.region = IsGlobalService(call.service) ? "" : call.region;
    if (resp.ok() && IsExpiredCredentials(last.code) && !refreshed) {
      // The temporary credentials ran out early (clock skew, revoked session): take fresh
      // ones and try once more, without counting it as a retry.
      credentials_->Invalidate();
      refreshed = true;
      --attempt;
      continue;
    }
    if (!IsRetryable(last)) break;
    if (attempt == options_.max_attempts) {
      last.hint =
          "still failing after " + std::to_string(attempt) + " attempts with backoff: retry later";
      return last;
    }
    options_.sleep(Backoff(attempt));
  }
  last.hint = HintFor(last.code, last.api_call);
  return last;
}

CallResult<std::string> AwsClient::Query(const ServiceCall& call, std::string_view version,
                                         const KeyValues& params) {
  KeyValues form = {{"Action", call.action}, {"Version", std::string(version)}};
  form.insert(form.end(), params.begin(), params.end());
  Prepared p;
  p.method = "POST";
  p.path = "/";
  p.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
  p.body = FormEncode(form);
  return Send(call, p);
}

namespace {

CallResult<nlohmann::json> ParseJsonBody(const ServiceCall& call, std::string body) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return nlohmann::json::object();
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded()) {
    CallError e;
    e.api_call = call.api_call();
    e.region = call.region;
    e.code = "MalformedResponse";
    e.message = "the answer is not JSON";
    return e;
  }
  return j;
}

}  // namespace

CallResult<nlohmann::json> AwsClient::Json(const ServiceCall& call, std::string_view target_prefix,
                                           const nlohmann::json& body) {
  Prepared p;
  p.method = "POST";
  p.path = "/";
  p.headers = {{"Content-Type", "application/x-amz-json-1.1"},
               {"X-Amz-Target", std::string(target_prefix) + "." + call.action}};
  p.body = body.dump();
  auto r = Send(call, p);
  if (!r.ok()) return r.error();
  return ParseJsonBody(call, std::move(r).value());
}

CallResult<nlohmann::json> AwsClient::Rest(const ServiceCall& call, std::string_view method,
                                           std::string_view path, const KeyValues& query,
                                           const nlohmann::json& body) {
  Prepared p;
  p.method = std::string(method);
  p.path = std::string(path);
  p.query = query;
  if (!body.is_null()) {
    p.headers = {{"Content-Type", "application/json"}};
    p.body = body.dump();
  }
  auto r = Send(call, p);
  if (!r.ok()) return r.error();
  return ParseJsonBody(call, std::move(r).value());
}

CallResult<std::string> AwsClient::Raw(const ServiceCall& call, std::string_view method,
                                       std::string_view path, const KeyValues& query,
                                       const KeyValues& headers, std::string body) {
  Prepared p;
  p.method = std::string(method);
  p.path = std::string(path);
  p.query = query;
  p.headers = headers;
  p.body = std::move(body);
  return Send(call, p);
}

}  // namespace sextant::cloud::aws
