#include "engine/backends/cpu/ops.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "engine/backends/cpu/matmul.h"
#include "engine/backends/cpu/thread_pool.h"

namespace sextant::cpu {
namespace {

std::vector<float> Random(int64_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = normal(rng);
  return x;
}

// Runs `check` once per kernel level this CPU has (portable, then SIMD).
template <typename F>
void ForEachLevel(F check) {
  const KernelLevel saved = ActiveKernelLevel();
  for (int l = 0; l <= static_cast<int>(DetectedKernelLevel()); ++l) {
    SetCpuKernelLevel(static_cast<KernelLevel>(l));
    SCOPED_TRACE(KernelLevelName(static_cast<KernelLevel>(l)));
    check();
  }
  SetCpuKernelLevel(saved);
}

TEST(CpuOps, RmsNorm) {
  ForEachLevel([] {
    for (int64_t n : {1, 7, 64, 2051}) {
      const auto x = Random(n, 1), w = Random(n, 2);
      double ss = 0;
      for (float v : x) ss += double{v} * v;
      const double s = 1.0 / std::sqrt(ss / static_cast<double>(n) + 1e-5);
      std::vector<float> out(static_cast<size_t>(n));
      RmsNorm(x.data(), w.data(), n, 1e-5f, out.data());
      for (int64_t i = 0; i < n; ++i)
        EXPECT_NEAR(out[i], x[i] * s * w[i], 1e-5 * (1 + std::fabs(x[i] * s * w[i])));
      std::vector<float> in_place = x;
      RmsNorm(in_place.data(), nullptr, n, 1e-5f, in_place.data());
      for (int64_t i = 0; i < n; ++i)
        EXPECT_NEAR(in_place[i], x[i] * s, 1e-5 * (1 + std::fabs(x[i] * s)));
    }
  });
}

TEST(CpuOps, SoftmaxIsStableAndNormalized) {
  ForEachLevel([] {
    for (int64_t n : {1, 5, 8, 33, 32000}) {
      auto x = Random(n, 3, 4.0f);
      x[0] = 1000.0f;  // would overflow a naive exp
      if (n > 2) x[2] = -1000.0f;
      std::vector<double> ref(static_cast<size_t>(n));
      const double m = *std::max_element(x.begin(), x.end());
      double sum = 0;
      for (int64_t i = 0; i < n; ++i) sum += ref[i] = std::exp(double{x[i]} - m);
      Softmax(x.data(), n);
      double total = 0;
      for (int64_t i = 0; i < n; ++i) {
        EXPECT_NEAR(x[i], ref[i] / sum, 1e-6 + 1e-5 * ref[i] / sum) << i;
        total += x[i];
      }
      EXPECT_NEAR(total, 1.0, 1e-5);
    }
  });
}

TEST(CpuOps, SiluMulAddScale) {
  ForEachLevel([] {
    const int64_t n = 1003;
    const auto g = Random(n, 4, 5.0f), u = Random(n, 5), b = Random(n, 6);
    std::vector<float> out(static_cast<size_t>(n));
    SiluMul(g.data(), u.data(), n, out.data());
    for (int64_t i = 0; i < n; ++i) {
      const double ref = g[i] / (1.0 + std::exp(-double{g[i]})) * u[i];
      EXPECT_NEAR(out[i], ref, 1e-5 * (1 + std::fabs(ref)));
    }
    Add(g.data(), b.data(), n, out.data());
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(out[i], g[i] + b[i]);
    Scale(out.data(), n, 0.5f);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(out[i], (g[i] + b[i]) * 0.5f);
  });
}

TEST(CpuOps, RopeRotatesConsecutivePairs) {
  const int heads = 3, head_dim = 16;
  for (int rope_dims : {16, 8}) {
    for (int64_t pos : {0, 1, 17, 100}) {
      auto x = Random(heads * head_dim, 7);
      const auto orig = x;
      Rope(x.data(), heads, head_dim, rope_dims, pos, 10000.0f);
      for (int h = 0; h < heads; ++h) {
        for (int i = 0; i < head_dim / 2; ++i) {
          const float x0 = orig[h * head_dim + 2 * i], x1 = orig[h * head_dim + 2 * i + 1];
          if (2 * i >= rope_dims) {
            EXPECT_EQ(x[h * head_dim + 2 * i], x0);
            EXPECT_EQ(x[h * head_dim + 2 * i + 1], x1);
            continue;
          }
          const double theta = static_cast<double>(pos) * std::pow(10000.0, -2.0 * i / rope_dims);
          EXPECT_NEAR(x[h * head_dim + 2 * i], x0 * std::cos(theta) - x1 * std::sin(theta), 1e-4);
          EXPECT_NEAR(x[h * head_dim + 2 * i + 1], x0 * std::sin(theta) + x1 * std::cos(theta),
                      1e-4);
        }
      }
    }
  }
}

// Straightforward f64 attention: softmax(scale * q.k) v over positions 0..q_pos[i].
std::vector<double> AttentionRef(const AttentionParams& p, const std::vector<float>& q, int64_t n_q,
                                 const std::vector<int32_t>& pos, const std::vector<float>& k,
                                 const std::vector<float>& v) {
  const int64_t qs = int64_t{p.heads} * p.head_dim, kvs = int64_t{p.kv_heads} * p.head_dim;
  std::vector<double> out(static_cast<size_t>(n_q * qs));
  for (int64_t i = 0; i < n_q; ++i)
    for (int h = 0; h < p.heads; ++h) {
      const int g = h / (p.heads / p.kv_heads);
      std::vector<double> s(static_cast<size_t>(pos[i] + 1));
      double m = -1e300;
      for (int32_t t = 0; t <= pos[i]; ++t) {
        double d = 0;
        for (int e = 0; e < p.head_dim; ++e)
          d += double{q[i * qs + h * p.head_dim + e]} * k[t * kvs + g * p.head_dim + e];
        s[t] = d * p.scale;
        m = std::max(m, s[t]);
      }
      double sum = 0;
      for (double& e : s) sum += e = std::exp(e - m);
      for (int e = 0; e < p.head_dim; ++e) {
        double o = 0;
        for (int32_t t = 0; t <= pos[i]; ++t) o += s[t] / sum * v[t * kvs + g * p.head_dim + e];
        out[i * qs + h * p.head_dim + e] = o;
      }
    }
  return out;
}

TEST(CpuOps, AttentionCausalGroupedQuery) {
  ThreadPool pool(2);
  struct Case {
    int heads, kv_heads, head_dim;
    int64_t n_q, first_pos;
  };
  const Case cases[] = {{8, 2, 64, 1, 40}, {8, 2, 64, 13, 0}, {32, 4, 64, 1, 130}, {6, 6, 16, 9, 5},
                        {4, 1, 8, 20, 3},  {4, 2, 12, 5, 2},  {32, 4, 64, 70, 0}};
  ForEachLevel([&] {
    for (const Case& c : cases) {
      AttentionParams p{c.heads, c.kv_heads, c.head_dim, 1.0f / std::sqrt(float(c.head_dim))};
      const int64_t n_kv = c.first_pos + c.n_q;
      const auto q = Random(c.n_q * c.heads * c.head_dim, 8, 2.0f);
      const auto k = Random(n_kv * c.kv_heads * c.head_dim, 9, 2.0f);
      const auto v = Random(n_kv * c.kv_heads * c.head_dim, 10);
      std::vector<int32_t> pos(static_cast<size_t>(c.n_q));
      for (int64_t i = 0; i < c.n_q; ++i) pos[i] = static_cast<int32_t>(c.first_pos + i);
      const auto ref = AttentionRef(p, q, c.n_q, pos, k, v);
      for (ThreadPool* tp : {static_cast<ThreadPool*>(nullptr), &pool}) {
        std::vector<float> out(ref.size(), std::nanf(""));
        Attention(p, q.data(), int64_t{c.heads} * c.head_dim, c.n_q, pos.data(), k.data(), v.data(),
                  int64_t{c.kv_heads} * c.head_dim, out.data(), int64_t{c.heads} * c.head_dim, tp);
        for (size_t i = 0; i < ref.size(); ++i)
          ASSERT_NEAR(out[i], ref[i], 2e-5 * (1 + std::fabs(ref[i])))
              << "heads=" << c.heads << " kv=" << c.kv_heads << " hd=" << c.head_dim
              << " n_q=" << c.n_q << " at " << i;
      }
    }
  });
}

}  // namespace
}  // namespace sextant::cpu
