// What this binary is: version, git commit, build type and the engine backends compiled in.
// Thread-safety: GetBuildInfo() returns an immutable object; safe from any thread.
#pragma once

#include <string>
#include <vector>

namespace sextant {

struct BuildInfo {
  std::string version;     // project version, e.g. "0.1.0"
  std::string git_commit;  // short commit, "-dirty" when built from a modified tree, or "unknown"
  std::string build_type;  // CMake build type
  std::vector<std::string> backends;  // engine backends compiled in: "cpu", "cuda", "hip"

  // One line for --version: "sextant 0.1.0 (commit abc123, RelWithDebInfo, backends: cpu,cuda)".
  std::string VersionLine(const std::string& program) const;
  // An identifier that changes whenever the engine code does: "<version>+<commit>".
  std::string BuildId() const { return version + "+" + git_commit; }
};

const BuildInfo& GetBuildInfo();  // defined in the generated build_info.cpp

}  // namespace sextant
