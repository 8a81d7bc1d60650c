// Each architecture the engine runs (llama with Llama 3's RoPE scaling, qwen2, qwen3, phi3, gemma,
// gemma2), on a small synthesized F32 model, against a scalar float64 reference of that
// architecture's graph written here from its definition: the same greedy tokens, and every
// step's logits within f32 rounding. Also: the tokens are the same on the GPU simulator (the GPU
// kernel source run on the CPU), and architectures this engine does not run are refused by name.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include "engine/backends/gpu_backend.h"
#include "engine/backends/gpusim/runtime.h"
#include "engine/gguf/gguf.h"
#include "engine/gguf/quantize.h"
#include "engine/gguf/synth.h"
#include "engine/gguf/writer.h"
#include "engine/model/model.h"
#include "engine/serve/session.h"

namespace sextant::model {
namespace {

using Vec = std::vector<double>;

Vec Load(const gguf::GgufFile& f, const std::string& name) {
  const gguf::Tensor* t = f.FindTensor(name);
  EXPECT_NE(t, nullptr) << name;
  std::vector<float> out(static_cast<size_t>(t->elements()));
  for (int64_t r = 0; r < t->rows(); ++r) {
    EXPECT_TRUE(gguf::DequantizeRow(t->type, t->data + r * t->row_bytes(), t->dims[0],
                                    out.data() + r * t->dims[0])
                    .ok());
  }
  return Vec(out.begin(), out.end());
}

// The graphs in their plainest form, one position at a time.
class Reference {
 public:
  explicit Reference(const gguf::GgufFile& f) : f_(f) {
    info_ = ReadModelInfo(f).value();
    arch_ = info_.architecture;
    embd_ = Load(f, "token_embd.weight");
    out_norm_ = Load(f, "output_norm.weight");
    output_ = info_.tied_output ? embd_ : Load(f, "output.weight");
    if (info_.rope_freq_factors) factors_ = Load(f, "rope_freqs.weight");
    k_.resize(static_cast<size_t>(info_.block_count));
    v_.resize(static_cast<size_t>(info_.block_count));
  }

  Vec Step(int32_t token) {
    const int64_t d = info_.embedding_length, hd = info_.head_dim, qd = info_.q_dim(),
                  kvd = info_.kv_dim(), ff = info_.feed_forward_length;
    Vec x(embd_.begin() + token * d, embd_.begin() + (token + 1) * d);
    const bool gemma = arch_ == "gemma" || arch_ == "gemma2";
    if (gemma) {
      for (double& e : x) e *= std::sqrt(static_cast<double>(static_cast<float>(d)));
    }
    for (int64_t l = 0; l < info_.block_count; ++l) {
      const std::string p = "blk." + std::to_string(l) + ".";
      Vec xb = Norm(x, Load(f_, p + "attn_norm.weight"));
      Vec q, k, v;
      if (arch_ == "phi3") {
        const Vec qkv = MatVec(Load(f_, p + "attn_qkv.weight"), xb, qd + 2 * kvd);
        q.assign(qkv.begin(), qkv.begin() + qd);
        k.assign(qkv.begin() + qd, qkv.begin() + qd + kvd);
        v.assign(qkv.begin() + qd + kvd, qkv.end());
      } else {
        q = MatVec(Load(f_, p + "attn_q.weight"), xb, qd);
        k = MatVec(Load(f_, p + "attn_k.weight"), xb, kvd);
        v = MatVec(Load(f_, p + "attn_v.weight"), xb, kvd);
      }
      if (arch_ == "qwen2") {
        AddTo(q, Load(f_, p + "attn_q.bias"));
        AddTo(k, Load(f_, p + "attn_k.bias"));
        AddTo(v, Load(f_, p + "attn_v.bias"));
      }
      if (arch_ == "qwen3") {
        HeadNorm(q, Load(f_, p + "attn_q_norm.weight"));
        HeadNorm(k, Load(f_, p + "attn_k_norm.weight"));
      }
      Rope(q);
      Rope(k);
      k_[l].insert(k_[l].end(), k.begin(), k.end());
      v_[l].insert(v_[l].end(), v.begin(), v.end());
      Vec att(static_cast<size_t>(qd));
      const int64_t group = info_.head_count / info_.head_count_kv;
      const int64_t first = arch_ == "gemma2" && l % 2 == 0
                                ? std::max<int64_t>(0, pos_ - info_.sliding_window + 1)
                                : 0;
      for (int64_t h = 0; h < info_.head_count; ++h) {
        const int64_t g = h / group;
        Vec s;
        double mx = -1e300;
        for (int64_t t = first; t <= pos_; ++t) {
          double dot = 0;
          for (int64_t i = 0; i < hd; ++i) dot += q[h * hd + i] * k_[l][t * kvd + g * hd + i];
          double sc = dot * info_.attention_scale;
          if (info_.attn_softcap > 0) sc = info_.attn_softcap * std::tanh(sc / info_.attn_softcap);
          s.push_back(sc);
          mx = std::max(mx, sc);
        }
        double sum = 0;
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (int64_t i = 0; i < hd; ++i) {
          double acc = 0;
          for (int64_t t = first; t <= pos_; ++t) {
            acc += s[static_cast<size_t>(t - first)] / sum * v_[l][t * kvd + g * hd + i];
          }
          att[h * hd + i] = acc;
        }
      }
      Vec o = MatVec(Load(f_, p + "attn_output.weight"), att, d);
      if (arch_ == "gemma2") o = Norm(o, Load(f_, p + "post_attention_norm.weight"));
      AddTo(x, o);
      xb = Norm(x, Load(f_, p + "ffn_norm.weight"));
      Vec gate, up;
      if (arch_ == "phi3") {
        const Vec gu = MatVec(Load(f_, p + "ffn_up.weight"), xb, 2 * ff);
        gate.assign(gu.begin(), gu.begin() + ff);
        up.assign(gu.begin() + ff, gu.end());
      } else {
        gate = MatVec(Load(f_, p + "ffn_gate.weight"), xb, ff);
        up = MatVec(Load(f_, p + "ffn_up.weight"), xb, ff);
      }
      for (int64_t i = 0; i < ff; ++i) {
        const double g = gate[i];
        const double act =
            gemma ? 0.5 * g * (1 + std::tanh(std::sqrt(2 / M_PI) * (g + 0.044715 * g * g * g)))
                  : g / (1 + std::exp(-g));
        gate[i] = act * up[i];
      }
      o = MatVec(Load(f_, p + "ffn_down.weight"), gate, d);
      if (arch_ == "gemma2") o = Norm(o, Load(f_, p + "post_ffw_norm.weight"));
      AddTo(x, o);
    }
    ++pos_;
    Vec logits = MatVec(output_, Norm(x, out_norm_), info_.vocab_size);
    if (info_.final_softcap > 0) {
      for (double& e : logits) e = info_.final_softcap * std::tanh(e / info_.final_softcap);
    }
    return logits;
  }

 private:
  static void AddTo(Vec& a, const Vec& b) {
    for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
  }
  static Vec MatVec(const Vec& w, const Vec& x, int64_t rows) {
    const auto cols = static_cast<int64_t>(x.size());
    Vec y(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      double acc = 0;
      for (int64_t c = 0; c < cols; ++c) acc += w[r * cols + c] * x[c];
      y[r] = acc;
    }
    return y;
  }
  Vec Norm(const Vec& x, const Vec& g) const {
    double ss = 0;
    for (double v : x) ss += v * v;
    const double scale = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + info_.rms_epsilon);
    Vec y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * scale * g[i];
    return y;
  }
  void HeadNorm(Vec& v, const Vec& g) const {
    const int64_t hd = info_.head_dim;
    for (size_t h = 0; h * hd < v.size(); ++h) {
      Vec part(v.begin() + h * hd, v.begin() + (h + 1) * hd);
      part = Norm(part, g);
      std::copy(part.begin(), part.end(), v.begin() + h * hd);
    }
  }
  void Rope(Vec& v) const {
    const int64_t hd = info_.head_dim, rd = info_.rope_dimension_count, half = rd / 2;
    for (int64_t i = 0; i < half; ++i) {
      double theta = static_cast<double>(pos_) * info_.rope_freq_scale *
                     std::pow(static_cast<double>(info_.rope_freq_base), -2.0 * i / rd);
      if (!factors_.empty()) theta /= factors_[i];
      const double c = std::cos(theta), s = std::sin(theta);
      for (size_t h = 0; h * hd < v.size(); ++h) {
        double* p = &v[h * hd + (info_.rope_neox ? i : 2 * i)];
        const int64_t second = info_.rope_neox ? half : 1;
        const double x0 = p[0], x1 = p[second];
        p[0] = x0 * c - x1 * s;
        p[second] = x0 * s + x1 * c;
      }
    }
  }

  const gguf::GgufFile& f_;
  ModelInfo info_;
  std::string arch_;
  Vec embd_, out_norm_, output_, factors_;
  std::vector<Vec> k_, v_;
  int64_t pos_ = 0;
};

class ArchitectureTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sextant_arch_" + std::to_string(::getpid()) + "_" + GetParam());
    std::filesystem::create_directories(dir_);
    path_ = dir_ / "model.gguf";
    auto shape = gguf::LlamaShapeByName(GetParam());
    ASSERT_TRUE(shape.has_value());
    ASSERT_TRUE(gguf::SynthesizeLlama(*shape, gguf::SynthType::kF32, 23, path_).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::vector<int32_t> Generate(const std::shared_ptr<const Model>& m, int n) {
    serve::Session session(m);
    serve::GenerateRequest req;
    req.prompt = kPrompt;
    req.max_tokens = n;
    req.sampling.temperature = 0;
    req.stop_at_eos = false;
    std::vector<int32_t> got;
    auto st = session.Generate(req, [&](int32_t t) {
      got.push_back(t);
      return true;
    });
    EXPECT_TRUE(st.ok()) << st.status().ToString();
    return got;
  }

  const std::vector<int32_t> kPrompt = {1, 300, 301, 302, 7, 260, 261, 262, 263, 264};
  std::filesystem::path dir_, path_;
};

constexpr int kSteps = 24;

TEST_P(ArchitectureTest, GreedyTokensMatchTheFloat64Reference) {
  auto file = gguf::GgufFile::Open(path_);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  Reference ref(**file);
  LoadOptions lo;
  lo.backend = "cpu";
  lo.threads = 2;
  auto m = Model::Load(path_, lo);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  auto ctx = (*m)->NewContext(ContextOptions{});
  ASSERT_TRUE(ctx.ok());
  const int64_t vocab = (*m)->info().vocab_size;
  std::vector<float> logits(static_cast<size_t>(vocab));
  std::vector<int32_t> ref_tokens;
  std::vector<int32_t> feed = kPrompt;
  double worst = 0;
  int32_t pos = 0;
  for (int step = 0; step < kSteps; ++step) {
    Vec r;
    for (int32_t t : feed) {
      r = ref.Step(t);
      const BatchToken bt{t, pos++, 0, true};
      ASSERT_TRUE((*ctx)->Forward(std::span(&bt, 1), logits).ok());
    }
    double num = 0, den = 0;
    for (int64_t i = 0; i < vocab; ++i) {
      num += (logits[i] - r[i]) * (logits[i] - r[i]);
      den += r[i] * r[i];
    }
    worst = std::max(worst, std::sqrt(num / den));
    const int32_t next = static_cast<int32_t>(std::max_element(r.begin(), r.end()) - r.begin());
    ref_tokens.push_back(next);
    feed = {next};
  }
  std::printf("[ %s ] worst normalized logit error over %d steps: %.3g\n", GetParam(), kSteps,
              worst);
  EXPECT_LT(worst, 1e-5);
  EXPECT_EQ(Generate(*m, kSteps), ref_tokens);
}

TEST_P(ArchitectureTest, TheGpuSimulatorGivesTheCpuTokens) {
  LoadOptions cpu;
  cpu.backend = "cpu";
  cpu.threads = 2;
  auto m = Model::Load(path_, cpu);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  LoadOptions sim = cpu;
  sim.make_backend = gpusim::NewGpuBackend;
  auto g = Model::Load(path_, sim);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(Generate(*g, 8), Generate(*m, 8));
}

INSTANTIATE_TEST_SUITE_P(Shapes, ArchitectureTest,
                         ::testing::Values("llama3-tiny", "qwen2-tiny", "qwen3-tiny", "phi3-tiny",
                                           "gemma-tiny", "gemma2-tiny"),
                         [](const ::testing::TestParamInfo<const char*>& p) {
                           std::string s = p.param;
                           std::replace(s.begin(), s.end(), '-', '_');
                           return s;
                         });

TEST(Architectures, OthersAreRefusedByName) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("sextant_arch_refused_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto shape = gguf::LlamaShapeByName("llama3-tiny");
  ASSERT_TRUE(gguf::SynthesizeLlama(*shape, gguf::SynthType::kF32, 1, dir / "m.gguf").ok());
  auto f = gguf::GgufFile::Open(dir / "m.gguf");
  ASSERT_TRUE(f.ok());
  // The same file under another architecture name and another RoPE scaling type.
  for (const auto& [key, value, needle] :
       {std::tuple<std::string, std::string, std::string>{"general.architecture", "mamba",
                                                          "architecture 'mamba'"},
        {"llama.rope.scaling.type", "yarn", "RoPE scaling type 'yarn'"}}) {
    gguf::GgufWriter w;
    for (const auto& [k, v] : (*f)->metadata()) {
      if (k == key) continue;
      ASSERT_TRUE(w.AddMetadata(k, v).ok());
    }
    ASSERT_TRUE(w.AddString(key, value).ok());
    Result<ModelInfo> info = [&]() -> Result<ModelInfo> {
      for (const gguf::Tensor& t : (*f)->tensors()) {
        std::vector<uint8_t> bytes(t.data, t.data + t.size_bytes);
        SEXTANT_RETURN_IF_ERROR(w.AddTensorRaw(t.name, t.type, t.dims, std::move(bytes)));
      }
      SEXTANT_RETURN_IF_ERROR(w.Write(dir / "x.gguf"));
      SEXTANT_ASSIGN_OR_RETURN(auto g, gguf::GgufFile::Open(dir / "x.gguf"));
      return ReadModelInfo(*g);
    }();
    ASSERT_FALSE(info.ok()) << value;
    EXPECT_EQ(info.status().code(), StatusCode::kUnimplemented) << info.status().ToString();
    EXPECT_NE(info.status().message().find(needle), std::string::npos) << info.status().ToString();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sextant::model
