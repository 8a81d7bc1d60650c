#include "app/replicas/placement.h"

#include <algorithm>
#include <cctype>

namespace sextant::replicas {

std::string DeviceShare::Describe() const {
  if (gpus.empty()) {
    return threads > 0 ? "cpu x" + std::to_string(threads) + " threads" : "cpu";
  }
  std::string s;
  for (const std::string& g : gpus) s += (s.empty() ? "" : ",") + g;
  return s;
}

Result<DeviceShare> PlaceReplica(const agent::InventoryInfo& inventory,
                                 const PlacementRequest& request,
                                 const std::set<std::string>& taken) {
  DeviceShare share;
  share.threads = request.cpu_threads;
  if (request.gpu_count <= 0) return share;
  std::vector<std::string> matching;
  int in_use = 0;
  for (const agent::DeviceInfo& d : inventory.devices) {
    if (d.kind != "cuda" && d.kind != "rocm") continue;
    if (!request.gpu_model.empty() && d.model != request.gpu_model) continue;
    if (taken.count(d.id) != 0) {
      ++in_use;
      continue;
    }
    matching.push_back(d.id);
  }
  std::sort(matching.begin(), matching.end());
  if (static_cast<int>(matching.size()) < request.gpu_count) {
    const int total = static_cast<int>(matching.size()) + in_use;
    const std::string what = std::to_string(request.gpu_count) +
                             (request.gpu_count == 1 ? " GPU" : " GPUs") +
                             (request.gpu_model.empty() ? "" : " of model " + request.gpu_model);
    return Status::ResourceExhausted("needs " + what + "; the agent has " + std::to_string(total) +
                                     (total == 1 ? " such GPU" : " such GPUs") + ", " +
                                     std::to_string(in_use) + " in use by other replicas");
  }
  matching.resize(static_cast<size_t>(request.gpu_count));
  share.gpus = std::move(matching);
  share.threads = 0;
  return share;
}

Result<int> DeviceOrdinal(const agent::InventoryInfo& inventory, const std::string& id) {
  size_t digits = id.size();
  while (digits > 0 && std::isdigit(static_cast<unsigned char>(id[digits - 1])) != 0) --digits;
  if (digits == id.size() || id.size() - digits > 6) {
    return Status::InvalidArgument("device id '" + id + "' does not end in a device number");
  }
  const int number = std::stoi(id.substr(digits));
  // Devices of another kind listed before this one shift its number (ROCm after NVIDIA).
  const auto self = std::find_if(inventory.devices.begin(), inventory.devices.end(),
                                 [&](const agent::DeviceInfo& d) { return d.id == id; });
  const auto other_gpu = [&](const agent::DeviceInfo& e) {
    return e.kind != self->kind && (e.kind == "cuda" || e.kind == "rocm");
  };
  const int before =
      self == inventory.devices.end()
          ? 0
          : static_cast<int>(std::count_if(inventory.devices.begin(), self, other_gpu));
  if (number < before) {
    return Status::InvalidArgument("device id '" + id + "' is numbered below the " +
                                   std::to_string(before) + " devices of another kind before it");
  }
  return number - before;
}

}  // namespace sextant::replicas
