// Which engine backend runs a model: the registry callers ask, so nothing outside
// engine/backends names CUDA or HIP. The CPU backend is always present and is the reference.
// Thread-safety: all functions are safe from any thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "engine/base/status.h"

namespace sextant {

enum class BackendKind { kCpu, kCuda, kHip };

std::string_view BackendName(BackendKind kind);  // "cpu", "cuda", "hip"

struct BackendChoice {
  BackendKind kind = BackendKind::kCpu;
  std::string device;  // e.g. "NVIDIA H200" or "cpu"
  std::string note;    // why this one, for the user ("no GPU found; using the CPU"); may be empty
};

// Resolves --backend. "auto" picks a GPU backend with a visible device (CUDA first, then HIP)
// and falls back to the CPU with a note. "cuda" / "hip" are errors when that backend was not
// compiled in (FAILED_PRECONDITION) or sees no device (UNAVAILABLE). Anything else is
// INVALID_ARGUMENT naming the accepted values.
Result<BackendChoice> ChooseBackend(std::string_view requested);

}  // namespace sextant
