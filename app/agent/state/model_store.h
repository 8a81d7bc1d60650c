// ModelStore: the agent's OWN model store (a directory), as the control API checks it. The model
// never travels from the console: an apply names a file in this store and its sha256, and the
// agent verifies that the file is there with that digest before the apply becomes durable, and
// again before it runs validation prompts.
//
// URIs resolve exactly as the replica manager resolves them (ReplicaManager::ResolveModelPath):
// a relative path below the store, any other URI by its last segment; never outside the store.
// "file://NAME" with no path (the spec format's relative form) is NAME below the store.
// File digests are cached by (path, device, inode, size, mtime, ctime), so an unchanged file is
// hashed once and any rewrite of it is hashed again.
//
// No oracle: Verify's error is the same whatever failed (a URI outside the store, a file that is
// not there, one with another sha256): FAILED_PRECONDITION kModelNotAvailable, so a caller who
// probes names and digests learns nothing about what the store holds. What failed, with the
// store's own digest, goes to `detail` for the customer's log and audit record only.
//
// Thread-safety: every method is safe from any thread.
#pragma once

#include <filesystem>
#include <map>
#include <mutex>
#include <string>

#include "app/agent/state/file_identity.h"
#include "engine/base/status.h"

namespace sextant::agent {

// What a caller of the control API learns when a model cannot be used, whatever the cause.
inline constexpr char kModelNotAvailable[] =
    "model not available in this agent's store (the agent's owner can read the cause in its "
    "log and audit record)";

class ModelStore {
 public:
  // `root`: a directory, optionally written as a file:// URI.
  explicit ModelStore(std::filesystem::path root);

  const std::filesystem::path& root() const { return root_; }

  // The file a model URI names in this store. INVALID_ARGUMENT for a URI that names no file or
  // leaves the store; FAILED_PRECONDITION "model URI not in this agent's store" when the
  // file is absent (messages name the URI, never the store's paths: callers may be the vendor).
  Result<std::filesystem::path> Locate(const std::string& uri) const;

  // sha256 of a file, lowercase hex (cached; see above). NOT_FOUND / UNAVAILABLE when the file
  // cannot be read.
  Result<std::string> Sha256(const std::filesystem::path& file);

  // Locate + Sha256 + compare with `sha256` ("sha256:<hex>" or bare hex). INVALID_ARGUMENT
  // when `sha256` is not 64 hex digits (a syntax check of the caller's own input); otherwise
  // any failure is FAILED_PRECONDITION kModelNotAvailable, with what failed in `*detail`
  // ("model sha256 mismatch: store has X, spec wants Y", "model URI not in this agent's store",
  // ...). Returns the file and its digest (bare hex).
  struct Verified {
    std::filesystem::path file;
    std::string sha256;
  };
  Result<Verified> Verify(const std::string& uri, const std::string& sha256,
                          std::string* detail = nullptr);

 private:
  const std::filesystem::path root_;
  std::mutex mu_;
  std::map<std::string, std::pair<FileIdentity, std::string>> cache_;  // GUARDED_BY(mu_), by path
};

}  // namespace sextant::agent
