// Running the project's programs from tests, as a user would from a shell.
// Thread-safety: RunCommand may be called from several threads (popen is thread-safe).
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace sextant::testing {

struct CommandResult {
  int exit_code = -1;  // the program's exit status, or -1 when it did not exit normally
  std::string output;  // stdout and stderr together
};

// Runs cmd through /bin/sh with stderr merged into stdout.
inline CommandResult RunCommand(const std::string& cmd) {
  CommandResult result;
  FILE* pipe = popen((cmd + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) result.output.append(buf.data(), n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// The mutual-TLS files of a test, made the way the two parties make them: the console's key and
// signing request (`sextant certs request`, on the vendor's side), then the customer's CA, the
// agent's server certificate and customer identities, and the console's certificate issued
// from the request (`sextant-agent certs init --csr`). In dir: ca.pem, server.pem/.key,
// customer-*.pem/.key, vendor-operator.pem/.key.
inline CommandResult MakeTestPki(const std::string& console_bin, const std::string& agent_bin,
                                 const std::string& dir,
                                 const std::string& trust_domain = "example.org") {
  CommandResult r = RunCommand(console_bin + " certs request --identity vendor/operator" +
                               " --trust-domain " + trust_domain + " --out " + dir);
  if (r.exit_code != 0) return r;
  CommandResult init =
      RunCommand(agent_bin + " certs init --out " + dir + " --trust-domain " + trust_domain +
                 " --csr vendor/operator=" + dir + "/vendor-operator.csr");
  init.output = r.output + init.output;
  return init;
}

}  // namespace sextant::testing
