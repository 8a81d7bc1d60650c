#include "connectors/inventory/gpu_inventory.h"

#include <dlfcn.h>

#include <unistd.h>
#include <filesystem>

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>

#include "app/agent/state/cpu_inventory.h"

namespace sextant::inventory {

namespace {

std::string DlError() {
  const char* e = dlerror();
  return e != nullptr ? e : "unknown dlopen error";
}

template <typename Fn>
bool Bind(void* lib, const char* name, Fn* out, std::string* missing) {
  *out = reinterpret_cast<Fn>(dlsym(lib, name));
  if (*out == nullptr && missing->empty()) *missing = name;
  return *out != nullptr;
}

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
  return buf;
}

}  // namespace

// ---- NVML: the few entry points used, declared by hand (ABI of nvml.h, stable since CUDA 5) ----
struct DeviceInventory::Nvml {
  using Return = int;  // nvmlReturn_t; 0 = NVML_SUCCESS
  using Device = void*;
  struct Memory {
    unsigned long long total, free, used;
  };
  struct Utilization {
    unsigned int gpu, memory;
  };
  void* lib = nullptr;
  Return (*init)() = nullptr;
  Return (*shutdown)() = nullptr;
  Return (*count)(unsigned int*) = nullptr;
  Return (*handle)(unsigned int, Device*) = nullptr;
  Return (*name)(Device, char*, unsigned int) = nullptr;
  Return (*uuid)(Device, char*, unsigned int) = nullptr;
  Return (*memory)(Device, Memory*) = nullptr;
  Return (*utilization)(Device, Utilization*) = nullptr;
  Return (*temperature)(Device, int, unsigned int*) = nullptr;  // sensor 0: NVML_TEMPERATURE_GPU
  Return (*power)(Device, unsigned int*) = nullptr;             // milliwatts
  Return (*driver)(char*, unsigned int) = nullptr;
  std::string driver_version;

  ~Nvml() {
    if (shutdown != nullptr) shutdown();
    if (lib != nullptr) dlclose(lib);
  }

  // Loads and initialises; on failure returns why (the object is then discarded).
  std::string Open(const std::string& path) {
    lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) return DlError();
    std::string missing;
    Bind(lib, "nvmlInit_v2", &init, &missing);
    Bind(lib, "nvmlShutdown", &shutdown, &missing);
    Bind(lib, "nvmlDeviceGetCount_v2", &count, &missing);
    Bind(lib, "nvmlDeviceGetHandleByIndex_v2", &handle, &missing);
    Bind(lib, "nvmlDeviceGetName", &name, &missing);
    Bind(lib, "nvmlDeviceGetMemoryInfo", &memory, &missing);
    if (!missing.empty()) {
      shutdown = nullptr;
      return "missing symbol " + missing;
    }
    std::string optional;
    Bind(lib, "nvmlDeviceGetUUID", &uuid, &optional);
    Bind(lib, "nvmlDeviceGetUtilizationRates", &utilization, &optional);
    Bind(lib, "nvmlDeviceGetTemperature", &temperature, &optional);
    Bind(lib, "nvmlDeviceGetPowerUsage", &power, &optional);
    Bind(lib, "nvmlSystemGetDriverVersion", &driver, &optional);
    const Return r = init();
    if (r != 0) {
      shutdown = nullptr;
      return "nvmlInit_v2 returned " + std::to_string(r);
    }
    char buf[96] = {};
    if (driver != nullptr && driver(buf, sizeof(buf)) == 0) driver_version = buf;
    return {};
  }

  std::vector<agent::DeviceInfo> Devices() const {
    std::vector<agent::DeviceInfo> out;
    unsigned int n = 0;
    if (count(&n) != 0) return out;
    for (unsigned int i = 0; i < n; ++i) {
      Device dev = nullptr;
      if (handle(i, &dev) != 0) continue;
      agent::DeviceInfo d;
      d.id = "gpu" + std::to_string(i);
      d.kind = "cuda";
      d.driver = driver_version;
      char buf[96] = {};
      if (name(dev, buf, sizeof(buf)) == 0) d.model = buf;
      char ubuf[96] = {};
      if (uuid != nullptr && uuid(dev, ubuf, sizeof(ubuf)) == 0) d.uuid = ubuf;
      Memory mem{};
      if (memory(dev, &mem) == 0) {
        d.memory_total_bytes = static_cast<int64_t>(mem.total);
        d.memory_used_bytes = static_cast<int64_t>(mem.used);
      }
      Utilization util{};
      if (utilization != nullptr && utilization(dev, &util) == 0) d.utilization = util.gpu / 100.0;
      unsigned int temp = 0;
      if (temperature != nullptr && temperature(dev, 0, &temp) == 0) d.temperature_c = temp;
      unsigned int mw = 0;
      if (power != nullptr && power(dev, &mw) == 0) d.power_w = mw / 1000.0;
      out.push_back(std::move(d));
    }
    return out;
  }
};

// ---- ROCm SMI: the few entry points used, declared by hand (ABI of rocm_smi.h) ----------------
struct DeviceInventory::RocmSmi {
  using Status = int;  // rsmi_status_t; 0 = RSMI_STATUS_SUCCESS
  void* lib = nullptr;
  Status (*init)(uint64_t) = nullptr;
  Status (*shutdown)() = nullptr;
  Status (*count)(uint32_t*) = nullptr;
  Status (*name)(uint32_t, char*, size_t) = nullptr;
  Status (*unique_id)(uint32_t, uint64_t*) = nullptr;
  Status (*mem_total)(uint32_t, int, uint64_t*) = nullptr;  // type 0: RSMI_MEM_TYPE_VRAM
  Status (*mem_used)(uint32_t, int, uint64_t*) = nullptr;
  Status (*busy)(uint32_t, uint32_t*) = nullptr;
  Status (*temp)(uint32_t, uint32_t, int, int64_t*) = nullptr;  // edge sensor, current, m°C
  Status (*power)(uint32_t, uint32_t, uint64_t*) = nullptr;     // microwatts

  ~RocmSmi() {
    if (shutdown != nullptr) shutdown();
    if (lib != nullptr) dlclose(lib);
  }

  std::string Open(const std::string& path) {
    // ROCm SMI prints its own errors to stderr when the amdgpu driver is absent; without the
    // kernel's KFD interface there is no AMD GPU to find, so do not load it at all.
    std::error_code ec;
    if (!std::filesystem::exists("/sys/class/kfd", ec)) return "no AMD GPU driver (/sys/class/kfd)";
    lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) return DlError();
    std::string missing;
    Bind(lib, "rsmi_init", &init, &missing);
    Bind(lib, "rsmi_shut_down", &shutdown, &missing);
    Bind(lib, "rsmi_num_monitor_devices", &count, &missing);
    Bind(lib, "rsmi_dev_name_get", &name, &missing);
    if (!missing.empty()) {
      shutdown = nullptr;
      return "missing symbol " + missing;
    }
    std::string optional;
    Bind(lib, "rsmi_dev_unique_id_get", &unique_id, &optional);
    Bind(lib, "rsmi_dev_memory_total_get", &mem_total, &optional);
    Bind(lib, "rsmi_dev_memory_usage_get", &mem_used, &optional);
    Bind(lib, "rsmi_dev_busy_percent_get", &busy, &optional);
    Bind(lib, "rsmi_dev_temp_metric_get", &temp, &optional);
    Bind(lib, "rsmi_dev_power_ave_get", &power, &optional);
    const Status s = init(0);
    if (s != 0) {
      shutdown = nullptr;
      return "rsmi_init returned " + std::to_string(s);
    }
    return {};
  }

  std::vector<agent::DeviceInfo> Devices() const {
    std::vector<agent::DeviceInfo> out;
    uint32_t n = 0;
    if (count(&n) != 0) return out;
    for (uint32_t i = 0; i < n; ++i) {
      agent::DeviceInfo d;
      d.id = "gpu" + std::to_string(i);
      d.kind = "rocm";
      char buf[128] = {};
      if (name(i, buf, sizeof(buf)) == 0) d.model = buf;
      uint64_t id = 0;
      if (unique_id != nullptr && unique_id(i, &id) == 0) {
        std::ostringstream os;
        os << std::hex << id;
        d.uuid = os.str();
      }
      uint64_t v = 0;
      if (mem_total != nullptr && mem_total(i, 0, &v) == 0) {
        d.memory_total_bytes = static_cast<int64_t>(v);
      }
      if (mem_used != nullptr && mem_used(i, 0, &v) == 0) {
        d.memory_used_bytes = static_cast<int64_t>(v);
      }
      uint32_t pct = 0;
      if (busy != nullptr && busy(i, &pct) == 0) d.utilization = pct / 100.0;
      int64_t millic = 0;
      if (temp != nullptr && temp(i, 0, 0, &millic) == 0) d.temperature_c = millic / 1000.0;
      uint64_t uw = 0;
      if (power != nullptr && power(i, 0, &uw) == 0) d.power_w = uw / 1e6;
      out.push_back(std::move(d));
    }
    return out;
  }
};

DeviceInventory::DeviceInventory(DeviceInventoryOptions options) : options_(std::move(options)) {
  if (!options_.nvml_library.empty()) {
    auto nvml = std::make_unique<Nvml>();
    const std::string why = nvml->Open(options_.nvml_library);
    if (why.empty()) {
      notes_.push_back("nvml: loaded " + options_.nvml_library);
      nvml_ = std::move(nvml);
    } else {
      notes_.push_back("nvml: " + why);
    }
  }
  if (!options_.rocm_smi_library.empty()) {
    auto rocm = std::make_unique<RocmSmi>();
    const std::string why = rocm->Open(options_.rocm_smi_library);
    if (why.empty()) {
      notes_.push_back("rocm-smi: loaded " + options_.rocm_smi_library);
      rocm_ = std::move(rocm);
    } else {
      notes_.push_back("rocm-smi: " + why);
    }
  }
}

DeviceInventory::~DeviceInventory() = default;

std::vector<std::string> DeviceInventory::notes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return notes_;
}

agent::DeviceInfo DeviceInventory::CpuDevice() {
  agent::DeviceInfo d = agent::CpuInventorySource(options_.proc_dir).CpuDevice();
  std::ifstream stat(options_.proc_dir / "stat");
  std::string label;
  stat >> label;
  if (label == "cpu") {
    uint64_t total = 0;
    uint64_t idle = 0;
    uint64_t v = 0;
    for (int i = 0; i < 8 && (stat >> v); ++i) {  // user nice system idle iowait irq softirq steal
      total += v;
      if (i == 3 || i == 4) idle += v;
    }
    const uint64_t busy = total - idle;
    std::lock_guard<std::mutex> lock(mu_);
    if (last_total_ != 0 && total > last_total_) {
      last_utilization_ = static_cast<double>(busy - std::min(busy, last_busy_)) /
                          static_cast<double>(total - last_total_);
      last_busy_ = busy;
      last_total_ = total;
    } else if (last_total_ == 0) {
      last_busy_ = busy;
      last_total_ = total;
    }
    // No clock tick since the previous sample: the previous figure still stands.
    d.utilization = last_utilization_;
  }
  return d;
}

agent::InventoryInfo DeviceInventory::Snapshot() {
  agent::InventoryInfo inv;
  inv.node = options_.node_name.empty() ? HostName() : options_.node_name;
  std::vector<std::string> sources;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (nvml_) {
      auto devices = nvml_->Devices();
      if (!devices.empty()) sources.push_back("nvml");
      for (auto& d : devices) inv.devices.push_back(std::move(d));
    }
    if (rocm_) {
      auto devices = rocm_->Devices();
      if (!devices.empty()) sources.push_back("rocm-smi");
      const size_t offset = inv.devices.size();
      for (auto& d : devices) {
        d.id = "gpu" + std::to_string(offset + std::stoul(d.id.substr(3)));
        inv.devices.push_back(std::move(d));
      }
    }
  }
  if (inv.devices.empty()) {
    inv.devices.push_back(CpuDevice());
    sources.push_back("cpu");
  }
  for (size_t i = 0; i < sources.size(); ++i) inv.source += (i ? "+" : "") + sources[i];
  inv.observed_at_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
  return inv;
}

// ---- Metrics -----------------------------------------------------------------------------------

namespace {

struct DeviceMetricsState {
  std::mutex mu;
  agent::InventorySource* source = nullptr;
  std::chrono::steady_clock::time_point last{};
  std::map<std::string, std::vector<std::string>> series;  // device id -> label values
  agent::Family<agent::Gauge>* util = nullptr;
  agent::Family<agent::Gauge>* mem_used = nullptr;
  agent::Family<agent::Gauge>* mem_total = nullptr;
  agent::Family<agent::Gauge>* temp = nullptr;
  agent::Family<agent::Gauge>* power = nullptr;

  std::vector<agent::Family<agent::Gauge>*> all() const {
    return {util, mem_used, mem_total, temp, power};
  }
};

}  // namespace

std::shared_ptr<void> ExportDeviceMetrics(agent::InventorySource& source, agent::Registry& registry,
                                          std::chrono::milliseconds min_interval) {
  auto state = std::make_shared<DeviceMetricsState>();
  state->source = &source;
  const std::vector<std::string> labels = {"device", "kind", "model"};
  state->util =
      &registry.AddGauge("sextant_device_utilization_ratio",
                         "Device busy fraction (0..1); the CPU where no GPU is present.", labels);
  state->mem_used =
      &registry.AddGauge("sextant_device_memory_used_bytes", "Device memory in use.", labels);
  state->mem_total =
      &registry.AddGauge("sextant_device_memory_total_bytes", "Device memory in total.", labels);
  state->temp =
      &registry.AddGauge("sextant_device_temperature_celsius", "Device temperature.", labels);
  state->power = &registry.AddGauge("sextant_device_power_watts", "Device power draw.", labels);
  std::weak_ptr<DeviceMetricsState> weak = state;
  registry.AddCollectHook([weak, min_interval] {
    auto s = weak.lock();
    if (!s) return;
    std::lock_guard<std::mutex> lock(s->mu);
    const auto now = std::chrono::steady_clock::now();
    if (s->last != std::chrono::steady_clock::time_point{} && now - s->last < min_interval) {
      return;
    }
    s->last = now;
    const agent::InventoryInfo inv = s->source->Snapshot();
    std::map<std::string, std::vector<std::string>> seen;
    for (const agent::DeviceInfo& d : inv.devices) {
      const std::vector<std::string> lv = {d.id, d.kind, d.model};
      seen[d.id] = lv;
      auto old = s->series.find(d.id);
      if (old != s->series.end() && old->second != lv) {
        for (auto* fam : s->all()) fam->Remove(old->second);
      }
      auto set = [&](agent::Family<agent::Gauge>* fam, double v) {
        if (v < 0) {
          fam->Remove(lv);
        } else {
          fam->WithLabels(lv).Set(v);
        }
      };
      set(s->util, d.utilization);
      set(s->mem_used, d.memory_total_bytes > 0 ? static_cast<double>(d.memory_used_bytes) : -1);
      set(s->mem_total, d.memory_total_bytes > 0 ? static_cast<double>(d.memory_total_bytes) : -1);
      set(s->temp, d.temperature_c);
      set(s->power, d.power_w);
    }
    for (const auto& [id, lv] : s->series) {
      if (!seen.count(id)) {
        for (auto* fam : s->all()) fam->Remove(lv);
      }
    }
    s->series = std::move(seen);
  });
  return state;
}

}  // namespace sextant::inventory
