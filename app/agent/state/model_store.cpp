#include "app/agent/state/model_store.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>

#include "app/agent/replicas/replica_manager.h"

namespace sextant::agent {

namespace {

std::filesystem::path StripFileScheme(const std::filesystem::path& p) {
  const std::string s = p.string();
  return s.rfind("file://", 0) == 0 ? std::filesystem::path(s.substr(7)) : p;
}

}  // namespace

ModelStore::ModelStore(std::filesystem::path root) : root_(StripFileScheme(root)) {}

Result<std::filesystem::path> ModelStore::Locate(const std::string& uri) const {
  SEXTANT_ASSIGN_OR_RETURN(std::filesystem::path file,
                           agent::ReplicaManager::ResolveModelPath(root_, uri));
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) {
    return Status::FailedPrecondition("model " + uri + " not in this agent's store");
  }
  return file;
}

Result<std::string> ModelStore::Sha256(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    return Status::NotFound("model file " + file.string() + " is not in the model store");
  }
  Key key{file.string(),
          static_cast<uint64_t>(st.st_dev),
          static_cast<uint64_t>(st.st_ino),
          static_cast<int64_t>(st.st_size),
          static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
          static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec};
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(key.path);
    if (it != cache_.end() && it->second.first == key) return it->second.second;
  }
  SEXTANT_ASSIGN_OR_RETURN(std::string hex, agent::Sha256OfFile(file));
  // The file may have changed while it was read: cache only when it still has the same stat.
  struct stat after {};
  if (::stat(file.c_str(), &after) == 0 && after.st_size == st.st_size &&
      after.st_mtim.tv_sec == st.st_mtim.tv_sec && after.st_mtim.tv_nsec == st.st_mtim.tv_nsec &&
      after.st_ctim.tv_sec == st.st_ctim.tv_sec && after.st_ctim.tv_nsec == st.st_ctim.tv_nsec) {
    std::lock_guard<std::mutex> lock(mu_);
    cache_[key.path] = {key, hex};
  }
  return hex;
}

Result<ModelStore::Verified> ModelStore::Verify(const std::string& uri, const std::string& sha256) {
  std::string want = sha256;
  if (want.rfind("sha256:", 0) == 0) want = want.substr(7);
  std::transform(want.begin(), want.end(), want.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (want.size() != 64 ||
      !std::all_of(want.begin(), want.end(), [](unsigned char c) { return std::isxdigit(c); })) {
    return Status::InvalidArgument("model.sha256 '" + sha256 + "' is not 64 hex digits");
  }
  Verified v;
  SEXTANT_ASSIGN_OR_RETURN(v.file, Locate(uri));
  SEXTANT_ASSIGN_OR_RETURN(v.sha256, Sha256(v.file));
  if (v.sha256 != want) {
    return Status::FailedPrecondition("model sha256 mismatch: store has " + v.sha256 +
                                      ", spec wants " + want);
  }
  return v;
}

}  // namespace sextant::agent
