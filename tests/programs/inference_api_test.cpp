// The inference API of a real sextant-agent process, used and attacked as an application on the
// customer network would: keys made with `sextant-agent apikeys` (401 without one, a running
// agent sees new and revoked keys, scopes, the audit log names the key and never the prompt),
// hostile bodies (a gzip bomb, 4 MB of "[", 1e309, 100 MB), 500 slow connections while
// /healthz must answer within a second, and a second agent on a taken port.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "app/common/deployment_spec.h"
#include "connectors/agent/agent_client.h"
#include "engine/base/sha256.h"
#include "engine/gguf/synth.h"
#include "tests/support/command.h"

namespace sextant::rpc {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using sextant::testing::RunCommand;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    return 0;
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

int Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string Gzip(const std::string& data) {
  z_stream zs{};
  deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, data.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

class InferenceApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sextant-api-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "models");
    auto r = RunCommand(std::string(SEXTANT_AGENT_BIN) + " certs init --out " +
                        (dir_ / "tls").string() + " --trust-domain example.org");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    fs::copy_file(fs::path(SEXTANT_SOURCE_DIR) / "resources/policies/agent-policy.example.yaml",
                  dir_ / "policy.yaml");
  }
  void TearDown() override {
    StopAgent();
    if (!HasFailure()) fs::remove_all(dir_);
  }

  // agent.yaml with `http_extra` under http: (indented by the caller) and `top_extra` at the top
  // level.
  fs::path WriteConfig(const std::string& name, const std::string& grpc_listen,
                       const std::string& http_listen, const std::string& http_extra = "",
                       const std::string& top_extra = "") {
    const fs::path path = dir_ / (name + ".yaml");
    std::ofstream(path) << "name: " << name << "\ngrpc:\n  listen: " << grpc_listen
                        << "\n  ca: tls/ca.pem\n  cert: tls/server.pem\n  key: tls/server.key\n"
                           "http:\n  listen: "
                        << http_listen << "\n"
                        << http_extra << "policy: policy.yaml\nstate_dir: state-" << name
                        << "\nmodel_store: models\nlimits:\n  shutdown_grace_ms: 2000\n"
                        << top_extra;
    return path;
  }

  void StartAgent(const fs::path& config, const std::string& name) {
    state_ = dir_ / ("state-" + name);
    log_ = dir_ / (name + ".log");
    config_ = config;
    fs::remove(state_ / "grpc.addr");
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execl(SEXTANT_AGENT_BIN, SEXTANT_AGENT_BIN, "serve", "--config", config.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    const auto end = Clock::now() + milliseconds(20000);
    while (Clock::now() < end) {
      const std::string addr = Slurp(state_ / "grpc.addr");
      if (!addr.empty() && addr.back() == '\n') {
        grpc_addr_ = addr.substr(0, addr.size() - 1);
        const std::string http = Slurp(state_ / "http.addr");
        http_port_ = std::stoi(http.substr(http.rfind(':') + 1));
        return;
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL() << "agent exited early: " << Slurp(log_);
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    FAIL() << "agent did not listen in time: " << Slurp(log_);
  }

  // SIGTERM, and the exit status (-1 when it did not exit in time).
  int StopAgent() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    const auto end = Clock::now() + milliseconds(10000);
    while (Clock::now() < end) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    return -1;
  }

  std::string ApiKeys(const std::string& args, int* exit_code = nullptr,
                      std::string* stderr_text = nullptr) {
    const fs::path err = dir_ / "apikeys.err";
    const std::string cmd = std::string(SEXTANT_AGENT_BIN) + " apikeys " + args + " --config " +
                            config_.string() + " 2>" + err.string();
    FILE* pipe = ::popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
    const int status = ::pclose(pipe);
    if (exit_code != nullptr) *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (stderr_text != nullptr) *stderr_text = Slurp(err);
    return out;
  }

  httplib::Client Client(const std::string& key = "") {
    httplib::Client c("127.0.0.1", http_port_);
    c.set_connection_timeout(5, 0);
    c.set_read_timeout(60, 0);
    if (!key.empty()) c.set_bearer_token_auth(key);
    return c;
  }

  // Polls until `request` answers `status` (a running agent picks up key changes within a
  // fraction of a second).
  template <typename F>
  int EventuallyStatus(int status, F request) {
    int last = 0;
    const auto end = Clock::now() + milliseconds(3000);
    while (Clock::now() < end) {
      auto res = request();
      last = res ? res->status : -1;
      if (last == status) return last;
      std::this_thread::sleep_for(milliseconds(50));
    }
    return last;
  }

  fs::path dir_, state_, log_, config_;
  std::string grpc_addr_;
  int http_port_ = 0;
  pid_t pid_ = -1;
};

TEST_F(InferenceApiTest, KeysFromTheCommandLineAuthenticateAndEveryCallIsAudited) {
  // A model in the agent's store: stories260K when present, else one of its shape.
  const fs::path shared = fs::path(SEXTANT_SHARED_DIR) / "models" / "stories260K.gguf";
  const fs::path model = dir_ / "models" / "stories260K.gguf";
  if (fs::exists(shared)) {
    fs::copy_file(shared, model);
  } else {
    ASSERT_TRUE(gguf::SynthesizeLlama(*gguf::LlamaShapeByName("stories260k-like"),
                                      gguf::SynthType::kF32, 1, model)
                    .ok());
  }
  // The customer admits deployments of this model (the agent admits nothing by default).
  auto model_sha = Sha256FileHex(model);
  ASSERT_TRUE(model_sha.ok());
  const fs::path config = WriteConfig("agent", "127.0.0.1:0", "127.0.0.1:0", "",
                                      "admission:\n  allow_models: ['" + *model_sha + "']\n");
  ASSERT_NO_FATAL_FAILURE(StartAgent(config, "agent"));

  // Probes need no key; the API does.
  auto health = Client().Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  const std::string body = R"({"model":"tiny","prompt":"the secret prompt","max_tokens":4,)"
                           R"("temperature":0,"ignore_eos":true})";
  auto anonymous = Client().Post("/v1/completions", body, "application/json");
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401);
  EXPECT_EQ(anonymous->get_header_value("WWW-Authenticate"), "Bearer");
  json e = json::parse(anonymous->body)["error"];
  EXPECT_EQ(e["code"], "missing_api_key");
  EXPECT_EQ(e["type"], "invalid_request_error");
  auto forged = Client("sk-sxt-forged").Post("/v1/completions", body, "application/json");
  ASSERT_TRUE(forged);
  EXPECT_EQ(forged->status, 401);
  EXPECT_EQ(json::parse(forged->body)["error"]["code"], "invalid_api_key");
  auto models = Client().Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(models->status, 401);

  // A key made while the agent runs: printed once, alone on one line.
  int code = -1;
  std::string notes;
  const std::string out = ApiKeys("add chat-app", &code, &notes);
  ASSERT_EQ(code, 0) << out << notes;
  ASSERT_TRUE(std::regex_match(out, std::regex("sk-sxt-[A-Za-z0-9_-]{43}\n"))) << out;
  const std::string key = out.substr(0, out.size() - 1);
  EXPECT_NE(notes.find("only time"), std::string::npos) << notes;
  const std::string list = ApiKeys("list -o json", &code);
  ASSERT_EQ(code, 0);
  EXPECT_EQ(list.find(key), std::string::npos) << "the key is listed";
  EXPECT_EQ(json::parse(list)[0]["name"], "chat-app");

  // The key gets through (the model is not deployed yet: 404, not 401).
  EXPECT_EQ(EventuallyStatus(
                404, [&] { return Client(key).Post("/v1/completions", body, "application/json"); }),
            404);

  // Deploy the model (as the customer's admin, over gRPC) and complete with the key.
  auto sha = Sha256FileHex(model);
  ASSERT_TRUE(sha.ok());
  auto spec = spec::ParseDeploymentSpec(
      "apiVersion: sextant/v1\nkind: Deployment\nname: tiny\nmodel:\n  uri: stories260K.gguf\n"
      "  sha256: " +
      *sha +
      "\nengine:\n  backend: cpu\n  threads: 1\n  contextLength: 256\nvalidation:\n"
      "  maxTokens: 4\n  prompts:\n    - Once upon a time\n");
  ASSERT_TRUE(spec.ok()) << spec.errors[0].ToString();
  AgentClientOptions o;
  o.target = grpc_addr_;
  o.deadline = milliseconds(10000);
  ASSERT_TRUE(LoadClientIdentity(dir_ / "tls", "customer-admin", &o).ok());
  auto admin = AgentClient::Connect(o);
  ASSERT_TRUE(admin.ok());
  v1::ApplyDeploymentRequest apply;
  apply.mutable_spec()->set_name("tiny");
  apply.mutable_spec()->set_spec_json(spec::ToCanonicalJsonValue(spec.spec).dump());
  apply.mutable_spec()->set_spec_digest(spec::SpecDigest(spec.spec));
  apply.mutable_spec()->set_model_uri("stories260K.gguf");
  apply.mutable_spec()->set_model_sha256(*sha);
  auto applied = (*admin)->ApplyDeployment(apply);
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  EXPECT_EQ(EventuallyStatus(200, [&] { return Client().Get("/readyz"); }), 200);
  auto done = Client(key).Post("/v1/completions", body, "application/json");
  ASSERT_TRUE(done);
  ASSERT_EQ(done->status, 200) << done->body;
  EXPECT_EQ(json::parse(done->body)["usage"]["completion_tokens"], 4);
  auto listed = Client(key).Get("/v1/models");
  ASSERT_TRUE(listed);
  EXPECT_EQ(json::parse(listed->body)["data"][0]["id"], "tiny");

  // A key for another deployment is refused this one (and sees none of it).
  const std::string scoped_out = ApiKeys("add other-app --deployment other", &code);
  ASSERT_EQ(code, 0);
  const std::string scoped = scoped_out.substr(0, scoped_out.size() - 1);
  EXPECT_EQ(
      EventuallyStatus(
          403, [&] { return Client(scoped).Post("/v1/completions", body, "application/json"); }),
      403);
  auto scoped_models = Client(scoped).Get("/v1/models");
  ASSERT_TRUE(scoped_models);
  EXPECT_TRUE(json::parse(scoped_models->body)["data"].empty());

  // Revoked: refused at once, without a restart.
  ApiKeys("revoke chat-app", &code);
  ASSERT_EQ(code, 0);
  EXPECT_EQ(EventuallyStatus(
                401, [&] { return Client(key).Post("/v1/completions", body, "application/json"); }),
            401);
  ApiKeys("add chat-app", &code, &notes);
  EXPECT_EQ(code, 1);
  EXPECT_NE(notes.find("exists"), std::string::npos) << notes;

  // The log names the caller, never the prompt.
  EXPECT_NE(Slurp(log_).find("\"key\":\"chat-app\""), std::string::npos);
  ASSERT_EQ(StopAgent(), 0) << Slurp(log_);
  EXPECT_EQ(Slurp(log_).find("secret prompt"), std::string::npos);
  auto verify =
      RunCommand(std::string(SEXTANT_AGENT_BIN) + " audit verify --state " + state_.string());
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((state_ / "audit.db").c_str(), &db), SQLITE_OK);
  auto count = [&](const std::string& where) {
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, ("SELECT COUNT(*) FROM audit_log WHERE " + where).c_str(), -1,
                                 &st, nullptr),
              SQLITE_OK);
    sqlite3_step(st);
    const int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n;
  };
  EXPECT_GE(count("identity='apikey:chat-app' AND role='customer-app' AND "
                  "rpc='POST /v1/completions' AND target='tiny' AND outcome='allowed'"),
            2);
  EXPECT_GE(count("identity='apikey:other-app' AND target='tiny' AND outcome='denied'"), 1);
  EXPECT_EQ(count("rpc='ApiKeys.Add' AND target='chat-app' AND outcome='ok'"), 1);
  EXPECT_EQ(count("rpc='ApiKeys.Add' AND target='chat-app' AND outcome='error: ALREADY_EXISTS'"),
            1);
  EXPECT_EQ(count("rpc='ApiKeys.Revoke' AND target='chat-app' AND outcome='ok'"), 1);
  EXPECT_EQ(count("rpc='ApiKeys.Add' AND target='other-app@other'"), 2);  // allowed, ok
  sqlite3_close(db);
  const std::string audit_bytes = Slurp(state_ / "audit.db") + Slurp(state_ / "audit.db-wal");
  EXPECT_EQ(audit_bytes.find("secret prompt"), std::string::npos);
  EXPECT_EQ(audit_bytes.find(key), std::string::npos);
}

TEST_F(InferenceApiTest, HostileBodiesAreRefusedBeforeTheyCostMemory) {
  const fs::path config = WriteConfig("agent", "127.0.0.1:0", "127.0.0.1:0");
  ASSERT_NO_FATAL_FAILURE(StartAgent(config, "agent"));
  int code = -1;
  const std::string out = ApiKeys("add attacker", &code);
  ASSERT_EQ(code, 0);
  const std::string key = out.substr(0, out.size() - 1);
  httplib::Client c = Client(key);

  // 200 MB of JSON in a 200 KB gzip body: inflating stops at the 4 MiB limit.
  std::string json_bomb = R"({"model":"m","prompt":")";
  json_bomb += std::string(200 << 20, 'a');
  json_bomb += "\"}";
  const std::string bomb = Gzip(json_bomb);
  json_bomb.clear();
  json_bomb.shrink_to_fit();
  ASSERT_LT(bomb.size(), 300u << 10);
  auto inflated =
      c.Post("/v1/completions", {{"Content-Encoding", "gzip"}}, bomb, "application/json");
  ASSERT_TRUE(inflated) << httplib::to_string(inflated.error());
  EXPECT_EQ(inflated->status, 413);
  EXPECT_NE(json::parse(inflated->body)["error"]["message"].get<std::string>().find(
                "inflates to more than 4194304 bytes"),
            std::string::npos)
      << inflated->body;

  // 4 MB of "[": refused at byte 64, before anything is built.
  auto nested = c.Post("/v1/completions", std::string((4 << 20) - 16, '['), "application/json");
  ASSERT_TRUE(nested);
  EXPECT_EQ(nested->status, 400);
  json e = json::parse(nested->body)["error"];
  EXPECT_EQ(e["code"], "json_too_deep");
  EXPECT_NE(e["message"].get<std::string>().find("at byte 64"), std::string::npos) << e;

  // A number that parses to infinity.
  auto infinite = c.Post("/v1/completions", R"({"model":"m","prompt":"x","temperature":1e309})",
                         "application/json");
  ASSERT_TRUE(infinite);
  EXPECT_EQ(infinite->status, 400);
  EXPECT_NE(json::parse(infinite->body)["error"]["message"].get<std::string>().find("too large"),
            std::string::npos)
      << infinite->body;

  // 100 MB announced: refused from the head, before a byte of it is read.
  const int fd = Connect(http_port_);
  ASSERT_GE(fd, 0);
  const std::string head =
      "POST /v1/completions HTTP/1.1\r\nAuthorization: Bearer " + key +
      "\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n";
  ASSERT_EQ(::send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
  char buf[512] = {};
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  const ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
  ::close(fd);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)).rfind("HTTP/1.1 413", 0), 0u) << buf;

  // And the agent is as it was.
  auto health = Client().Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

TEST_F(InferenceApiTest, HealthzAnswersWithinASecondWhile500SlowConnectionsAreOpen) {
  // This process holds 500 sockets: room for them.
  rlimit files{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &files), 0);
  if (files.rlim_cur < 1200) {
    files.rlim_cur = std::min<rlim_t>(4096, files.rlim_max);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &files), 0);
  }
  if (files.rlim_cur < 1200) GTEST_SKIP() << "the descriptor limit is " << files.rlim_cur;
  // Every connection comes from 127.0.0.1: the per-address limit is raised so that all 500
  // are really open (the listener's design, not the per-client limit, keeps /healthz up).
  const fs::path config = WriteConfig("agent", "127.0.0.1:0", "127.0.0.1:0",
                                      "  limits:\n    max_connections_per_client: 1000\n"
                                      "    header_timeout_ms: 6000\n");
  ASSERT_NO_FATAL_FAILURE(StartAgent(config, "agent"));

  constexpr int kSlow = 500;
  std::vector<int> slow;
  for (int i = 0; i < kSlow; ++i) {
    const int fd = Connect(http_port_);
    ASSERT_GE(fd, 0) << "connection " << i;
    const std::string start = "POST /v1/completions HTTP/1.1\r\nHost: agent\r\n";
    ASSERT_EQ(::send(fd, start.data(), start.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(start.size()));
    slow.push_back(fd);
  }
  // Each slow connection sends one more header line every 500 ms; meanwhile /healthz is asked
  // five times on fresh connections.
  std::atomic<bool> stop{false};
  std::thread trickle([&] {
    for (int round = 0; !stop.load() && round < 20; ++round) {
      for (int fd : slow) {
        const std::string line = "X-Trickle-" + std::to_string(round) + ": 1\r\n";
        (void)!::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      }
      std::this_thread::sleep_for(milliseconds(500));
    }
  });
  std::vector<double> probe_ms;
  for (int i = 0; i < 5; ++i) {
    httplib::Client probe("127.0.0.1", http_port_);
    probe.set_connection_timeout(1, 0);
    probe.set_read_timeout(1, 0);
    const auto t0 = Clock::now();
    auto res = probe.Get("/healthz");
    probe_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    ASSERT_TRUE(res) << "probe " << i << ": " << httplib::to_string(res.error());
    EXPECT_EQ(res->status, 200);
    EXPECT_LT(probe_ms.back(), 1000.0) << "probe " << i;
    std::this_thread::sleep_for(milliseconds(400));
  }
  // The trickle stops (well before the deadline, so no line arrives after the server closes);
  // the head deadline (6 s) then closes every slow connection, with a 408.
  stop = true;
  trickle.join();
  int closed = 0;
  int told_408 = 0;
  const auto end = Clock::now() + milliseconds(12000);
  for (int fd : slow) {
    while (Clock::now() < end) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[1024];
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n > 0 && std::string(buf, static_cast<size_t>(n)).rfind("HTTP/1.1 408", 0) == 0) {
        ++told_408;
      }
      if (n <= 0) {
        ++closed;
        break;
      }
    }
  }
  for (int fd : slow) ::close(fd);
  EXPECT_EQ(closed, kSlow);
  EXPECT_EQ(told_408, kSlow);
  std::printf("healthz under %d slow connections: %.1f %.1f %.1f %.1f %.1f ms\n", kSlow,
              probe_ms[0], probe_ms[1], probe_ms[2], probe_ms[3], probe_ms[4]);
}

TEST_F(InferenceApiTest, ASecondAgentOnATakenPortExitsNamingTheReason) {
  const int grpc_port = FreePort();
  const int http_port = FreePort();
  ASSERT_GT(grpc_port, 0);
  ASSERT_GT(http_port, 0);
  const std::string grpc = "127.0.0.1:" + std::to_string(grpc_port);
  const std::string http = "127.0.0.1:" + std::to_string(http_port);
  ASSERT_NO_FATAL_FAILURE(StartAgent(WriteConfig("first", grpc, http), "first"));

  // Same gRPC port.
  auto second = RunCommand("timeout 30 " + std::string(SEXTANT_AGENT_BIN) + " serve --config " +
                           WriteConfig("second", grpc, "127.0.0.1:0").string());
  EXPECT_EQ(second.exit_code, 1) << second.output;
  EXPECT_NE(second.output.find("grpc listener: cannot bind " + grpc + ": Address already in use"),
            std::string::npos)
      << second.output;
  // Same HTTP port.
  auto third = RunCommand("timeout 30 " + std::string(SEXTANT_AGENT_BIN) + " serve --config " +
                          WriteConfig("third", "127.0.0.1:0", http).string());
  EXPECT_EQ(third.exit_code, 1) << third.output;
  EXPECT_NE(third.output.find("http listener: cannot bind " + http + ": Address already in use"),
            std::string::npos)
      << third.output;
  // The first one still answers on both.
  auto health = Client().Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  AgentClientOptions o;
  o.target = grpc_addr_;
  o.deadline = milliseconds(5000);
  ASSERT_TRUE(LoadClientIdentity(dir_ / "tls", "customer-auditor", &o).ok());
  auto auditor = AgentClient::Connect(o);
  ASSERT_TRUE(auditor.ok());
  EXPECT_TRUE((*auditor)->WhoAmI().ok());
}

}  // namespace
}  // namespace sextant::rpc
