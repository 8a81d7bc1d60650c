// CpuInventorySource: the CPU as the agent's device (model name and cores from /proc/cpuinfo,
// memory from /proc/meminfo), used where no GPU library is present. Also the fallback the
// gRPC service uses when no other InventorySource is wired.
// Thread-safety: Snapshot() is safe from any thread (reads /proc each call; no shared state).
#pragma once

#include <filesystem>

#include "app/agent/state/sources.h"

namespace sextant::agent {

class CpuInventorySource : public InventorySource {
 public:
  // proc_dir is "/proc" except in tests.
  explicit CpuInventorySource(std::filesystem::path proc_dir = "/proc")
      : proc_dir_(std::move(proc_dir)) {}
  InventoryInfo Snapshot() override;
  // The CPU device alone (id "cpu", kind "cpu").
  DeviceInfo CpuDevice() const;

 private:
  std::filesystem::path proc_dir_;
};

// A CloudContextSource that always returns the same context (from the config, or "on-prem").
class StaticCloudContextSource : public CloudContextSource {
 public:
  explicit StaticCloudContextSource(CloudContextInfo info) : info_(std::move(info)) {}
  CloudContextInfo Context() override { return info_; }

 private:
  const CloudContextInfo info_;
};

}  // namespace sextant::agent
