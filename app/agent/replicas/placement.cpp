#include "app/agent/replicas/placement.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <tuple>
#include <vector>

namespace sextant::agent {
namespace {

// Device ids in numeric order of their trailing number ("gpu2" < "gpu10"), then by text.
bool IdLess(const std::string& a, const std::string& b) {
  auto split = [](const std::string& s) {
    size_t d = s.size();
    while (d > 0 && std::isdigit(static_cast<unsigned char>(s[d - 1])) != 0) --d;
    // Up to 9 digits compare as a number; longer runs (never an inventory id) as text.
    const bool numeric = d < s.size() && s.size() - d <= 9;
    return std::make_tuple(s.substr(0, d), numeric ? std::stol(s.substr(d)) : -1L, s);
  };
  return split(a) < split(b);
}

}  // namespace

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
  std::map<std::string, std::vector<std::string>> free_by_kind;  // "cuda" / "rocm" -> ids
  int free_total = 0, in_use = 0;
  for (const agent::DeviceInfo& d : inventory.devices) {
    if (d.kind != "cuda" && d.kind != "rocm") continue;
    if (!request.gpu_model.empty() && d.model != request.gpu_model) continue;
    if (taken.count(d.id) != 0) {
      ++in_use;
      continue;
    }
    free_by_kind[d.kind].push_back(d.id);
    ++free_total;
  }
  std::vector<std::string> matching;
  for (auto& [kind, ids] : free_by_kind) {
    std::sort(ids.begin(), ids.end(), IdLess);
    if (static_cast<int>(ids.size()) >= request.gpu_count &&
        (matching.empty() || IdLess(ids.front(), matching.front()))) {
      matching = ids;
    }
  }
  if (matching.empty()) {
    const int total = free_total + in_use;
    const std::string what = std::to_string(request.gpu_count) +
                             (request.gpu_count == 1 ? " GPU" : " GPUs") +
                             (request.gpu_model.empty() ? "" : " of model " + request.gpu_model);
    std::string why = "needs " + what + "; the agent has " + std::to_string(total) +
                      (total == 1 ? " such GPU" : " such GPUs") + ", " + std::to_string(in_use) +
                      " in use by other replicas";
    if (free_total >= request.gpu_count) {
      why += ", and no vendor has " + std::to_string(request.gpu_count) +
             " free (a replica's GPUs are of one vendor):";
      const char* sep = " ";
      for (const auto& [kind, ids] : free_by_kind) {
        why += sep + std::to_string(ids.size()) + " " + kind;
        sep = ", ";
      }
    }
    return Status::ResourceExhausted(why);
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

}  // namespace sextant::agent
