// The GPU backend's kernel source (engine/backends/gpu/gpu_backend.cu), compiled as C++ against
// the simulator edition of gpu_vendor.h: sextant::gpusim::NewGpuBackend runs every kernel of the
// CUDA and HIP backends on the CPU (engine/backends/gpusim/runtime.h). Tests only.
#include "engine/backends/gpu/gpu_backend.cu"
