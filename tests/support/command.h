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

}  // namespace sextant::testing
