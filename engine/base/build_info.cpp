#include "engine/base/build_info.h"

namespace sextant {

std::string BuildInfo::VersionLine(const std::string& program) const {
  std::string b;
  for (const auto& name : backends) {
    if (!b.empty()) b += ",";
    b += name;
  }
  return program + " " + version + " (commit " + git_commit + ", " + build_type +
         ", backends: " + b + ")";
}

}  // namespace sextant
