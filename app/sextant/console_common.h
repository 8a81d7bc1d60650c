// Small helpers shared by the console's fleet, cost, compliance, accounts and targets verbs:
// opening the console store from --state, finding the data files shipped in resources/, and
// reporting an error the CLI way (stderr, naming the verb, exit code 1).
// Thread-safety: functions of their arguments and the environment; call from main's thread.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "app/console/store/console_database.h"
#include "engine/base/status.h"

namespace sextant::cli {

inline Result<std::unique_ptr<console::ConsoleDatabase>> OpenConsoleDatabase(
    const std::string& state) {
  SEXTANT_ASSIGN_OR_RETURN(auto dir, console::ConsoleDatabase::ResolveStateDir(state));
  return console::ConsoleDatabase::Open(dir);
}

// A folder of resources/ (e.g. "prices"): $SEXTANT_RESOURCES/<name>, then
// <exe>/../share/sextant/<name> (installed), then resources/<name> in a folder above the
// executable (a build tree inside the source tree).
inline Result<std::filesystem::path> FindResourceDir(const std::string& name) {
  std::error_code ec;
  if (const char* env = std::getenv("SEXTANT_RESOURCES")) {
    auto p = std::filesystem::path(env) / name;
    if (std::filesystem::is_directory(p, ec)) return p;
  }
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    auto share = exe.parent_path().parent_path() / "share" / "sextant" / name;
    if (std::filesystem::is_directory(share, ec)) return share;
    for (auto dir = exe.parent_path(); !dir.empty() && dir != dir.root_path();
         dir = dir.parent_path()) {
      auto p = dir / "resources" / name;
      if (std::filesystem::is_directory(p, ec)) return p;
    }
  }
  return Status::NotFound("cannot find the resources folder '" + name +
                          "' (set SEXTANT_RESOURCES or pass its path)");
}

inline int ReportError(const char* verb, const Status& s) {
  std::cerr << "sextant " << verb << ": " << s.message() << "\n";
  return 1;
}

// Usage errors exit 2.
inline int UsageError(const char* verb, const std::string& what) {
  std::cerr << "sextant " << verb << ": " << what << "\n";
  return 2;
}

}  // namespace sextant::cli
