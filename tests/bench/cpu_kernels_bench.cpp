// Micro-benchmarks of the CPU kernels: MatMul per weight type on the TinyLlama-1.1B projection
// shapes (2048 -> 5632 and 5632 -> 2048), decode (1 token) and prefill (64 tokens), on 1 and 2
// threads. Reported: weight GB/s (bytes of W read per second; decode is bandwidth-bound) and,
// for prefill, token rows per second. Not run by CTest:
//   build/<dir>/tests/cpu_kernels_bench --benchmark_filter='Q4_0'
#include <benchmark/benchmark.h>

#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "engine/backends/cpu/matmul.h"
#include "engine/backends/cpu/ops.h"
#include "engine/backends/cpu/thread_pool.h"
#include "engine/gguf/types.h"

namespace {

using sextant::cpu::KernelLevel;
using sextant::cpu::ThreadPool;
using sextant::cpu::WeightView;
using sextant::gguf::TensorType;

// Random valid weights: random quant bytes with small f16 scales at each block's scale fields.
std::vector<uint8_t> Weights(TensorType type, int64_t rows, int64_t cols) {
  std::mt19937 rng(1);
  const uint64_t bytes = *sextant::gguf::RowBytes(type, cols) * static_cast<uint64_t>(rows);
  std::vector<uint8_t> w(bytes);
  for (size_t i = 0; i < w.size(); i += 4) {
    const uint32_t r = rng();
    std::memcpy(w.data() + i, &r, std::min<size_t>(4, w.size() - i));
  }
  const uint16_t small = sextant::gguf::F32ToF16(0.01f);
  auto fix = [&](size_t block, size_t offset) {
    for (size_t b = 0; b + block <= w.size(); b += block) std::memcpy(&w[b + offset], &small, 2);
  };
  switch (type) {
    case TensorType::kF32:
      for (size_t i = 0; i < w.size(); i += 4) {
        const float f = static_cast<float>(rng() % 2001) / 1000.0f - 1.0f;
        std::memcpy(&w[i], &f, 4);
      }
      break;
    case TensorType::kF16:
    case TensorType::kBF16:
      fix(2, 0);
      break;
    case TensorType::kQ8_0:
      fix(34, 0);
      break;
    case TensorType::kQ4_0:
      fix(18, 0);
      break;
    case TensorType::kQ4_K:
      fix(144, 0);
      fix(144, 2);
      break;
    case TensorType::kQ6_K:
      fix(210, 208);
      break;
  }
  return w;
}

ThreadPool* Pool(int threads) {
  static std::unique_ptr<ThreadPool> pools[9];
  if (!pools[threads]) pools[threads] = std::make_unique<ThreadPool>(threads);
  return pools[threads].get();
}

// args: rows, cols, tokens, threads, level
void BM_MatMul(benchmark::State& state, TensorType type) {
  const int64_t rows = state.range(0), cols = state.range(1), tokens = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  const auto level = static_cast<KernelLevel>(state.range(4));
  if (level > sextant::cpu::DetectedKernelLevel()) {
    state.SkipWithError("kernel level not supported by this CPU");
    return;
  }
  sextant::cpu::SetCpuKernelLevel(level);
  const auto w = Weights(type, rows, cols);
  std::vector<float> x(static_cast<size_t>(cols * tokens));
  std::mt19937 rng(2);
  std::normal_distribution<float> normal;
  for (auto& v : x) v = normal(rng);
  std::vector<float> y(static_cast<size_t>(rows * tokens));
  const WeightView view{type, w.data(), rows, cols};
  ThreadPool* pool = Pool(threads);
  for (auto _ : state) {
    sextant::cpu::MatMul(view, x.data(), tokens, y.data(), pool);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(w.size()) * state.iterations());
  state.counters["tok/s"] = benchmark::Counter(static_cast<double>(tokens * state.iterations()),
                                               benchmark::Counter::kIsRate);
  state.counters["GMAC/s"] = benchmark::Counter(
      static_cast<double>(rows * cols * tokens) * 1e-9 * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate);
  state.SetLabel(sextant::cpu::KernelLevelName(level));
}

void Shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "cols", "tok", "thr", "lvl"});
  const int best = static_cast<int>(sextant::cpu::DetectedKernelLevel());
  for (int64_t tokens : {1, 64})
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{5632, 2048}, {2048, 5632}})
      for (int64_t threads : {1, 2}) b->Args({rows, cols, tokens, threads, best});
  b->UseRealTime()->MinTime(0.3);
}

BENCHMARK_CAPTURE(BM_MatMul, F32, TensorType::kF32)->Apply(Shapes);
BENCHMARK_CAPTURE(BM_MatMul, F16, TensorType::kF16)->Apply(Shapes);
BENCHMARK_CAPTURE(BM_MatMul, BF16, TensorType::kBF16)->Apply(Shapes);
BENCHMARK_CAPTURE(BM_MatMul, Q8_0, TensorType::kQ8_0)->Apply(Shapes);
BENCHMARK_CAPTURE(BM_MatMul, Q4_0, TensorType::kQ4_0)->Apply(Shapes);
BENCHMARK_CAPTURE(BM_MatMul, Q4_K, TensorType::kQ4_K)->Apply(Shapes);
BENCHMARK_CAPTURE(BM_MatMul, Q6_K, TensorType::kQ6_K)->Apply(Shapes);

// Prefill attention of 512 tokens (TinyLlama shape: 32 heads, 4 kv heads, head_dim 64).
void BM_AttentionPrefill(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const int64_t n = 512;
  sextant::cpu::AttentionParams p{32, 4, 64, 0.125f};
  std::vector<float> q(n * 32 * 64, 0.01f), k(n * 4 * 64, 0.02f), v(n * 4 * 64, 0.03f),
      out(n * 32 * 64);
  std::vector<int32_t> pos(n);
  for (int64_t i = 0; i < n; ++i) pos[i] = static_cast<int32_t>(i);
  for (auto _ : state) {
    sextant::cpu::Attention(p, q.data(), 32 * 64, n, pos.data(), k.data(), v.data(), 4 * 64,
                            out.data(), 32 * 64, Pool(threads));
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_AttentionPrefill)->Arg(1)->Arg(2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
