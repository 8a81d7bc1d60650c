#include "app/agent/state/cpu_inventory.h"

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

namespace sextant::agent {

namespace {

std::string Trim(std::string s) {
  const auto b = s.find_first_not_of(" \t");
  const auto e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
  return buf;
}

}  // namespace

DeviceInfo CpuInventorySource::CpuDevice() const {
  DeviceInfo d;
  d.id = "cpu";
  d.kind = "cpu";
  std::ifstream cpuinfo(proc_dir_ / "cpuinfo");
  std::string line;
  int processors = 0;
  while (std::getline(cpuinfo, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = Trim(line.substr(0, colon));
    const std::string value = Trim(line.substr(colon + 1));
    if (key == "processor") ++processors;
    if (d.model.empty() && (key == "model name" || key == "Model" || key == "cpu model")) {
      d.model = value;
    }
  }
  d.cores = processors;
  if (d.cores == 0) d.cores = static_cast<int32_t>(sysconf(_SC_NPROCESSORS_ONLN));
  if (d.model.empty()) d.model = "unknown CPU";
  std::ifstream meminfo(proc_dir_ / "meminfo");
  int64_t total_kb = 0, avail_kb = 0;
  while (std::getline(meminfo, line)) {
    std::istringstream is(line);
    std::string key;
    int64_t kb = 0;
    is >> key >> kb;
    if (key == "MemTotal:") total_kb = kb;
    if (key == "MemAvailable:") avail_kb = kb;
  }
  d.memory_total_bytes = total_kb * 1024;
  d.memory_used_bytes = (total_kb - avail_kb) * 1024;
  return d;
}

InventoryInfo CpuInventorySource::Snapshot() {
  InventoryInfo inv;
  inv.node = HostName();
  inv.devices.push_back(CpuDevice());
  inv.source = "cpu";
  inv.observed_at_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
  return inv;
}

}  // namespace sextant::agent
