// AVX-512 on a CPU without it, for the tests: the AVX-512 kernel file compiled against SIMDe's
// portable AVX-512 intrinsics (libsimde-dev), which compute each instruction's defined result with
// AVX2 or scalar code. With it the AVX-512 kernels run, and are checked against the AVX2 and
// portable ones, on a machine whose CPU has only AVX2. A test instrument: only engine_tests links
// it (engine/backends/x86emu/CMakeLists.txt), and it is as slow as it is portable.
//
// Include first in a translation unit built with -mavx2 -mfma -mf16c and without any -mavx512*
// option: SIMDe maps each _mm512_* / AVX-512 VL name to its emulation only where the compiler
// does not provide the instruction.
#pragma once

#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>

#include <immintrin.h>

#include <cstdint>
#include <cstring>

// The kernels take the AVX-512 VNNI path of matmul_int8_x86.h (vpdpbusd, emulated).
#define SEXTANT_EMULATE_AVX512_VNNI 1

namespace sextant::cpu::x86emu {

// Two conversions the kernels use that SIMDe 0.7 does not provide, from their definitions:
// zero-extend 16 u16 lanes to i32 (vpmovzxwd), and 16 halves to floats (vcvtph2ps, done as two
// 8-lane F16C conversions, which round identically since the conversion is exact).
inline simde__m512i Mm512CvtEpu16Epi32(simde__m256i a) {
  uint16_t in[16];
  int32_t out[16];
  std::memcpy(in, &a, sizeof(in));
  for (int i = 0; i < 16; ++i) out[i] = in[i];
  simde__m512i r;
  std::memcpy(&r, out, sizeof(out));
  return r;
}

inline simde__m512 Mm512CvtphPs(simde__m256i a) {
  __m128i h[2];
  std::memcpy(h, &a, sizeof(h));
  float out[16];
  _mm256_storeu_ps(out, _mm256_cvtph_ps(h[0]));
  _mm256_storeu_ps(out + 8, _mm256_cvtph_ps(h[1]));
  simde__m512 r;
  std::memcpy(&r, out, sizeof(out));
  return r;
}

}  // namespace sextant::cpu::x86emu

#define _mm512_cvtepu16_epi32(a) ::sextant::cpu::x86emu::Mm512CvtEpu16Epi32(a)
#define _mm512_cvtph_ps(a) ::sextant::cpu::x86emu::Mm512CvtphPs(a)
