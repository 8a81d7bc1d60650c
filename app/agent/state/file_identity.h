// What identifies the contents of a file without reading it: device, inode, size, and the
// modification and status-change times in nanoseconds. Any write, truncate, rename over it,
// chmod or touch changes at least one of them (ctime cannot be set from user space), so a
// digest cached under an unchanged FileIdentity is the file's digest. Used by the model store
// and the replica manager to hash a model once and again after any change.
// Thread-safety: a value type and a pure function.
#pragma once

#include <sys/stat.h>

#include <compare>
#include <cstdint>
#include <filesystem>
#include <optional>

namespace sextant::agent {

struct FileIdentity {
  uint64_t dev = 0;
  uint64_t ino = 0;
  int64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  auto operator<=>(const FileIdentity&) const = default;
};

// nullopt when the file cannot be stat'ed.
inline std::optional<FileIdentity> IdentifyFile(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return std::nullopt;
  return FileIdentity{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino),
                      static_cast<int64_t>(st.st_size),
                      static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
                      static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec};
}

}  // namespace sextant::agent
