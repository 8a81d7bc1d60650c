// Encryption at rest as the agent can observe it, for a directory (its state, its model store):
//   - fscrypt: the directory has an encryption policy (FS_IOC_GET_ENCRYPTION_POLICY_EX);
//   - dm-crypt / LUKS: the file system's block device, or a device below it (LVM on LUKS ...),
//     is a device-mapper target whose sysfs dm/uuid starts with "CRYPT-"
//     (/sys/dev/block/MAJ:MIN/dm/uuid, then /sys/class/block/<slave>/... down the stack).
// Either gives "true". Anything else gives "unknown" with the reason: a plain disk or partition
// may still be encrypted below what the agent sees (a cloud provider's volume encryption, a
// self-encrypting drive), and a memory or network file system has no block device to look at.
// The agent never answers "true" from its configuration; a declaration is a separate fact.
//
// Thread-safety: a pure function of the file system it reads.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <utility>

namespace sextant::inventory {

struct EncryptionObservation {
  std::string value = "unknown";  // "true" or "unknown"
  std::string evidence;           // what was observed, or why it cannot be
  std::string source;             // "measured: ..."
};

struct StorageProbeOptions {
  std::filesystem::path sys_root = "/sys";
  std::filesystem::path mountinfo = "/proc/self/mountinfo";
  // The block device (major, minor) to examine instead of the one the path lives on (tests).
  std::optional<std::pair<unsigned, unsigned>> device;
};

EncryptionObservation ObserveEncryptionAtRest(const std::filesystem::path& dir,
                                              const StorageProbeOptions& options = {});

}  // namespace sextant::inventory
