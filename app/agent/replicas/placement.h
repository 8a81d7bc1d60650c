// Replica placement: which devices one engine replica runs on.
//
// A replica that asks for GPUs (resources.gpu.count > 0) gets that many whole GPUs of the agent's
// inventory (kind "cuda" or "rocm", of resources.gpu.model when the spec names one) that no
// other replica holds: a GPU is never shared by two replicas. When there are not enough free
// GPUs the replica is not placed, and the error says why in words an operator can act on. A
// replica that asks for no GPU runs on a set of CPU threads.
//
// Thread-safety: free functions of their arguments.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "app/agent/state/sources.h"
#include "engine/base/status.h"

namespace sextant::agent {

// The devices one replica is bound to.
struct DeviceShare {
  std::vector<std::string> gpus;  // device ids from the inventory ("gpu0"); empty: the CPU
  int threads = 0;                // CPU threads of the replica's engine (0: the model's)

  // "gpu0,gpu1" or "cpu x4 threads".
  std::string Describe() const;
};

struct PlacementRequest {
  int gpu_count = 0;      // whole GPUs per replica; 0: CPU
  std::string gpu_model;  // empty: any GPU model
  int cpu_threads = 0;    // threads for a CPU replica
};

// Picks the GPUs of one replica from `inventory`, skipping those in `taken` (held by other
// replicas), lowest device id first in numeric order ("gpu2" before "gpu10"). The GPUs of one
// replica are all of one vendor (an engine runs on one backend): on an agent with both, the
// vendor whose free GPUs start lowest and suffice. RESOURCE_EXHAUSTED with the reason ("needs 2
// GPUs of model X; the agent has 3, 2 in use by other replicas", or that no vendor has enough
// free) when they are not there.
Result<DeviceShare> PlaceReplica(const agent::InventoryInfo& inventory,
                                 const PlacementRequest& request,
                                 const std::set<std::string>& taken);

// The device ordinal a GPU runtime is given for inventory device `id` ("gpuN"): the vendor's
// index of the device (NVML for "cuda", ROCm SMI for "rocm"), which is N less the devices of
// another kind listed before it in `inventory` (the inventory numbers ROCm devices after the
// NVIDIA ones). NVML and ROCm SMI number devices in PCI bus order, so this is the CUDA / HIP
// ordinal only when the runtime enumerates in PCI bus order too: CUDA does when
// CUDA_DEVICE_ORDER=PCI_BUS_ID (its default puts the fastest device first; the agent sets the
// variable at startup unless it is already set), and neither runtime does when
// CUDA_VISIBLE_DEVICES / HIP_VISIBLE_DEVICES hides or reorders devices. INVALID_ARGUMENT when
// `id` does not end in a device number.
Result<int> DeviceOrdinal(const agent::InventoryInfo& inventory, const std::string& id);

}  // namespace sextant::agent
