#include "app/replicas/placement.h"

#include <algorithm>

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

}  // namespace sextant::replicas
