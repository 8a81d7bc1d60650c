// Internal to the CPU backend: the kernel tables behind ops.h (portable in ops.cpp, AVX2 in
// ops_avx2.cpp). Thread-safety: pure functions.
#pragma once

#include <cstdint>

namespace sextant::cpu::internal {

// One attention work item: query rows [i0, i1) x query heads [h0, h1), all of kv head g.
struct AttendArgs {
  const float* q = nullptr;
  int64_t q_stride = 0;
  const int32_t* q_pos = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  int64_t kv_stride = 0;
  float* out = nullptr;
  int64_t out_stride = 0;
  int head_dim = 0;
  float scale = 1.0f;
};

struct OpsTable {
  void (*rms_norm)(const float* x, const float* w, int64_t n, float eps, float* out);
  void (*softmax)(float* x, int64_t n);
  void (*silu_mul)(const float* gate, const float* up, int64_t n, float* out);
  void (*add)(const float* a, const float* b, int64_t n, float* out);
  void (*scale)(float* x, int64_t n, float s);
  void (*attend)(const AttendArgs& a, int g, int h0, int h1, int64_t i0, int64_t i1);
};

const OpsTable& PortableOps();
const OpsTable& Avx2Ops();  // REQUIRES: AVX2 + FMA

}  // namespace sextant::cpu::internal
