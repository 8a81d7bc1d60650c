#include "connectors/cloud/kubernetes/kubeconfig.h"
#include "connectors/cloud/json_fields.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

extern char** environ;

namespace sextant::cloud::kube {

namespace fs = std::filesystem;

namespace {

std::string At(const YAML::Node& n, const std::string& name) {
  const YAML::Mark m = n.Mark();
  if (m.is_null()) return name;
  return name + ":" + std::to_string(m.line + 1);
}

Result<std::string> ReadText(const fs::path& p, const std::string& what) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return Status::NotFound(what + ": cannot read " + p.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The "name"d entry of a list of {name, <kind>: {...}} (clusters, contexts, users).
Result<YAML::Node> Named(const YAML::Node& root, const char* list, const char* kind,
                         const std::string& name, const std::string& file) {
  const YAML::Node items = root[list];
  if (!items || !items.IsSequence()) {
    return Status::InvalidArgument(file + ": no " + std::string(list) + " list");
  }
  for (const auto& item : items) {
    if (!item.IsMap() || !item["name"] || item["name"].as<std::string>("") != name) continue;
    const YAML::Node body = item[kind];
    if (!body || !body.IsMap()) {
      return Status::InvalidArgument(At(item, file) + ": " + list + " entry " + name + " has no " +
                                     kind + " mapping");
    }
    return body;
  }
  return Status::NotFound(file + ": no " + std::string(kind) + " named \"" + name + "\"");
}

std::string Str(const YAML::Node& map, const char* key) {
  const YAML::Node v = map[key];
  return v && v.IsScalar() ? v.as<std::string>() : std::string();
}

fs::path Resolve(const fs::path& dir, const std::string& p) {
  fs::path path(p);
  return path.is_relative() ? dir / path : path;
}

// Data from `<key>-data` (base64) or `<key>` (a file).
Result<std::string> DataOrFile(const YAML::Node& map, const std::string& key, const fs::path& dir,
                               const std::string& where) {
  const std::string data = Str(map, (key + "-data").c_str());
  if (!data.empty()) {
    auto decoded = DecodeBase64(data);
    if (!decoded.ok())
      return Status::InvalidArgument(where + ": " + key + "-data: " + decoded.status().message());
    return *decoded;
  }
  const std::string file = Str(map, key.c_str());
  if (file.empty()) return std::string();
  return ReadText(Resolve(dir, file), where + ": " + key);
}

}  // namespace

Result<std::string> DecodeBase64(std::string_view text) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  bool padding = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '+') {
      v = 62;
    } else if (c == '/') {
      v = 63;
    } else if (c == '=') {
      padding = true;
      continue;
    } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
      continue;
    } else {
      return Status::InvalidArgument("not base64 at offset " + std::to_string(i));
    }
    if (padding)
      return Status::InvalidArgument("data after padding at offset " + std::to_string(i));
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

namespace {

Result<KubeContext> ParseKubeconfigOrThrow(std::string_view yaml, const std::string& name,
                                           const fs::path& dir, const std::string& context) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(name + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  if (!root.IsMap()) return Status::InvalidArgument(name + ": not a kubeconfig (no mapping)");
  KubeContext out;
  out.context = context.empty() ? Str(root, "current-context") : context;
  if (out.context.empty()) {
    return Status::InvalidArgument(name + ": no context given and no current-context");
  }
  SEXTANT_ASSIGN_OR_RETURN(YAML::Node ctx, Named(root, "contexts", "context", out.context, name));
  out.cluster = Str(ctx, "cluster");
  out.user = Str(ctx, "user");
  out.ns = Str(ctx, "namespace");
  if (out.cluster.empty()) {
    return Status::InvalidArgument(At(ctx, name) + ": context " + out.context +
                                   " names no cluster");
  }
  SEXTANT_ASSIGN_OR_RETURN(YAML::Node cluster,
                           Named(root, "clusters", "cluster", out.cluster, name));
  const std::string cwhere = At(cluster, name) + ": cluster " + out.cluster;
  out.server = Str(cluster, "server");
  if (out.server.rfind("https://", 0) != 0 && out.server.rfind("http://", 0) != 0) {
    return Status::InvalidArgument(cwhere + ": server \"" + out.server +
                                   "\" is not an http(s) URL");
  }
  if (!Str(cluster, "tls-server-name").empty()) {
    return Status::Unimplemented(cwhere + ": tls-server-name is not supported");
  }
  if (!Str(cluster, "proxy-url").empty()) {
    return Status::Unimplemented(cwhere + ": proxy-url is not supported (use HTTPS_PROXY)");
  }
  out.insecure_skip_tls_verify = Str(cluster, "insecure-skip-tls-verify") == "true";
  SEXTANT_ASSIGN_OR_RETURN(out.ca_pem, DataOrFile(cluster, "certificate-authority", dir, cwhere));

  if (out.user.empty()) return out;  // anonymous
  SEXTANT_ASSIGN_OR_RETURN(YAML::Node user, Named(root, "users", "user", out.user, name));
  const std::string uwhere = At(user, name) + ": user " + out.user;
  for (const char* unsupported : {"auth-provider", "username", "password"}) {
    if (user[unsupported]) {
      return Status::Unimplemented(uwhere + ": " + unsupported +
                                   " is not supported (use a token, a client certificate or an "
                                   "exec plugin)");
    }
  }
  out.token = Str(user, "token");
  if (out.token.empty() && !Str(user, "tokenFile").empty()) {
    SEXTANT_ASSIGN_OR_RETURN(
        out.token, ReadText(Resolve(dir, Str(user, "tokenFile")), uwhere + ": tokenFile"));
    while (!out.token.empty() && (out.token.back() == '\n' || out.token.back() == '\r')) {
      out.token.pop_back();
    }
  }
  SEXTANT_ASSIGN_OR_RETURN(out.client_cert_pem,
                           DataOrFile(user, "client-certificate", dir, uwhere));
  SEXTANT_ASSIGN_OR_RETURN(out.client_key_pem, DataOrFile(user, "client-key", dir, uwhere));
  if (out.client_cert_pem.empty() != out.client_key_pem.empty()) {
    return Status::InvalidArgument(uwhere +
                                   ": a client certificate needs its key, and a key its "
                                   "certificate");
  }
  if (const YAML::Node exec = user["exec"]) {
    if (!exec.IsMap()) return Status::InvalidArgument(At(exec, name) + ": exec is not a mapping");
    ExecPlugin p;
    p.api_version = Str(exec, "apiVersion");
    p.command = Str(exec, "command");
    if (p.command.empty()) return Status::InvalidArgument(At(exec, name) + ": exec has no command");
    if (const YAML::Node args = exec["args"]) {
      if (!args.IsSequence()) {
        return Status::InvalidArgument(At(args, name) + ": exec args is not a list");
      }
      for (const auto& a : args) p.args.push_back(a.as<std::string>(""));
    }
    if (const YAML::Node env = exec["env"]) {
      if (!env.IsSequence()) {
        return Status::InvalidArgument(At(env, name) + ": exec env is not a list");
      }
      for (const auto& e : env) p.env.emplace_back(Str(e, "name"), Str(e, "value"));
    }
    out.exec = std::move(p);
  }
  return out;
}

}  // namespace

Result<KubeContext> ParseKubeconfig(std::string_view yaml, const std::string& name,
                                    const fs::path& dir, const std::string& context) {
  // yaml-cpp throws on a node of an unexpected kind (a scalar where a mapping belongs): such a
  // file is malformed, reported with the place yaml-cpp names.
  try {
    return ParseKubeconfigOrThrow(yaml, name, dir, context);
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(name + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

Result<KubeContext> LoadKubeconfig(const fs::path& file, const std::string& context) {
  SEXTANT_ASSIGN_OR_RETURN(std::string text, ReadText(file, "kubeconfig"));
  return ParseKubeconfig(text, file.string(), file.parent_path(), context);
}

CallResult<ExecCredentialStatus> RunExecPlugin(const ExecPlugin& plugin, const std::string& server,
                                               std::chrono::milliseconds timeout) {
  auto fail = [&](std::string code, std::string message) {
    CallError e;
    e.api_call = "kubeconfig:exec";
    e.code = std::move(code);
    e.message = plugin.command + ": " + std::move(message);
    e.hint = "run the command by hand to see what it needs (it is the kubeconfig's exec plugin)";
    return e;
  };
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return fail("ExecFailed", std::strerror(errno));
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return fail("ExecFailed", std::strerror(errno));
  }
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  for (const auto& [k, v] : plugin.env) env_strings.push_back(k + "=" + v);
  const nlohmann::json info = {
      {"apiVersion",
       plugin.api_version.empty() ? "client.authentication.k8s.io/v1" : plugin.api_version},
      {"kind", "ExecCredential"},
      {"spec", {{"interactive", false}, {"cluster", {{"server", server}}}}}};
  env_strings.push_back("KUBERNETES_EXEC_INFO=" + info.dump());
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = {plugin.command};
  args.insert(args.end(), plugin.args.begin(), plugin.args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, plugin.command.c_str(), &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    return fail("ExecFailed", std::string("cannot run: ") + std::strerror(rc));
  }
  std::string out, err;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timed_out = false;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    if (poll(fds, 2, static_cast<int>(left.count())) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      char buf[4096];
      const ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
        continue;
      }
      std::string& sink = i == 0 ? out : err;
      if (sink.size() < (1u << 20)) sink.append(buf, static_cast<size_t>(n));
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) close(f.fd);
  }
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  if (timed_out) {
    return fail("Timeout", "no answer within " + std::to_string(timeout.count()) + " ms");
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return fail("ExecFailed", "exited with status " +
                                  std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) +
                                  ": " + err.substr(0, 300));
  }
  nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  if (JsonString(j, "kind") != "ExecCredential" || !JsonField(j, "status").is_object()) {
    return fail("MalformedResponse", "the output is not an ExecCredential with a status");
  }
  const nlohmann::json& s = JsonObject(j, "status");
  ExecCredentialStatus r;
  r.token = JsonString(s, "token");
  r.client_cert_pem = JsonString(s, "clientCertificateData");
  r.client_key_pem = JsonString(s, "clientKeyData");
  if (r.token.empty() && (r.client_cert_pem.empty() || r.client_key_pem.empty())) {
    return fail("MalformedResponse",
                "the ExecCredential gives neither a token nor a client "
                "certificate and key");
  }
  const std::string exp = JsonString(s, "expirationTimestamp");
  if (!exp.empty()) {
    auto t = ParseRfc3339(exp);
    if (!t.ok()) return fail("MalformedResponse", "expirationTimestamp: " + t.status().message());
    r.expiration = *t;
  }
  return r;
}

}  // namespace sextant::cloud::kube
