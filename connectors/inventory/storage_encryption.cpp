#include "connectors/inventory/storage_encryption.h"

#include <fcntl.h>
#include <linux/fscrypt.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace sextant::inventory {

namespace {

namespace fs = std::filesystem;

std::string ReadFirstLine(const fs::path& p) {
  std::ifstream in(p);
  std::string line;
  if (in) std::getline(in, line);
  return line;
}

// The dm-crypt layer at or below the sysfs block device directory `dev` (depth-bounded).
// Returns the evidence when found.
std::optional<std::string> FindCrypt(const StorageProbeOptions& o, const fs::path& dev,
                                     const std::string& name, int depth) {
  if (depth > 8) return std::nullopt;
  std::error_code ec;
  const std::string uuid = ReadFirstLine(dev / "dm" / "uuid");
  if (uuid.rfind("CRYPT-", 0) == 0) {
    const auto dash = uuid.find('-', 6);
    return "dm-crypt device " + name + " (" +
           uuid.substr(0, dash == std::string::npos ? uuid.size() : dash) + ", " +
           (dev / "dm" / "uuid").string() + ")";
  }
  // A stacked device (LVM, RAID) is encrypted when every device below it is.
  std::vector<std::string> slaves;
  for (const auto& e : fs::directory_iterator(dev / "slaves", ec)) {
    slaves.push_back(e.path().filename().string());
  }
  if (slaves.empty()) return std::nullopt;
  std::string evidence;
  for (const auto& s : slaves) {
    auto below = FindCrypt(o, o.sys_root / "class" / "block" / s, s, depth + 1);
    if (!below) return std::nullopt;
    evidence += (evidence.empty() ? "" : "; ") + *below;
  }
  return name + " on " + evidence;
}

// The mount source of the file system with device number `dev` (for file systems whose st_dev
// is not their block device, such as btrfs).
std::string MountSource(const fs::path& mountinfo, unsigned maj, unsigned min,
                        std::string* fstype) {
  std::ifstream in(mountinfo);
  std::string line;
  const std::string want = std::to_string(maj) + ":" + std::to_string(min);
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, parent, majmin;
    ls >> id >> parent >> majmin;
    if (majmin != want) continue;
    const auto sep = line.find(" - ");
    if (sep == std::string::npos) continue;
    std::istringstream rest(line.substr(sep + 3));
    std::string type, source;
    rest >> type >> source;
    *fstype = type;
    return source;
  }
  return {};
}

}  // namespace

EncryptionObservation ObserveEncryptionAtRest(const fs::path& dir, const StorageProbeOptions& o) {
  EncryptionObservation out;
  out.source = "measured: fscrypt policy of " + dir.string() + ", and dm-crypt in " +
               o.sys_root.string() + "/dev/block";
  std::error_code ec;
  fs::path probe = dir;
  if (!fs::is_directory(probe, ec)) probe = probe.parent_path();
  struct stat st {};
  if (::stat(probe.c_str(), &st) != 0) {
    out.evidence = "cannot stat " + probe.string() + ": " + std::strerror(errno);
    return out;
  }
  // fscrypt.
  const int fd = ::open(probe.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    fscrypt_get_policy_ex_arg arg{};
    arg.policy_size = sizeof(arg.policy);
    const int rc = ::ioctl(fd, FS_IOC_GET_ENCRYPTION_POLICY_EX, &arg);
    ::close(fd);
    if (rc == 0) {
      out.value = "true";
      out.evidence =
          "fscrypt policy v" + std::to_string(arg.policy.version) + " on " + probe.string();
      return out;
    }
  }
  // dm-crypt.
  unsigned maj = o.device ? o.device->first : major(st.st_dev);
  unsigned min = o.device ? o.device->second : minor(st.st_dev);
  std::string fstype;
  if (!o.device && maj == 0) {
    // Not a block device number: find what the file system was mounted from.
    const std::string source = MountSource(o.mountinfo, maj, min, &fstype);
    struct stat bs {};
    if (!source.empty() && source[0] == '/' && ::stat(source.c_str(), &bs) == 0 &&
        S_ISBLK(bs.st_mode)) {
      maj = major(bs.st_rdev);
      min = minor(bs.st_rdev);
    } else {
      out.evidence = probe.string() + " is on " +
                     (fstype.empty() ? std::string("a file system") : fstype) +
                     " with no block device to examine (memory, network or overlay); "
                     "encryption at rest cannot be observed";
      return out;
    }
  }
  const std::string majmin = std::to_string(maj) + ":" + std::to_string(min);
  const fs::path dev = o.sys_root / "dev" / "block" / majmin;
  if (!fs::exists(dev, ec)) {
    out.evidence = "no sysfs entry " + dev.string() + " for the device of " + probe.string() +
                   "; encryption at rest cannot be observed";
    return out;
  }
  std::string name = ReadFirstLine(dev / "dm" / "name");
  if (name.empty()) name = fs::canonical(dev, ec).filename().string();
  if (name.empty()) name = majmin;
  if (auto crypt = FindCrypt(o, dev, name, 0)) {
    out.value = "true";
    out.evidence = probe.string() + " is on " + *crypt;
    return out;
  }
  out.evidence = probe.string() + " is on block device " + name + " (" + majmin +
                 ") with no dm-crypt layer and no fscrypt policy; encryption below it (a cloud "
                 "volume's, a self-encrypting drive's) cannot be observed from here";
  return out;
}

}  // namespace sextant::inventory
