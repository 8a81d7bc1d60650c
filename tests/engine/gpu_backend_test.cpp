// The GPU backends (CUDA, HIP) against the CPU backend, the reference: every op of
// BackendContext for every weight type it takes, compared by normalized mean squared error
// (sum (gpu - cpu)^2 / sum cpu^2, as ggml's test-backend-ops does), and greedy generation on
// stories260K token for token. Every GPU case skips, saying why, where that backend was not
// compiled in or sees no device (always so in CI); the fallback cases run everywhere.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/backends/backend.h"
#include "engine/backends/gpu_backend.h"
#include "engine/backends/gpusim/runtime.h"
#include "engine/backends/registry.h"
#include "engine/gguf/types.h"
#include "engine/model/model.h"
#include "engine/serve/session.h"
#include "engine/tokenizer/tokenizer.h"

namespace sextant {
namespace {

using gguf::TensorType;

// Why `kind` cannot run here, or "" when it can.
std::string SkipReason(BackendKind kind) {
  Result<BackendChoice> c = ChooseBackend(BackendName(kind));
  if (!c.ok()) {
    return std::string(BackendName(kind)) + " backend unusable here: " + c.status().ToString();
  }
  return "";
}

// A weight in host memory, described as the GGUF reader would describe it.
struct HostWeight {
  std::vector<uint8_t> bytes;
  gguf::Tensor tensor;
};

// Random weights of any type. Block scales are set to finite values small enough that every
// dequantized element stays within a few units.
std::unique_ptr<HostWeight> MakeWeight(TensorType type, int64_t rows, int64_t cols, uint32_t seed) {
  auto h = std::make_unique<HostWeight>();
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.5f);
  std::uniform_real_distribution<float> unit(0.5f, 1.5f);
  const uint64_t row_bytes = gguf::RowBytes(type, cols).value();
  h->bytes.resize(static_cast<size_t>(row_bytes * static_cast<uint64_t>(rows)));
  for (uint8_t& b : h->bytes) b = static_cast<uint8_t>(rng() & 0xFF);
  const auto set_f16 = [](void* p, float v) {
    const gguf::f16_t bits = gguf::F32ToF16(v);
    std::memcpy(p, &bits, 2);
  };
  const int64_t n = rows * cols;
  uint8_t* p = h->bytes.data();
  switch (type) {
    case TensorType::kF32:
      for (int64_t i = 0; i < n; ++i) {
        const float v = normal(rng);
        std::memcpy(p + 4 * i, &v, 4);
      }
      break;
    case TensorType::kF16:
      for (int64_t i = 0; i < n; ++i) set_f16(p + 2 * i, normal(rng));
      break;
    case TensorType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        const gguf::bf16_t bits = gguf::F32ToBF16(normal(rng));
        std::memcpy(p + 2 * i, &bits, 2);
      }
      break;
    case TensorType::kQ8_0:
      for (int64_t b = 0; b < n / 32; ++b) set_f16(p + b * 34, 0.01f * unit(rng));
      break;
    case TensorType::kQ4_0:
      for (int64_t b = 0; b < n / 32; ++b) set_f16(p + b * 18, 0.1f * unit(rng));
      break;
    case TensorType::kQ4_K:
      for (int64_t b = 0; b < n / 256; ++b) {
        set_f16(p + b * 144, 0.002f * unit(rng));
        set_f16(p + b * 144 + 2, 0.002f * unit(rng));
      }
      break;
    case TensorType::kQ6_K:
      for (int64_t b = 0; b < n / 256; ++b) set_f16(p + b * 210 + 208, 0.0005f * unit(rng));
      break;
  }
  h->tensor.name = "test.weight";
  h->tensor.type = type;
  h->tensor.dims = {cols, rows};
  h->tensor.size_bytes = h->bytes.size();
  h->tensor.data = h->bytes.data();
  return h;
}

std::string TypeName(TensorType t) { return std::string(gguf::TensorTypeName(t)); }

double Nmse(const std::vector<float>& got, const std::vector<float>& want) {
  double err = 0.0, norm = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = static_cast<double>(got[i]) - want[i];
    err += d * d;
    norm += static_cast<double>(want[i]) * want[i];
  }
  return norm > 0.0 ? err / norm : err;
}

// One op scenario: builds weights and a context on a backend, runs ops, returns what it read.
using Scenario = std::function<Result<std::vector<float>>(Backend&)>;

constexpr int kMaxTokens = 128;

ContextConfig Config(int head_dim = 64) {
  ContextConfig cfg;
  cfg.kv.layers = 2;
  cfg.kv.slots = 3;
  cfg.kv.context_length = 512;
  cfg.kv.kv_heads = 2;
  cfg.kv.head_dim = head_dim;
  cfg.max_tokens = kMaxTokens;
  cfg.threads = 1;
  return cfg;
}

// A batch of n tokens: token i = first_token + i (a row of the input tables), one slot,
// consecutive positions from first_pos.
struct Batch {
  std::vector<int32_t> tokens, positions, slots;
  ForwardBatch view() const {
    return ForwardBatch{static_cast<int32_t>(tokens.size()), tokens.data(), positions.data(),
                        slots.data()};
  }
};
Batch Run(int n, int first_token, int first_pos, int slot) {
  Batch b;
  for (int i = 0; i < n; ++i) {
    b.tokens.push_back(first_token + i);
    b.positions.push_back(first_pos + i);
    b.slots.push_back(slot);
  }
  return b;
}

Result<std::vector<float>> Read(BackendContext& ctx, Buffer b, int64_t rows, int64_t cols) {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  SEXTANT_RETURN_IF_ERROR(ctx.ReadRows(b, rows, out.data()));
  return out;
}

// Input rows come from F32 tables (GetRows of the batch's tokens), the only way in.
constexpr int kTableRows = 1024;

Scenario GetRowsScenario(TensorType type) {
  return [type](Backend& be) -> Result<std::vector<float>> {
    const int64_t cols = 512;
    auto table = MakeWeight(type, 300, cols, 11);
    SEXTANT_ASSIGN_OR_RETURN(Weight w, be.AddWeight(table->tensor));
    SEXTANT_ASSIGN_OR_RETURN(auto ctx, be.NewContext(Config()));
    SEXTANT_ASSIGN_OR_RETURN(Buffer out, ctx->AllocBuffer(cols, 0));
    Batch b = Run(7, 0, 0, 0);
    b.tokens = {299, 0, 17, 17, 150, 3, 298};
    SEXTANT_RETURN_IF_ERROR(ctx->SetBatch(b.view()));
    ctx->GetRows(w, out);
    return Read(*ctx, out, 7, cols);
  };
}

Scenario MatMulScenario(TensorType type, int rows, int64_t cols) {
  return [=](Backend& be) -> Result<std::vector<float>> {
    const int64_t out_features = 96;  // one full and one partial tile of the tiled kernel
    auto table = MakeWeight(TensorType::kF32, kTableRows, cols, 21);
    auto weight = MakeWeight(type, out_features, cols, 22);
    SEXTANT_ASSIGN_OR_RETURN(Weight t, be.AddWeight(table->tensor));
    SEXTANT_ASSIGN_OR_RETURN(Weight w, be.AddWeight(weight->tensor));
    SEXTANT_ASSIGN_OR_RETURN(auto ctx, be.NewContext(Config()));
    SEXTANT_ASSIGN_OR_RETURN(Buffer x, ctx->AllocBuffer(cols, 0));
    SEXTANT_ASSIGN_OR_RETURN(Buffer y, ctx->AllocBuffer(out_features, 0));
    const Batch b = Run(rows, 5, 0, 0);
    SEXTANT_RETURN_IF_ERROR(ctx->SetBatch(b.view()));
    ctx->GetRows(t, x);
    ctx->MatMul(w, x, rows, y);
    return Read(*ctx, y, rows, out_features);
  };
}

Scenario RmsNormScenario() {
  return [](Backend& be) -> Result<std::vector<float>> {
    const int64_t cols = 320;
    auto table = MakeWeight(TensorType::kF32, kTableRows, cols, 31);
    auto gamma = MakeWeight(TensorType::kF32, 1, cols, 32);
    gamma->tensor.dims = {cols};
    SEXTANT_ASSIGN_OR_RETURN(Weight t, be.AddWeight(table->tensor));
    SEXTANT_ASSIGN_OR_RETURN(Weight g, be.AddWeight(gamma->tensor));
    SEXTANT_ASSIGN_OR_RETURN(auto ctx, be.NewContext(Config()));
    SEXTANT_ASSIGN_OR_RETURN(Buffer x, ctx->AllocBuffer(cols, 0));
    SEXTANT_ASSIGN_OR_RETURN(Buffer out, ctx->AllocBuffer(cols, 0));
    SEXTANT_RETURN_IF_ERROR(ctx->SetBatch(Run(9, 40, 0, 0).view()));
    ctx->GetRows(t, x);
    ctx->RmsNorm(x, g, 1e-5f, 9, out);
    ctx->RmsNorm(x, g, 1e-5f, 9, x);  // in place
    SEXTANT_ASSIGN_OR_RETURN(std::vector<float> a, Read(*ctx, out, 9, cols));
    SEXTANT_ASSIGN_OR_RETURN(std::vector<float> c, Read(*ctx, x, 9, cols));
    a.insert(a.end(), c.begin(), c.end());
    return a;
  };
}

Scenario RopeScenario() {
  return [](Backend& be) -> Result<std::vector<float>> {
    const int heads = 8, head_dim = 64;
    const int64_t cols = heads * head_dim;
    auto table = MakeWeight(TensorType::kF32, kTableRows, cols, 41);
    SEXTANT_ASSIGN_OR_RETURN(Weight t, be.AddWeight(table->tensor));
    SEXTANT_ASSIGN_OR_RETURN(auto ctx, be.NewContext(Config()));
    SEXTANT_ASSIGN_OR_RETURN(Buffer x, ctx->AllocBuffer(cols, 0));
    SEXTANT_RETURN_IF_ERROR(ctx->SetBatch(Run(6, 0, 497, 0).view()));  // large angles too
    ctx->GetRows(t, x);
    ctx->Rope(x, RopeShape{heads, head_dim, head_dim, 10000.0f});
    return Read(*ctx, x, 6, cols);
  };
}

// Prefill of one sequence in three passes (tiled path), a decode step at position 300 (split
// positions), a second sequence's prefill, then one batch of three slots at different
// positions (one row per block); every pass's output is compared. Head widths up to 128 and
// above (Gemma's 256, and 160: not a multiple of the warp) run different kernel instances.
Scenario AttentionScenario(int hd) {
  return [hd](Backend& be) -> Result<std::vector<float>> {
    const int heads = 8, kv_heads = 2;
    auto tq = MakeWeight(TensorType::kF32, kTableRows, heads * hd, 51);
    auto tk = MakeWeight(TensorType::kF32, kTableRows, kv_heads * hd, 52);
    auto tv = MakeWeight(TensorType::kF32, kTableRows, kv_heads * hd, 53);
    SEXTANT_ASSIGN_OR_RETURN(Weight wq, be.AddWeight(tq->tensor));
    SEXTANT_ASSIGN_OR_RETURN(Weight wk, be.AddWeight(tk->tensor));
    SEXTANT_ASSIGN_OR_RETURN(Weight wv, be.AddWeight(tv->tensor));
    SEXTANT_ASSIGN_OR_RETURN(auto ctx, be.NewContext(Config(hd)));
    SEXTANT_ASSIGN_OR_RETURN(Buffer q, ctx->AllocBuffer(heads * hd, 0));
    SEXTANT_ASSIGN_OR_RETURN(Buffer k, ctx->AllocBuffer(kv_heads * hd, 0));
    SEXTANT_ASSIGN_OR_RETURN(Buffer v, ctx->AllocBuffer(kv_heads * hd, 0));
    SEXTANT_ASSIGN_OR_RETURN(Buffer out, ctx->AllocBuffer(heads * hd, 0));
    const AttentionShape shape{heads, kv_heads, hd, 1.0f / std::sqrt(static_cast<float>(hd))};
    Batch mixed;
    mixed.tokens = {900, 901, 902};
    mixed.positions = {301, 40, 0};
    mixed.slots = {0, 1, 2};
    const std::vector<Batch> passes = {Run(128, 0, 0, 0),    Run(128, 128, 128, 0),
                                       Run(44, 256, 256, 0), Run(1, 300, 300, 0),
                                       Run(40, 400, 0, 1),   mixed};
    std::vector<float> all;
    for (const Batch& b : passes) {
      SEXTANT_RETURN_IF_ERROR(ctx->SetBatch(b.view()));
      ctx->GetRows(wq, q);
      ctx->GetRows(wk, k);
      ctx->GetRows(wv, v);
      ctx->Attention(1, q, k, v, shape, out);
      SEXTANT_ASSIGN_OR_RETURN(std::vector<float> o,
                               Read(*ctx, out, static_cast<int64_t>(b.tokens.size()), heads * hd));
      all.insert(all.end(), o.begin(), o.end());
    }
    return all;
  };
}

// SwiGlu, Add or SelectRows on rows of two tables.
Scenario ElementwiseScenario(const std::string& op) {
  return [op](Backend& be) -> Result<std::vector<float>> {
    const int64_t cols = 172;  // not a multiple of 8 (stories260K's feed-forward width)
    auto ta = MakeWeight(TensorType::kF32, kTableRows, cols, 61);
    auto tb = MakeWeight(TensorType::kF32, kTableRows, cols, 62);
    SEXTANT_ASSIGN_OR_RETURN(Weight wa, be.AddWeight(ta->tensor));
    SEXTANT_ASSIGN_OR_RETURN(Weight wb, be.AddWeight(tb->tensor));
    SEXTANT_ASSIGN_OR_RETURN(auto ctx, be.NewContext(Config()));
    SEXTANT_ASSIGN_OR_RETURN(Buffer a, ctx->AllocBuffer(cols, 0));
    SEXTANT_ASSIGN_OR_RETURN(Buffer b, ctx->AllocBuffer(cols, 0));
    SEXTANT_ASSIGN_OR_RETURN(Buffer sel, ctx->AllocBuffer(cols, 4));
    SEXTANT_RETURN_IF_ERROR(ctx->SetBatch(Run(11, 3, 0, 0).view()));
    ctx->GetRows(wa, a);
    ctx->GetRows(wb, b);
    if (op == "SwiGlu") {
      ctx->SwiGlu(a, b);
      return Read(*ctx, a, 11, cols);
    }
    if (op == "Add") {
      ctx->Add(a, b);
      return Read(*ctx, a, 11, cols);
    }
    const std::vector<int32_t> rows = {10, 0, 4, 4};
    ctx->SelectRows(b, rows, sel);
    return Read(*ctx, sel, 4, cols);
  };
}

// RoPE in NeoX mode with linear scaling and per-frequency factors (Llama 3's rope_freqs).
Scenario RopeScaledScenario() {
  return [](Backend& be) -> Result<std::vector<float>> {
    const int heads = 4, head_dim = 64;
    const int64_t cols = heads * head_dim;
    auto table = MakeWeight(TensorType::kF32, kTableRows, cols, 42);
    auto factors = MakeWeight(TensorType::kF32, 1, head_dim / 2, 43);
    factors->tensor.dims = {head_dim / 2};
    float* f = reinterpret_cast<float*>(factors->bytes.data());
    for (int i = 0; i < head_dim / 2; ++i) f[i] = 1.0f + static_cast<float>(i % 5);
    SEXTANT_ASSIGN_OR_RETURN(Weight t, be.AddWeight(table->tensor));
    SEXTANT_ASSIGN_OR_RETURN(Weight ff, be.AddWeight(factors->tensor));
    SEXTANT_ASSIGN_OR_RETURN(auto ctx, be.NewContext(Config()));
    SEXTANT_ASSIGN_OR_RETURN(Buffer x, ctx->AllocBuffer(cols, 0));
    SEXTANT_RETURN_IF_ERROR(ctx->SetBatch(Run(6, 0, 497, 0).view()));
    ctx->GetRows(t, x);
    RopeShape shape{heads, head_dim, head_dim, 500000.0f};
    shape.neox = true;
    shape.freq_scale = 0.25f;
    shape.freq_factors = ff;
    ctx->Rope(x, shape);
    return Read(*ctx, x, 6, cols);
  };
}

// Attention with a sliding window and soft-capped scores (gemma2), prefill and decode.
Scenario AttentionWindowScenario(int hd) {
  return [hd](Backend& be) -> Result<std::vector<float>> {
    const int heads = 4, kv_heads = 2;
    auto tq = MakeWeight(TensorType::kF32, kTableRows, heads * hd, 54);
    auto tk = MakeWeight(TensorType::kF32, kTableRows, kv_heads * hd, 55);
    auto tv = MakeWeight(TensorType::kF32, kTableRows, kv_heads * hd, 56);
    SEXTANT_ASSIGN_OR_RETURN(Weight wq, be.AddWeight(tq->tensor));
    SEXTANT_ASSIGN_OR_RETURN(Weight wk, be.AddWeight(tk->tensor));
    SEXTANT_ASSIGN_OR_RETURN(Weight wv, be.AddWeight(tv->tensor));
    SEXTANT_ASSIGN_OR_RETURN(auto ctx, be.NewContext(Config(hd)));
    SEXTANT_ASSIGN_OR_RETURN(Buffer q, ctx->AllocBuffer(heads * hd, 0));
    SEXTANT_ASSIGN_OR_RETURN(Buffer k, ctx->AllocBuffer(kv_heads * hd, 0));
    SEXTANT_ASSIGN_OR_RETURN(Buffer v, ctx->AllocBuffer(kv_heads * hd, 0));
    SEXTANT_ASSIGN_OR_RETURN(Buffer out, ctx->AllocBuffer(heads * hd, 0));
    AttentionShape shape{heads, 2, hd, 1.0f / std::sqrt(static_cast<float>(hd))};
    shape.window = 37;
    shape.softcap = 2.0f;
    std::vector<float> all;
    for (const Batch& b : {Run(100, 0, 0, 0), Run(1, 100, 100, 0), Run(1, 101, 101, 0)}) {
      SEXTANT_RETURN_IF_ERROR(ctx->SetBatch(b.view()));
      ctx->GetRows(wq, q);
      ctx->GetRows(wk, k);
      ctx->GetRows(wv, v);
      ctx->Attention(0, q, k, v, shape, out);
      SEXTANT_ASSIGN_OR_RETURN(std::vector<float> o,
                               Read(*ctx, out, static_cast<int64_t>(b.tokens.size()), heads * hd));
      all.insert(all.end(), o.begin(), o.end());
    }
    return all;
  };
}

// GeGlu, AddBias, RmsNormHeads, Scale and SoftCap on rows of a table.
Scenario ArchOpScenario(const std::string& op) {
  return [op](Backend& be) -> Result<std::vector<float>> {
    const int64_t cols = 256;
    auto ta = MakeWeight(TensorType::kF32, kTableRows, cols, 71);
    auto tb = MakeWeight(TensorType::kF32, kTableRows, cols, 72);
    auto bias = MakeWeight(TensorType::kF32, 1, cols, 73);
    bias->tensor.dims = {cols};
    auto gamma = MakeWeight(TensorType::kF32, 1, 64, 74);
    gamma->tensor.dims = {64};
    SEXTANT_ASSIGN_OR_RETURN(Weight wa, be.AddWeight(ta->tensor));
    SEXTANT_ASSIGN_OR_RETURN(Weight wb, be.AddWeight(tb->tensor));
    SEXTANT_ASSIGN_OR_RETURN(Weight wbias, be.AddWeight(bias->tensor));
    SEXTANT_ASSIGN_OR_RETURN(Weight wg, be.AddWeight(gamma->tensor));
    SEXTANT_ASSIGN_OR_RETURN(auto ctx, be.NewContext(Config()));
    SEXTANT_ASSIGN_OR_RETURN(Buffer a, ctx->AllocBuffer(cols, 0));
    SEXTANT_ASSIGN_OR_RETURN(Buffer b, ctx->AllocBuffer(cols, 0));
    SEXTANT_RETURN_IF_ERROR(ctx->SetBatch(Run(11, 3, 0, 0).view()));
    ctx->GetRows(wa, a);
    ctx->GetRows(wb, b);
    if (op == "GeGlu") ctx->GeGlu(a, b);
    if (op == "AddBias") ctx->AddBias(a, wbias);
    if (op == "RmsNormHeads") ctx->RmsNormHeads(a, wg, 1e-6f, 4, 64);
    if (op == "Scale") ctx->Scale(a, 1.7f, 9);
    if (op == "SoftCap") ctx->SoftCap(a, 0.8f, 9);
    return Read(*ctx, a, 11, cols);
  };
}

struct OpCase {
  std::string name;  // op and shape, e.g. "MatMul_Q4_K_rows70"
  std::function<Scenario()> scenario;
  double max_nmse;
  BackendKind backend;
};

std::string BackendLabel(BackendKind k) { return std::string(BackendName(k)); }

// How a case reads in test listings (instead of its bytes).
void PrintTo(const OpCase& c, std::ostream* os) {
  *os << c.name << " on " << BackendLabel(c.backend);
}

std::vector<OpCase> AllCases() {
  const TensorType kTypes[] = {TensorType::kF32,  TensorType::kF16,  TensorType::kBF16,
                               TensorType::kQ8_0, TensorType::kQ4_0, TensorType::kQ4_K,
                               TensorType::kQ6_K};
  std::vector<OpCase> cases;
  for (BackendKind be : {BackendKind::kCuda, BackendKind::kHip}) {
    for (TensorType t : kTypes) {
      cases.push_back({"GetRows_" + TypeName(t), [t] { return GetRowsScenario(t); }, 1e-12, be});
      const bool quantized = gguf::BlockElements(t) > 1;
      // The CPU quantizes activations to 8 bits for quantized weights; the GPU multiplies in
      // f32. ggml's bound for products, 5e-4, covers that difference.
      const double bound = quantized ? 5e-4 : 1e-9;
      for (int rows : {1, 5, 70}) {  // vector kernel (one, several tokens), tiled kernel
        cases.push_back({"MatMul_" + TypeName(t) + "_rows" + std::to_string(rows),
                         [t, rows] { return MatMulScenario(t, rows, 512); }, bound, be});
      }
      if (!quantized) {
        for (int rows : {1, 70}) {
          cases.push_back({"MatMul_" + TypeName(t) + "_cols172_rows" + std::to_string(rows),
                           [t, rows] { return MatMulScenario(t, rows, 172); }, bound, be});
        }
      }
    }
    cases.push_back({"RmsNorm_F32", [] { return RmsNormScenario(); }, 1e-10, be});
    cases.push_back({"Rope_F32", [] { return RopeScenario(); }, 1e-7, be});
    for (int hd : {64, 160, 256}) {
      const std::string suffix = hd == 64 ? "" : "_hd" + std::to_string(hd);
      cases.push_back({"Attention_F32" + suffix, [hd] { return AttentionScenario(hd); }, 1e-7, be});
      cases.push_back({"AttentionWindowSoftcap_F32" + suffix,
                       [hd] { return AttentionWindowScenario(hd); }, 1e-7, be});
    }
    cases.push_back({"RopeNeoxScaled_F32", [] { return RopeScaledScenario(); }, 1e-7, be});
    for (const char* op : {"GeGlu", "AddBias", "RmsNormHeads", "Scale", "SoftCap"}) {
      const std::string name = op;
      cases.push_back({name + "_F32", [name] { return ArchOpScenario(name); }, 1e-10, be});
    }
    for (const char* op : {"SwiGlu", "Add", "SelectRows"}) {
      const std::string name = op;
      cases.push_back({name + "_F32", [name] { return ElementwiseScenario(name); }, 1e-12, be});
    }
  }
  return cases;
}

// Runs the case's scenario on the CPU and on `gpu`: every value read finite, and the normalized
// error within the case's bound.
void ExpectMatchesTheCpu(const OpCase& c, Backend& gpu) {
  Result<std::unique_ptr<Backend>> cpu =
      CreateBackend(BackendChoice{BackendKind::kCpu, "cpu", ""}, BackendOptions{1, 0});
  ASSERT_TRUE(cpu.ok()) << cpu.status().ToString();
  const Scenario scenario = c.scenario();
  Result<std::vector<float>> want = scenario(**cpu);
  ASSERT_TRUE(want.ok()) << want.status().ToString();
  Result<std::vector<float>> got = scenario(gpu);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), want->size());
  for (size_t i = 0; i < got->size(); ++i) {
    ASSERT_TRUE(std::isfinite((*got)[i])) << "element " << i << " is " << (*got)[i];
  }
  EXPECT_LE(Nmse(*got, *want), c.max_nmse) << c.name << " on " << gpu.device();
}

class GpuOpTest : public ::testing::TestWithParam<OpCase> {};

TEST_P(GpuOpTest, MatchesTheCpu) {
  const OpCase& c = GetParam();
  const std::string why = SkipReason(c.backend);
  if (!why.empty()) GTEST_SKIP() << why;
  Result<BackendChoice> choice = ChooseBackend(BackendName(c.backend));
  ASSERT_TRUE(choice.ok());
  Result<std::unique_ptr<Backend>> gpu = CreateBackend(*choice, BackendOptions{});
  ASSERT_TRUE(gpu.ok()) << gpu.status().ToString();
  ExpectMatchesTheCpu(c, **gpu);
}

INSTANTIATE_TEST_SUITE_P(AllOps, GpuOpTest, ::testing::ValuesIn(AllCases()),
                         [](const ::testing::TestParamInfo<OpCase>& p) {
                           return p.param.name + "_" + BackendLabel(p.param.backend);
                         });

// The same kernels on the GPU simulator (engine/backends/gpusim/): the one kernel source of the
// CUDA and HIP backends, compiled for the CPU and run with one fiber per GPU thread, barriers and
// warp shuffles included. Runs on every machine, so the kernels' indexing, dequantization,
// reductions and split attention are checked even where no GPU is present.
class GpuSimOpTest : public ::testing::TestWithParam<OpCase> {};

TEST_P(GpuSimOpTest, MatchesTheCpu) {
  const OpCase& c = GetParam();
  Result<std::unique_ptr<Backend>> sim = gpusim::NewGpuBackend(BackendOptions{});
  ASSERT_TRUE(sim.ok()) << sim.status().ToString();
  EXPECT_EQ((*sim)->name(), "gpusim");
  ExpectMatchesTheCpu(c, **sim);
}

std::vector<OpCase> SimCases() {
  std::vector<OpCase> cases;
  for (const OpCase& c : AllCases()) {
    if (c.backend == BackendKind::kCuda) cases.push_back(c);  // each scenario once
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AllOps, GpuSimOpTest, ::testing::ValuesIn(SimCases()),
                         [](const ::testing::TestParamInfo<OpCase>& p) { return p.param.name; });

// The scenarios themselves, on the CPU alone (every machine): each runs without error and reads
// finite values, so a GPU case that fails points at the GPU, not at the scenario.
class CpuScenarioTest : public ::testing::TestWithParam<OpCase> {};

TEST_P(CpuScenarioTest, RunsOnTheCpu) {
  Result<std::unique_ptr<Backend>> cpu =
      CreateBackend(BackendChoice{BackendKind::kCpu, "cpu", ""}, BackendOptions{1, 0});
  ASSERT_TRUE(cpu.ok()) << cpu.status().ToString();
  Result<std::vector<float>> out = GetParam().scenario()(**cpu);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_FALSE(out->empty());
  double norm = 0.0;
  for (float v : *out) {
    ASSERT_TRUE(std::isfinite(v));
    norm += static_cast<double>(v) * v;
  }
  EXPECT_GT(norm, 0.0);  // a scenario that reads only zeros would compare nothing
}

std::vector<OpCase> CpuCases() {
  std::vector<OpCase> cases;
  for (const OpCase& c : AllCases()) {
    if (c.backend != BackendKind::kCuda) continue;  // each scenario once
    cases.push_back(c);
    cases.back().backend = BackendKind::kCpu;
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AllOps, CpuScenarioTest, ::testing::ValuesIn(CpuCases()),
                         [](const ::testing::TestParamInfo<OpCase>& p) { return p.param.name; });

const char* kModelPath = SEXTANT_SHARED_DIR "/models/stories260K.gguf";

std::vector<int32_t> Greedy(const std::string& backend, int n) {
  model::LoadOptions lo;
  lo.backend = backend;
  lo.threads = 1;
  if (backend == "gpusim") lo.make_backend = gpusim::NewGpuBackend;
  auto m = model::Model::Load(kModelPath, lo);
  EXPECT_TRUE(m.ok()) << backend << ": " << m.status().ToString();
  if (!m.ok()) return {};
  EXPECT_EQ((*m)->backend_name(), backend);
  serve::GenerateRequest req;
  // Long enough that the prompt takes the tiled product and the tiled attention.
  req.prompt = (*m)->tokenizer().Encode(
      "Once upon a time, there was a little girl named Lily. She loved to play outside", true);
  req.max_tokens = n;
  req.sampling.temperature = 0;
  serve::Session session(*m);
  std::vector<int32_t> out;
  auto st = session.Generate(req, [&](int32_t id) {
    out.push_back(id);
    return true;
  });
  EXPECT_TRUE(st.ok()) << backend << ": " << st.status().ToString();
  return out;
}

class GpuGenerationTest : public ::testing::TestWithParam<BackendKind> {};

TEST_P(GpuGenerationTest, GreedyTokensMatchTheCpu) {
  const std::string why = SkipReason(GetParam());
  if (!why.empty()) GTEST_SKIP() << why;
  if (!std::filesystem::exists(kModelPath)) {
    GTEST_SKIP() << kModelPath << " is absent (a fresh clone has no ../shared)";
  }
  const std::vector<int32_t> cpu = Greedy("cpu", 80);
  ASSERT_EQ(cpu.size(), 80u);
  EXPECT_EQ(Greedy(std::string(BackendName(GetParam())), 80), cpu);
}

// The whole forward pass of the GPU kernels, on the simulator (every machine with ../shared).
TEST(GpuSimGeneration, GreedyTokensMatchTheCpu) {
  if (!std::filesystem::exists(kModelPath)) {
    GTEST_SKIP() << kModelPath << " is absent (a fresh clone has no ../shared)";
  }
  const std::vector<int32_t> cpu = Greedy("cpu", 80);
  ASSERT_EQ(cpu.size(), 80u);
  EXPECT_EQ(Greedy("gpusim", 80), cpu);
}

// Decode steps are issued as a graph captured once and replayed while the launches stay the same
// (recaptured when the attention split changes as the sequence grows); with graphs off
// (SEXTANT_GPU_GRAPHS=0) the same launches go out one by one. Both give the CPU's tokens.
TEST(GpuSimGeneration, DecodeStepsReplayACapturedGraph) {
  if (!std::filesystem::exists(kModelPath)) {
    GTEST_SKIP() << kModelPath << " is absent (a fresh clone has no ../shared)";
  }
  const std::vector<int32_t> cpu = Greedy("cpu", 64);
  const uint64_t launches0 = gpusim::rt::GraphLaunches();
  const uint64_t captures0 = gpusim::rt::GraphInstantiations();
  EXPECT_EQ(Greedy("gpusim", 64), cpu);
  const uint64_t launches = gpusim::rt::GraphLaunches() - launches0;
  const uint64_t captures = gpusim::rt::GraphInstantiations() - captures0;
  EXPECT_GE(launches, 63u);  // every decode step (the prompt's pass runs without a graph)
  EXPECT_GE(captures, 1u);
  EXPECT_LE(captures * 8, launches) << "graphs are recaptured instead of replayed";

  ASSERT_EQ(setenv("SEXTANT_GPU_GRAPHS", "0", 1), 0);
  const uint64_t before = gpusim::rt::GraphLaunches();
  const std::vector<int32_t> direct = Greedy("gpusim", 64);
  unsetenv("SEXTANT_GPU_GRAPHS");
  EXPECT_EQ(direct, cpu);
  EXPECT_EQ(gpusim::rt::GraphLaunches(), before);
}

INSTANTIATE_TEST_SUITE_P(Stories260K, GpuGenerationTest,
                         ::testing::Values(BackendKind::kCuda, BackendKind::kHip),
                         [](const ::testing::TestParamInfo<BackendKind>& p) {
                           return BackendLabel(p.param);
                         });

// These run on every machine: without a usable GPU the choice is a clear error, and "auto"
// falls back to the CPU saying why.
TEST(GpuBackendChoice, AGpuBackendWithoutADeviceIsAClearError) {
  for (BackendKind kind : {BackendKind::kCuda, BackendKind::kHip}) {
    if (SkipReason(kind).empty()) continue;  // a device is here; nothing to refuse
    Result<std::unique_ptr<Backend>> be =
        CreateBackend(BackendChoice{kind, "absent", ""}, BackendOptions{});
    ASSERT_FALSE(be.ok()) << BackendName(kind);
    EXPECT_TRUE(be.status().code() == StatusCode::kFailedPrecondition ||
                be.status().code() == StatusCode::kUnavailable)
        << be.status().ToString();
    EXPECT_NE(be.status().message().find(BackendName(kind)), std::string::npos)
        << be.status().ToString();
  }
}

TEST(GpuBackendChoice, AutoUsesAGpuWhenPresentElseTheCpuWithANote) {
  if (!std::filesystem::exists(kModelPath)) {
    GTEST_SKIP() << kModelPath << " is absent (a fresh clone has no ../shared)";
  }
  model::LoadOptions lo;
  lo.threads = 1;
  auto m = model::Model::Load(kModelPath, lo);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  if (SkipReason(BackendKind::kCuda).empty()) {
    EXPECT_EQ((*m)->backend_name(), "cuda");
  } else if (SkipReason(BackendKind::kHip).empty()) {
    EXPECT_EQ((*m)->backend_name(), "hip");
  } else {
    EXPECT_EQ((*m)->backend_name(), "cpu");
    EXPECT_NE((*m)->backend_note().find("using the CPU"), std::string::npos)
        << (*m)->backend_note();
  }
}

TEST(GpuBackendChoice, ANegativeDeviceIndexIsRejected) {
  if (!std::filesystem::exists(kModelPath)) {
    GTEST_SKIP() << kModelPath << " is absent (a fresh clone has no ../shared)";
  }
  model::LoadOptions lo;
  lo.backend = "cpu";
  lo.device = -1;
  auto m = model::Model::Load(kModelPath, lo);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sextant
