// Vectorized element-wise and attention operations of the llama graph on the CPU (f32), with
// run-time dispatch like MatMul (AVX2 where the CPU has it and ActiveKernelLevel() allows it,
// portable C++ otherwise). Each function is pure: results depend only on its arguments, and each
// row of a batch is computed independently of the other rows.
//
// Thread-safety: functions may be called concurrently on distinct outputs. Attention uses the
// given pool for one job (callers serialize their use of one pool).
#pragma once

#include <cstdint>

namespace sextant::cpu {

class ThreadPool;

// out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i], for i < n (w may be null: no gain).
// The mean is accumulated in double. out may alias x.
void RmsNorm(const float* x, const float* w, int64_t n, float eps, float* out);

// x = softmax(x) over n values, in place (max subtracted first; exp sums accumulate in double).
void Softmax(float* x, int64_t n);

// out[i] = silu(gate[i]) * up[i] (SwiGLU), silu(g) = g / (1 + exp(-g)). out may alias gate/up.
void SiluMul(const float* gate, const float* up, int64_t n, float* out);

// out[i] = a[i] + b[i]. out may alias a or b.
void Add(const float* a, const float* b, int64_t n, float* out);

// x[i] *= s.
void Scale(float* x, int64_t n, float s);

// RoPE, llama's normal mode (ggml's LLAMA_ROPE_TYPE_NORM): in each head the consecutive pairs
// (x[2i], x[2i+1]) for 2i < rope_dims are rotated by theta_i = pos * freq_base^(-2i/rope_dims);
// dims at and past rope_dims are left as they are. theta_i is formed as ggml does (a running
// product by freq_base^(-2/rope_dims) in f32) so results match llama.cpp's.
//   RopeAngles fills cos/sin (rope_dims / 2 values each) for one position;
//   RopeApply rotates n_heads heads of head_dim floats laid out back to back at x.
void RopeAngles(int64_t pos, int rope_dims, float freq_base, float* cos_out, float* sin_out);
void RopeApply(float* x, int n_heads, int head_dim, int rope_dims, const float* cos,
               const float* sin);
// Both steps for one token.
void Rope(float* x, int n_heads, int head_dim, int rope_dims, int64_t pos, float freq_base);

// Causal multi-head attention of n_q query rows over the cached keys and values of one sequence
// (f32 KV cache), grouped-query aware: query head h uses kv head h / (heads / kv_heads).
//   q:    row i, head h at q[i * q_stride + h * head_dim]
//   k, v: position p, kv head g at k[p * kv_stride + g * head_dim] (same for v)
//   q_pos[i]: the position of query row i; it attends positions 0..q_pos[i] (all < cached count)
//   out:  row i, head h at out[i * out_stride + h * head_dim]
//   out[i, h] = sum_p softmax_p(scale * q[i, h] . k[p, g]) v[p, g]
// REQUIRES: heads % kv_heads == 0, q_pos[i] >= 0. Decode is n_q == 1; prefill passes the whole
// batch of one sequence. pool may be null (runs on the calling thread).
struct AttentionParams {
  int heads = 0;
  int kv_heads = 0;
  int head_dim = 0;
  float scale = 1.0f;  // usually 1 / sqrt(head_dim)
};
void Attention(const AttentionParams& p, const float* q, int64_t q_stride, int64_t n_q,
               const int32_t* q_pos, const float* k, const float* v, int64_t kv_stride, float* out,
               int64_t out_stride, ThreadPool* pool);

}  // namespace sextant::cpu
