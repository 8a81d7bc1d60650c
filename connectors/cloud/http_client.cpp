#include "connectors/cloud/http_client.h"

#include <curl/curl.h>

#include <cctype>

namespace sextant::cloud {

namespace {

std::once_flag g_curl_init;

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

struct Transfer {
  HttpResponse* response;
  size_t max_body;
  bool too_large = false;
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t bytes = size * n;
  if (t->response->body.size() + bytes > t->max_body) {
    t->too_large = true;
    return 0;  // aborts the transfer
  }
  t->response->body.append(data, bytes);
  return bytes;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t bytes = size * n;
  std::string_view line(data, bytes);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
  if (line.rfind("HTTP/", 0) == 0) {
    t->response->headers.clear();  // a new response (after 100 Continue)
    return bytes;
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return bytes;
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  t->response->headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
  return bytes;
}

struct CurlSlist {
  curl_slist* list = nullptr;
  ~CurlSlist() { curl_slist_free_all(list); }
  bool Append(const std::string& s) {
    curl_slist* next = curl_slist_append(list, s.c_str());
    if (next == nullptr) return false;
    list = next;
    return true;
  }
};

void SetBlob(CURL* curl, CURLoption option, const std::string& pem) {
  curl_blob blob;
  blob.data = const_cast<char*>(pem.data());
  blob.len = pem.size();
  blob.flags = CURL_BLOB_COPY;
  curl_easy_setopt(curl, option, &blob);
}

}  // namespace

std::string HttpResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (EqualsIgnoreCase(k, name)) return v;
  }
  return "";
}

std::string UrlAuthority(std::string_view url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return "";
  std::string_view rest = url.substr(scheme + 3);
  const size_t end = rest.find_first_of("/?#");
  if (end != std::string_view::npos) rest = rest.substr(0, end);
  const size_t at = rest.rfind('@');
  if (at != std::string_view::npos) rest = rest.substr(at + 1);
  return std::string(rest);
}

CurlHttpClient::CurlHttpClient(size_t max_body_bytes) : max_body_bytes_(max_body_bytes) {
  std::call_once(g_curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

CurlHttpClient::~CurlHttpClient() {
  for (void* h : idle_) curl_easy_cleanup(static_cast<CURL*>(h));
}

void* CurlHttpClient::Acquire() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      void* h = idle_.back();
      idle_.pop_back();
      return h;
    }
  }
  return curl_easy_init();
}

void CurlHttpClient::Release(void* handle) {
  curl_easy_reset(static_cast<CURL*>(handle));  // keeps the connection cache
  std::lock_guard<std::mutex> lock(mu_);
  if (idle_.size() < 8) {
    idle_.push_back(handle);
    return;
  }
  curl_easy_cleanup(static_cast<CURL*>(handle));
}

Result<HttpResponse> CurlHttpClient::Send(const HttpRequest& request) {
  const std::string host = UrlAuthority(request.url);
  if (host.empty()) return Status::InvalidArgument("not an absolute URL: " + request.url);
  CURL* curl = static_cast<CURL*>(Acquire());
  if (curl == nullptr) return Status::Internal("curl_easy_init failed");

  HttpResponse response;
  Transfer transfer{&response, max_body_bytes_};
  CurlSlist headers;
  bool has_content_type = false;
  for (const auto& [k, v] : request.headers) {
    if (EqualsIgnoreCase(k, "content-type")) has_content_type = true;
    headers.Append(k + ": " + v);
  }
  if (!has_content_type) headers.Append("Content-Type:");  // no default form type
  headers.Append("Expect:");                               // no 100-continue round trip

  char error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::min<int64_t>(request.timeout.count(), 10'000)));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.list);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &transfer);
  if (request.bypass_proxy) curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");

  if (request.method == "GET") {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  } else if (request.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
    if (request.method != "POST") {
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    }
  }

  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, request.tls.verify_peer ? 1L : 0L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, request.tls.verify_peer ? 2L : 0L);
  if (!request.tls.ca_pem.empty()) SetBlob(curl, CURLOPT_CAINFO_BLOB, request.tls.ca_pem);
  if (!request.tls.client_cert_pem.empty()) {
    SetBlob(curl, CURLOPT_SSLCERT_BLOB, request.tls.client_cert_pem);
    curl_easy_setopt(curl, CURLOPT_SSLCERTTYPE, "PEM");
  }
  if (!request.tls.client_key_pem.empty()) {
    SetBlob(curl, CURLOPT_SSLKEY_BLOB, request.tls.client_key_pem);
    curl_easy_setopt(curl, CURLOPT_SSLKEYTYPE, "PEM");
  }

  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  Release(curl);

  if (transfer.too_large) {
    return Status::ResourceExhausted(request.method + " " + host + ": the answer exceeds " +
                                     std::to_string(max_body_bytes_) + " bytes");
  }
  if (rc != CURLE_OK) {
    const std::string why = error[0] != '\0' ? std::string(error) : curl_easy_strerror(rc);
    const std::string msg = request.method + " " + host + ": " + why;
    if (rc == CURLE_OPERATION_TIMEDOUT) return Status::DeadlineExceeded(msg);
    return Status::Unavailable(msg);
  }
  response.status = static_cast<int>(status);
  return response;
}

}  // namespace sextant::cloud
