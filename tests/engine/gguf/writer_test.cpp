// GgufWriter -> GgufFile round trips: every metadata value type, every tensor type, files on
// disk written atomically.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "engine/gguf/gguf.h"
#include "engine/gguf/quantize.h"
#include "engine/gguf/writer.h"

namespace sextant::gguf {
namespace {

std::filesystem::path TempPath(const std::string& name) {
  return std::filesystem::temp_directory_path() /
         ("sextant_gguf_" + std::to_string(::getpid()) + "_" + name);
}

template <typename T>
ArrayValue Arr(ValueType t, std::vector<T> v) {
  ArrayValue a;
  a.element_type = t;
  a.elements = std::move(v);
  return a;
}

TEST(GgufWriterTest, EveryMetadataTypeRoundTrips) {
  GgufWriter w;
  ASSERT_TRUE(w.AddMetadata("t.u8", {ValueType::kUint8, uint8_t{200}}).ok());
  ASSERT_TRUE(w.AddMetadata("t.i8", {ValueType::kInt8, int8_t{-100}}).ok());
  ASSERT_TRUE(w.AddMetadata("t.u16", {ValueType::kUint16, uint16_t{60000}}).ok());
  ASSERT_TRUE(w.AddMetadata("t.i16", {ValueType::kInt16, int16_t{-30000}}).ok());
  ASSERT_TRUE(w.AddUint32("t.u32", 4000000000u).ok());
  ASSERT_TRUE(w.AddInt32("t.i32", -2000000000).ok());
  ASSERT_TRUE(w.AddFloat32("t.f32", 1.5e-5f).ok());
  ASSERT_TRUE(w.AddBool("t.bool", true).ok());
  ASSERT_TRUE(w.AddString("t.str", std::string("h\xC3\xA9llo\0x", 8)).ok());
  ASSERT_TRUE(w.AddUint64("t.u64", 18000000000000000000ull).ok());
  ASSERT_TRUE(w.AddMetadata("t.i64", {ValueType::kInt64, int64_t{-9000000000000000000}}).ok());
  ASSERT_TRUE(w.AddMetadata("t.f64", {ValueType::kFloat64, 2.718281828459045}).ok());
  ASSERT_TRUE(w.AddArray("a.u8", Arr(ValueType::kUint8, std::vector<uint8_t>{1, 2, 255})).ok());
  ASSERT_TRUE(w.AddArray("a.i8", Arr(ValueType::kInt8, std::vector<int8_t>{-1, 0, 127})).ok());
  ASSERT_TRUE(w.AddArray("a.u16", Arr(ValueType::kUint16, std::vector<uint16_t>{65535})).ok());
  ASSERT_TRUE(w.AddArray("a.i16", Arr(ValueType::kInt16, std::vector<int16_t>{-5, 5})).ok());
  ASSERT_TRUE(w.AddArray("a.u32", Arr(ValueType::kUint32, std::vector<uint32_t>{7, 8})).ok());
  ASSERT_TRUE(w.AddArray("a.i32", Arr(ValueType::kInt32, std::vector<int32_t>{-7, 1, 6})).ok());
  ASSERT_TRUE(w.AddArray("a.f32", Arr(ValueType::kFloat32, std::vector<float>{0.25f, -1})).ok());
  ASSERT_TRUE(w.AddArray("a.bool", Arr(ValueType::kBool, std::vector<bool>{true, false})).ok());
  ASSERT_TRUE(w.AddStringArray("a.str", {"<s>", "", "\xE2\x96\x81the"}).ok());
  ASSERT_TRUE(w.AddArray("a.u64", Arr(ValueType::kUint64, std::vector<uint64_t>{1ull << 63})).ok());
  ASSERT_TRUE(w.AddArray("a.i64", Arr(ValueType::kInt64, std::vector<int64_t>{-(1ll << 62)})).ok());
  ASSERT_TRUE(w.AddArray("a.f64", Arr(ValueType::kFloat64, std::vector<double>{1e300})).ok());
  ASSERT_TRUE(w.AddArray("a.empty", Arr(ValueType::kInt32, std::vector<int32_t>{})).ok());

  auto bytes = w.WriteToMemory();
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(bytes->size(), w.FileSize());
  auto f = GgufFile::FromBytes(bytes->data(), bytes->size());
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  const GgufFile& g = **f;
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.metadata().size(), 25u);
  EXPECT_EQ(*g.GetUint("t.u8"), 200u);
  EXPECT_EQ(*g.GetInt("t.i8"), -100);
  EXPECT_EQ(*g.GetUint("t.u16"), 60000u);
  EXPECT_EQ(*g.GetInt("t.i16"), -30000);
  EXPECT_EQ(*g.GetUint("t.u32"), 4000000000u);
  EXPECT_EQ(*g.GetInt("t.i32"), -2000000000);
  EXPECT_EQ(*g.GetFloat("t.f32"), 1.5e-5f);
  EXPECT_EQ(*g.GetBool("t.bool"), true);
  EXPECT_EQ(*g.GetString("t.str"), std::string("h\xC3\xA9llo\0x", 8));
  EXPECT_EQ(*g.GetUint("t.u64"), 18000000000000000000ull);
  EXPECT_EQ(*g.GetInt("t.i64"), -9000000000000000000);
  EXPECT_EQ(std::get<double>(g.Find("t.f64")->data), 2.718281828459045);
  EXPECT_FLOAT_EQ(*g.GetFloat("t.f64"), 2.7182817f);
  EXPECT_EQ(g.Find("t.i8")->type, ValueType::kInt8);

  auto arr = [&](const char* k) { return *g.GetArray(k); };
  EXPECT_EQ(std::get<std::vector<uint8_t>>(arr("a.u8")->elements),
            (std::vector<uint8_t>{1, 2, 255}));
  EXPECT_EQ(std::get<std::vector<int8_t>>(arr("a.i8")->elements),
            (std::vector<int8_t>{-1, 0, 127}));
  EXPECT_EQ(std::get<std::vector<uint16_t>>(arr("a.u16")->elements),
            (std::vector<uint16_t>{65535}));
  EXPECT_EQ(std::get<std::vector<int16_t>>(arr("a.i16")->elements), (std::vector<int16_t>{-5, 5}));
  EXPECT_EQ(std::get<std::vector<uint32_t>>(arr("a.u32")->elements), (std::vector<uint32_t>{7, 8}));
  EXPECT_EQ(std::get<std::vector<int32_t>>(arr("a.i32")->elements),
            (std::vector<int32_t>{-7, 1, 6}));
  EXPECT_EQ(std::get<std::vector<float>>(arr("a.f32")->elements), (std::vector<float>{0.25f, -1}));
  EXPECT_EQ(std::get<std::vector<bool>>(arr("a.bool")->elements), (std::vector<bool>{true, false}));
  EXPECT_EQ(std::get<std::vector<std::string>>(arr("a.str")->elements),
            (std::vector<std::string>{"<s>", "", "\xE2\x96\x81the"}));
  EXPECT_EQ(std::get<std::vector<uint64_t>>(arr("a.u64")->elements),
            (std::vector<uint64_t>{1ull << 63}));
  EXPECT_EQ(std::get<std::vector<int64_t>>(arr("a.i64")->elements),
            (std::vector<int64_t>{-(1ll << 62)}));
  EXPECT_EQ(std::get<std::vector<double>>(arr("a.f64")->elements), (std::vector<double>{1e300}));
  EXPECT_EQ(arr("a.empty")->size(), 0u);
  EXPECT_EQ(arr("a.str")->element_type, ValueType::kString);
}

TEST(GgufWriterTest, GettersCheckTypesAndRanges) {
  GgufWriter w;
  ASSERT_TRUE(w.AddString("general.architecture", "llama").ok());
  ASSERT_TRUE(w.AddInt32("neg", -3).ok());
  ASSERT_TRUE(w.AddUint64("big", 1ull << 63).ok());
  ASSERT_TRUE(w.AddUint32("n", 7).ok());
  auto bytes = w.WriteToMemory();
  auto f = GgufFile::FromBytes(bytes->data(), bytes->size());
  ASSERT_TRUE(f.ok());
  auto u = (*f)->GetUint("general.architecture");
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(u.status().message().find("'general.architecture'"), std::string::npos);
  EXPECT_NE(u.status().message().find("string"), std::string::npos);
  EXPECT_EQ((*f)->GetString("n").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*f)->GetFloat("n").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*f)->GetBool("n").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*f)->GetArray("n").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*f)->GetUint("neg").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(*(*f)->GetInt("neg"), -3);
  EXPECT_EQ((*f)->GetInt("big").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(*(*f)->GetInt("n"), 7);
  auto missing = (*f)->GetString("llama.context_length");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("llama.context_length"), std::string::npos);
}

TEST(GgufWriterTest, EveryTensorTypeRoundTrips) {
  GgufWriter w;
  ASSERT_TRUE(w.AddString("general.architecture", "test").ok());
  const std::vector<TensorType> types = {TensorType::kF32,  TensorType::kF16,  TensorType::kBF16,
                                         TensorType::kQ8_0, TensorType::kQ4_0, TensorType::kQ4_K,
                                         TensorType::kQ6_K};
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  std::vector<std::vector<float>> src;
  for (TensorType t : types) {
    std::vector<float> v(512 * 3);
    for (float& x : v) x = dist(rng);
    src.push_back(v);
    ASSERT_TRUE(
        w.AddTensorF32(std::string("t.") + std::string(TensorTypeName(t)), t, {512, 3}, v).ok());
  }
  // Raw bytes and 1-D / 4-D shapes.
  std::vector<uint8_t> raw(2 * 3 * 4 * 5 * 4);
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<uint8_t>(i * 7);
  ASSERT_TRUE(w.AddTensorRaw("raw4d", TensorType::kF32, {2, 3, 4, 5}, raw).ok());
  ASSERT_TRUE(w.AddTensorF32("vec", TensorType::kF32, {3}, {1.0f, 2.0f, 3.0f}).ok());

  const auto path = TempPath("types.gguf");
  ASSERT_TRUE(w.Write(path, 2).ok());
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ((*f)->file_size(), w.FileSize());
  ASSERT_EQ((*f)->tensors().size(), types.size() + 2);
  for (size_t i = 0; i < types.size(); ++i) {
    const Tensor& t = (*f)->tensors()[i];
    EXPECT_EQ(t.type, types[i]);
    EXPECT_EQ(t.dims, (std::vector<int64_t>{512, 3}));
    EXPECT_EQ(t.rows(), 3);
    EXPECT_EQ(t.size_bytes, t.row_bytes() * 3);
    // The stored bytes are exactly the reference quantization of the source.
    std::vector<uint8_t> want(t.size_bytes);
    for (int r = 0; r < 3; ++r) {
      ASSERT_TRUE(
          QuantizeRow(types[i], src[i].data() + r * 512, 512, want.data() + r * t.row_bytes())
              .ok());
    }
    EXPECT_EQ(std::memcmp(t.data, want.data(), want.size()), 0) << TensorTypeName(types[i]);
    std::vector<float> back(512);
    ASSERT_TRUE(DequantizeRow(t.type, t.data + 2 * t.row_bytes(), 512, back.data()).ok());
    for (int k = 0; k < 512; ++k) EXPECT_NEAR(back[k], src[i][2 * 512 + k], 0.01f);
  }
  const Tensor* r4 = (*f)->FindTensor("raw4d");
  ASSERT_NE(r4, nullptr);
  EXPECT_EQ(r4->dims, (std::vector<int64_t>{2, 3, 4, 5}));
  EXPECT_EQ(r4->rows(), 60);
  EXPECT_EQ(std::memcmp(r4->data, raw.data(), raw.size()), 0);
  const Tensor* vec = (*f)->FindTensor("vec");
  ASSERT_NE(vec, nullptr);
  EXPECT_EQ(reinterpret_cast<const float*>(vec->data)[2], 3.0f);
  std::filesystem::remove(path);
}

TEST(GgufWriterTest, CustomAlignment) {
  GgufWriter w;
  ASSERT_TRUE(w.AddUint32("general.alignment", 64).ok());
  ASSERT_TRUE(w.AddTensorF32("a", TensorType::kF32, {3}, {1, 2, 3}).ok());
  ASSERT_TRUE(w.AddTensorF32("b", TensorType::kF32, {5}, {1, 2, 3, 4, 5}).ok());
  auto bytes = w.WriteToMemory();
  auto f = GgufFile::FromBytes(bytes->data(), bytes->size());
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ((*f)->alignment(), 64u);
  EXPECT_EQ((*f)->FindTensor("b")->offset, 64u);
  EXPECT_EQ(reinterpret_cast<const float*>((*f)->FindTensor("b")->data)[4], 5.0f);
}

TEST(GgufWriterTest, RejectsBadInput) {
  GgufWriter w;
  ASSERT_TRUE(w.AddUint32("k", 1).ok());
  EXPECT_EQ(w.AddUint32("k", 2).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(w.AddUint32("", 2).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(w.AddMetadata("mismatch", {ValueType::kUint8, std::string("x")}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(w.AddUint32("general.alignment", 48).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(w.AddTensorF32("q", TensorType::kQ4_0, {48}, std::vector<float>(48)).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(w.AddTensorF32("d", TensorType::kF32, {1, 1, 1, 1, 1}, {1}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(w.AddTensorF32("n", TensorType::kF32, {4}, {1, 2}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(w.AddTensorRaw("r", TensorType::kQ8_0, {32}, std::vector<uint8_t>(33)).code(),
            StatusCode::kInvalidArgument);
  ASSERT_TRUE(w.AddTensorF32("t", TensorType::kF32, {1}, {1}).ok());
  EXPECT_EQ(w.AddTensorF32("t", TensorType::kF32, {1}, {1}).code(), StatusCode::kInvalidArgument);
}

TEST(GgufWriterTest, WriteIsAtomicAndCancellable) {
  const auto path = TempPath("cancel.gguf");
  std::filesystem::remove(path);
  GgufWriter w;
  ASSERT_TRUE(w.AddTensorF32("t", TensorType::kF32, {4}, {1, 2, 3, 4}).ok());
  Status st = w.Write(path, 1, [](float) { return false; });
  EXPECT_EQ(st.code(), StatusCode::kCancelled);
  EXPECT_FALSE(std::filesystem::exists(path));
  for (const auto& e : std::filesystem::directory_iterator(path.parent_path())) {
    EXPECT_EQ(e.path().filename().string().rfind(path.filename().string() + ".tmp", 0),
              std::string::npos)
        << "temporary file left behind: " << e.path();
  }
  // Over an existing file: replaced whole.
  { std::ofstream(path) << "old"; }
  ASSERT_TRUE(w.Write(path).ok());
  EXPECT_TRUE(GgufFile::Open(path).ok());
  EXPECT_EQ(w.Write("/nonexistent-dir/x.gguf").code(), StatusCode::kUnavailable);
  std::filesystem::remove(path);
}

TEST(GgufWriterTest, Sha256IsSharedAcrossThreads) {
  GgufWriter w;
  ASSERT_TRUE(w.AddString("general.architecture", "llama").ok());
  const auto path = TempPath("sha.gguf");
  ASSERT_TRUE(w.Write(path).ok());
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok());
  std::vector<std::string> digests(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < digests.size(); ++i) {
    threads.emplace_back([&, i] { digests[i] = (*f)->Sha256().value_or(""); });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(digests[0].size(), 64u);
  for (const auto& d : digests) EXPECT_EQ(d, digests[0]);
  // A different file, a different digest; the same bytes in memory, the same digest.
  auto bytes = w.WriteToMemory();
  auto m = GgufFile::FromBytes(bytes->data(), bytes->size());
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(*(*m)->Sha256(), digests[0]);
  ASSERT_TRUE(w.AddBool("x", true).ok());
  auto other = w.WriteToMemory();
  auto o = GgufFile::FromBytes(other->data(), other->size());
  EXPECT_NE(*(*o)->Sha256(), digests[0]);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace sextant::gguf
