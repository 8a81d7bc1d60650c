// MotoServer: moto's AWS API test server (`moto_server`), started on 127.0.0.1 with a free
// port for a test and stopped at its end. moto stands in for AWS, which cannot be reached from
// the machines the tests run on; it verifies Signature Version 4 and evaluates IAM policies once
// its authentication is switched on (SetAuthentication(true)).
//
// Where moto_server is absent the tests skip and say so: Find() looks at $SEXTANT_MOTO_SERVER,
// then the path CMake found (SEXTANT_MOTO_SERVER_DEFAULT), then $PATH.
//
// Thread-safety: one test thread drives it.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "connectors/cloud/http_client.h"
#include "engine/base/status.h"

extern char** environ;

namespace sextant::testing {

class MotoServer {
 public:
  MotoServer() = default;
  MotoServer(const MotoServer&) = delete;
  MotoServer& operator=(const MotoServer&) = delete;
  ~MotoServer() { Stop(); }

  // The moto_server program, or nullopt (the reason for a skip).
  static std::optional<std::string> Find() {
    namespace fs = std::filesystem;
    auto usable = [](const std::string& p) {
      std::error_code ec;
      return !p.empty() && fs::exists(p, ec) && access(p.c_str(), X_OK) == 0;
    };
    if (const char* env = std::getenv("SEXTANT_MOTO_SERVER"); env && usable(env)) return env;
#ifdef SEXTANT_MOTO_SERVER_DEFAULT
    if (usable(SEXTANT_MOTO_SERVER_DEFAULT)) return std::string(SEXTANT_MOTO_SERVER_DEFAULT);
#endif
    if (const char* path = std::getenv("PATH")) {
      std::stringstream ss(path);
      std::string dir;
      while (std::getline(ss, dir, ':')) {
        const std::string p = dir + "/moto_server";
        if (usable(p)) return p;
      }
    }
    return std::nullopt;
  }

  // Starts moto_server on 127.0.0.1 and waits (up to 60 s) until it answers.
  Status Start(const std::string& program) {
    log_ = std::filesystem::temp_directory_path() /
           ("sextant-moto-" + std::to_string(getpid()) + "-" +
            std::to_string(reinterpret_cast<uintptr_t>(this)) + ".log");
    for (int attempt = 0; attempt < 3; ++attempt) {
      port_ = FreePort();
      if (port_ == 0) return Status::Unavailable("no free port on 127.0.0.1");
      const std::string port = std::to_string(port_);
      posix_spawn_file_actions_t fa;
      posix_spawn_file_actions_init(&fa);
      posix_spawn_file_actions_addopen(&fa, 1, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      posix_spawn_file_actions_adddup2(&fa, 1, 2);
      const char* argv[] = {program.c_str(), "-H", "127.0.0.1", "-p", port.c_str(), nullptr};
      const int rc = posix_spawn(&pid_, program.c_str(), &fa, nullptr,
                                 const_cast<char* const*>(argv), environ);
      posix_spawn_file_actions_destroy(&fa);
      if (rc != 0) return Status::Unavailable("cannot start " + program);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
          pid_ = -1;
          break;  // exited (the port was taken?): try another port
        }
        auto r = Get("/moto-api/");
        if (r.ok() && r->status == 200) return Status::Ok();
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      if (pid_ > 0) {
        Stop();
        return Status::DeadlineExceeded("moto_server did not answer within 60 s: " + LogTail());
      }
    }
    return Status::Unavailable("moto_server exited at start: " + LogTail());
  }

  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 50; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    std::error_code ec;
    std::filesystem::remove(log_, ec);
  }

  std::string Endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // Forgets every resource (between tests).
  Status Reset() { return Post("/moto-api/reset", ""); }
  // On: every request must be signed by a known key and be allowed by IAM policies.
  Status SetAuthentication(bool on) { return Post("/moto-api/reset-auth", on ? "0" : "inf"); }
  // Queues Cost Explorer answers ({"results": [...]}, moto's format).
  Status SeedCostAndUsage(const std::string& json) {
    return Post("/moto-api/static/ce/cost-and-usage-results", json);
  }

  std::string LogTail() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string s = ss.str();
    return s.size() > 2000 ? s.substr(s.size() - 2000) : s;
  }

 private:
  static int FreePort() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    int port = 0;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    close(fd);
    return port;
  }

  Result<cloud::HttpResponse> Get(const std::string& path) {
    cloud::HttpRequest req;
    req.url = Endpoint() + path;
    req.timeout = std::chrono::seconds(2);
    req.bypass_proxy = true;
    return http_.Send(req);
  }

  Status Post(const std::string& path, const std::string& body) {
    cloud::HttpRequest req;
    req.method = "POST";
    req.url = Endpoint() + path;
    req.body = body;
    req.headers = {{"Content-Type", "application/json"}};
    req.timeout = std::chrono::seconds(10);
    req.bypass_proxy = true;
    auto r = http_.Send(req);
    if (!r.ok()) return r.status();
    if (r->status / 100 != 2) {
      return Status::Internal("moto " + path + ": HTTP " + std::to_string(r->status) + " " +
                              r->body);
    }
    return Status::Ok();
  }

  cloud::CurlHttpClient http_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::filesystem::path log_;
};

}  // namespace sextant::testing
