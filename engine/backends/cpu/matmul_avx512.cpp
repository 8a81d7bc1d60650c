// AVX-512 level (built with AVX-512 F/BW/VL/DQ/VNNI/BF16; called only where the CPU has them).
// Types without a dedicated AVX-512 kernel use the AVX2 ones, which every AVX-512 CPU runs.
#include "engine/backends/cpu/matmul_kernels.h"

namespace sextant::cpu::internal {

const KernelTable& Avx512Kernels() {
  static const KernelTable table = Avx2Kernels();
  return table;
}

}  // namespace sextant::cpu::internal
