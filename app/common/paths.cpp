#include "app/common/paths.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>

namespace sextant {
namespace {

Result<std::filesystem::path> XdgDir(const char* xdg_var, const char* home_suffix) {
  const char* xdg = std::getenv(xdg_var);
  if (xdg != nullptr && xdg[0] == '/') return std::filesystem::path(xdg) / "sextant";
  const char* home = std::getenv("HOME");
  if (home != nullptr && home[0] != '\0') {
    return std::filesystem::path(home) / home_suffix / "sextant";
  }
  return Status::FailedPrecondition(std::string("neither ") + xdg_var +
                                    " nor HOME is set; pass --state DIR");
}

}  // namespace

Result<std::filesystem::path> DefaultConsoleStateDir() {
  return XdgDir("XDG_DATA_HOME", ".local/share");
}

Result<std::filesystem::path> DefaultConsoleConfigDir() {
  return XdgDir("XDG_CONFIG_HOME", ".config");
}

Status EnsurePrivateDir(const std::filesystem::path& dir) {
  std::error_code ec;
  if (std::filesystem::is_directory(dir, ec)) return Status();
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Status::Unavailable("cannot create directory " + dir.string() + ": " + ec.message());
  }
  if (::chmod(dir.c_str(), 0700) != 0) {
    return Status::Unavailable("cannot set mode 0700 on " + dir.string() + ": " +
                               std::strerror(errno));
  }
  return Status();
}

}  // namespace sextant
