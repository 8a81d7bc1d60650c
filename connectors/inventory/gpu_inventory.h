// DeviceInventory: the agent's devices. GPUs come from NVML (libnvidia-ml.so.1) and ROCm SMI
// (librocm_smi64.so), each loaded with dlopen at run time through a handful of function pointers
// declared here (no vendor headers, no link-time dependency). Where neither library loads, or
// neither finds a device, the CPU is reported as the device (model, cores, memory from /proc).
// Nothing here fails because a GPU library is absent: a library that is missing, lacks a symbol
// or fails to initialise only leaves its devices out, and `notes()` says why.
//
// Each Snapshot() reads fresh figures (utilization, memory, temperature, power). Values a
// library does not report stay at -1 (see agent::DeviceInfo).
//
// Thread-safety: Snapshot() and notes() are safe from any thread (one mutex around the vendor
// calls; NVML and ROCm SMI handles are opened once).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "app/agent/metrics/registry.h"
#include "app/agent/state/sources.h"

namespace sextant::inventory {

struct DeviceInventoryOptions {
  // Library names tried with dlopen; empty disables that vendor.
  std::string nvml_library = "libnvidia-ml.so.1";
  std::string rocm_smi_library = "librocm_smi64.so";
  std::filesystem::path proc_dir = "/proc";  // for the CPU fallback and its utilization
  std::string node_name;                     // InventoryInfo::node; empty: the host name
};

class DeviceInventory : public agent::InventorySource {
 public:
  explicit DeviceInventory(DeviceInventoryOptions options = {});
  ~DeviceInventory() override;
  DeviceInventory(const DeviceInventory&) = delete;
  DeviceInventory& operator=(const DeviceInventory&) = delete;

  agent::InventoryInfo Snapshot() override;

  // One line per library tried: "nvml: loaded, 8 devices", "rocm-smi: librocm_smi64.so: cannot
  // open shared object file".
  std::vector<std::string> notes() const;

  // The CPU as a device: id "cpu", kind "cpu", model and cores from cpuinfo, memory from meminfo
  // (agent::CpuInventorySource), utilization from /proc/stat since the previous call (-1 on the
  // first).
  agent::DeviceInfo CpuDevice();

 private:
  struct Nvml;
  struct RocmSmi;
  const DeviceInventoryOptions options_;
  mutable std::mutex mu_;
  std::unique_ptr<Nvml> nvml_;      // GUARDED_BY(mu_)
  std::unique_ptr<RocmSmi> rocm_;   // GUARDED_BY(mu_)
  std::vector<std::string> notes_;  // GUARDED_BY(mu_)
  uint64_t last_busy_ = 0;          // GUARDED_BY(mu_): /proc/stat jiffies
  uint64_t last_total_ = 0;         // GUARDED_BY(mu_)
  double last_utilization_ = -1;    // GUARDED_BY(mu_)
};

// Registers per-device gauges on `registry`, sampled from `source` at scrape time (at most one
// snapshot per `min_interval`):
//   sextant_device_utilization_ratio{device,kind,model}    0..1
//   sextant_device_memory_used_bytes{device,kind,model}
//   sextant_device_memory_total_bytes{device,kind,model}
//   sextant_device_temperature_celsius{device,kind,model}
//   sextant_device_power_watts{device,kind,model}
// Readings a device does not report (-1) are left out. `source` must outlive the registry's
// scrapes; keep the returned handle alive as long as the hook may run (dropping it detaches the
// hook).
std::shared_ptr<void> ExportDeviceMetrics(
    agent::InventorySource& source, agent::Registry& registry,
    std::chrono::milliseconds min_interval = std::chrono::milliseconds(1000));

}  // namespace sextant::inventory
