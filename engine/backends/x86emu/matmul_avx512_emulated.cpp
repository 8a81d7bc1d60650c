// The AVX-512 kernel table, built against the emulation of avx512_emulation.h and named
// Avx512EmulatedKernels() (engine/backends/cpu/matmul_kernels.h). Same source, same results as
// on a CPU with AVX-512: the emulation computes each instruction's defined result.
#include "engine/backends/x86emu/avx512_emulation.h"

#define Avx512Kernels Avx512EmulatedKernels
#include "engine/backends/cpu/matmul_avx512.cpp"
