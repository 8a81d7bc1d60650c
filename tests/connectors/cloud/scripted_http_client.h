// ScriptedHttpClient: a stand-in for the network in unit tests of the cloud clients. It answers
// requests with the responses queued in order and records every request it was sent. It is for
// what no server here can be made to do on demand (AWS throttling, a session that expires
// mid-call, malformed answers); the end-to-end tests use moto and real HTTP instead.
#pragma once

#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "connectors/cloud/http_client.h"

namespace sextant::testing {

class ScriptedHttpClient final : public cloud::HttpClient {
 public:
  // Queues an answer; `status` 0 queues a transport failure instead.
  void Answer(int status, std::string body, cloud::Headers headers = {}) {
    std::lock_guard<std::mutex> lock(mu_);
    cloud::HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    r.headers = std::move(headers);
    script_.push_back(std::move(r));
  }

  Result<cloud::HttpResponse> Send(const cloud::HttpRequest& request) override {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(request);
    if (script_.empty()) return Status::Internal("ScriptedHttpClient: no answer queued");
    cloud::HttpResponse r = std::move(script_.front());
    script_.pop_front();
    if (r.status == 0) return Status::Unavailable("connection refused (scripted)");
    return r;
  }

  std::vector<cloud::HttpRequest> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  size_t pending() const {
    std::lock_guard<std::mutex> lock(mu_);
    return script_.size();
  }

  static std::string HeaderOf(const cloud::HttpRequest& r, const std::string& name) {
    for (const auto& [k, v] : r.headers) {
      if (k == name) return v;
    }
    return "";
  }

 private:
  mutable std::mutex mu_;
  std::deque<cloud::HttpResponse> script_;
  std::vector<cloud::HttpRequest> requests_;
};

}  // namespace sextant::testing
