#include "app/agent/state/model_store.h"

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
  const std::optional<FileIdentity> before = IdentifyFile(file);
  if (!before)
    return Status::NotFound("model file " + file.string() + " is not in the model store");
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(file.string());
    if (it != cache_.end() && it->second.first == *before) return it->second.second;
  }
  SEXTANT_ASSIGN_OR_RETURN(std::string hex, agent::Sha256OfFile(file));
  // The file may have changed while it was read: cache only when it still has the same identity.
  if (IdentifyFile(file) == before) {
    std::lock_guard<std::mutex> lock(mu_);
    cache_[file.string()] = {*before, hex};
  }
  return hex;
}

Result<ModelStore::Verified> ModelStore::Verify(const std::string& uri, const std::string& sha256,
                                                std::string* detail) {
  std::string want = sha256;
  if (want.rfind("sha256:", 0) == 0) want = want.substr(7);
  std::transform(want.begin(), want.end(), want.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (want.size() != 64 ||
      !std::all_of(want.begin(), want.end(), [](unsigned char c) { return std::isxdigit(c); })) {
    return Status::InvalidArgument("model.sha256 '" + sha256 + "' is not 64 hex digits");
  }
  auto unavailable = [&](const Status& why) -> Status {
    if (detail) *detail = why.message();
    return Status::FailedPrecondition(kModelNotAvailable);
  };
  Verified v;
  auto file = Locate(uri);
  if (!file.ok()) return unavailable(file.status());
  v.file = *file;
  auto hex = Sha256(v.file);
  if (!hex.ok()) return unavailable(hex.status());
  v.sha256 = *hex;
  if (v.sha256 != want) {
    return unavailable(Status::FailedPrecondition("model sha256 mismatch: store has " + v.sha256 +
                                                  " for " + uri + ", spec wants " + want));
  }
  return v;
}

}  // namespace sextant::agent
