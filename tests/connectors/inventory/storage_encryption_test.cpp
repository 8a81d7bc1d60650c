// Encryption at rest as observed, never declared: dm-crypt found on the device (or below an LVM
// volume) gives "true" naming the device; a plain partition gives "unknown" saying why; a
// directory that does not exist gives "unknown". Device trees are built as sysfs lays them out.
#include "connectors/inventory/storage_encryption.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace sextant::inventory {
namespace {

namespace fs = std::filesystem;

class StorageEncryptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("sextant-sysfs-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "sys" / "dev" / "block");
    fs::create_directories(root_ / "sys" / "class" / "block");
    fs::create_directories(root_ / "data");
  }
  void TearDown() override { fs::remove_all(root_); }

  // A block device at sys/class/block/<name>, reachable as sys/dev/block/<majmin>.
  fs::path Device(const std::string& name, const std::string& majmin) {
    const fs::path dev = root_ / "sys" / "class" / "block" / name;
    fs::create_directories(dev);
    fs::create_directory_symlink(dev, root_ / "sys" / "dev" / "block" / majmin);
    return dev;
  }
  static void Write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text << "\n";
  }
  StorageProbeOptions Options(unsigned maj, unsigned min) {
    StorageProbeOptions o;
    o.sys_root = root_ / "sys";
    o.device = std::make_pair(maj, min);
    return o;
  }

  fs::path root_;
};

TEST_F(StorageEncryptionTest, DmCryptDeviceIsEncrypted) {
  const fs::path dm = Device("dm-0", "253:0");
  Write(dm / "dm" / "uuid", "CRYPT-LUKS2-0123456789abcdef-luks-data");
  Write(dm / "dm" / "name", "luks-data");
  auto o = ObserveEncryptionAtRest(root_ / "data", Options(253, 0));
  EXPECT_EQ(o.value, "true") << o.evidence;
  EXPECT_NE(o.evidence.find("dm-crypt device luks-data (CRYPT-LUKS2"), std::string::npos)
      << o.evidence;
  EXPECT_EQ(o.source.rfind("measured: ", 0), 0u) << o.source;
}

TEST_F(StorageEncryptionTest, LvmOnLuksIsEncryptedThroughItsSlaves) {
  const fs::path crypt = Device("dm-1", "253:1");
  Write(crypt / "dm" / "uuid", "CRYPT-LUKS1-feed-pv");
  const fs::path lv = Device("dm-2", "253:2");
  Write(lv / "dm" / "uuid", "LVM-abcdef");
  Write(lv / "dm" / "name", "vg-models");
  fs::create_directories(lv / "slaves" / "dm-1");
  auto o = ObserveEncryptionAtRest(root_ / "data", Options(253, 2));
  EXPECT_EQ(o.value, "true") << o.evidence;
  EXPECT_NE(o.evidence.find("vg-models on dm-crypt device"), std::string::npos) << o.evidence;
}

TEST_F(StorageEncryptionTest, APlainPartitionOrAnLvmOnPlainDisksIsUnknownWithTheReason) {
  const fs::path part = Device("nvme0n1p2", "259:2");
  Write(part / "partition", "2");
  auto o = ObserveEncryptionAtRest(root_ / "data", Options(259, 2));
  EXPECT_EQ(o.value, "unknown");
  EXPECT_NE(o.evidence.find("no dm-crypt layer"), std::string::npos) << o.evidence;
  EXPECT_NE(o.evidence.find("cannot be observed"), std::string::npos) << o.evidence;

  const fs::path lv = Device("dm-3", "253:3");
  Write(lv / "dm" / "uuid", "LVM-plain");
  fs::create_directories(lv / "slaves" / "nvme0n1p2");
  EXPECT_EQ(ObserveEncryptionAtRest(root_ / "data", Options(253, 3)).value, "unknown");
}

TEST_F(StorageEncryptionTest, WhatCannotBeLookedAtIsUnknown) {
  auto missing = ObserveEncryptionAtRest(root_ / "nope" / "deeper");
  EXPECT_EQ(missing.value, "unknown");
  EXPECT_NE(missing.evidence.find("cannot stat"), std::string::npos) << missing.evidence;
  auto no_sysfs = ObserveEncryptionAtRest(root_ / "data", Options(7, 99));
  EXPECT_EQ(no_sysfs.value, "unknown");
  EXPECT_NE(no_sysfs.evidence.find("no sysfs entry"), std::string::npos) << no_sysfs.evidence;
  // This machine's own temporary directory: whatever it is, the answer names what was seen.
  auto here = ObserveEncryptionAtRest(fs::temp_directory_path());
  EXPECT_TRUE(here.value == "true" || here.value == "unknown") << here.value;
  EXPECT_FALSE(here.evidence.empty());
}

}  // namespace
}  // namespace sextant::inventory
