// Hostile files: each known bad shape gives a clear error (naming the key, tensor or byte
// offset) and never a crash. The files are written by GgufWriter and then patched.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string_view>

#include "engine/gguf/gguf.h"
#include "engine/gguf/quantize.h"
#include "engine/gguf/writer.h"

namespace sextant::gguf {
namespace {

using Bytes = std::vector<uint8_t>;

// A small valid file: a few metadata entries and three tensors of different types.
Bytes ValidImage() {
  GgufWriter w;
  EXPECT_TRUE(w.AddString("general.architecture", "llama").ok());
  EXPECT_TRUE(w.AddUint32("llama.block_count", 1).ok());
  EXPECT_TRUE(w.AddUint32("llama.context_length", 64).ok());
  EXPECT_TRUE(w.AddStringArray("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>"}).ok());
  EXPECT_TRUE(w.AddBool("tokenizer.ggml.add_bos_token", true).ok());
  std::vector<float> v(64 * 2);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) * 0.01f - 0.5f;
  EXPECT_TRUE(w.AddTensorF32("tensor_a", TensorType::kF32, {64, 2}, v).ok());
  EXPECT_TRUE(w.AddTensorF32("tensor_b", TensorType::kQ8_0, {64, 2}, v).ok());
  EXPECT_TRUE(w.AddTensorF32("tensor_c", TensorType::kQ4_0, {32}, std::vector<float>(32, 1)).ok());
  return *w.WriteToMemory();
}

size_t FindBytes(const Bytes& b, std::string_view s) {
  const auto it = std::search(b.begin(), b.end(), s.begin(), s.end());
  EXPECT_NE(it, b.end()) << s;
  return static_cast<size_t>(it - b.begin());
}

template <typename T>
void Patch(Bytes& b, size_t at, T v) {
  ASSERT_LE(at + sizeof(T), b.size());
  std::memcpy(b.data() + at, &v, sizeof(T));
}

// Offsets of a tensor info's fields, found from its name.
struct InfoAt {
  size_t n_dims, dims, type, offset;
};
InfoAt TensorInfo(const Bytes& b, std::string_view name, int n_dims) {
  const size_t name_end = FindBytes(b, name) + name.size();
  InfoAt r{};
  r.n_dims = name_end;
  r.dims = name_end + 4;
  r.type = r.dims + 8 * static_cast<size_t>(n_dims);
  r.offset = r.type + 4;
  return r;
}

Status Parse(const Bytes& b) {
  auto f = GgufFile::FromBytes(b.data(), b.size());
  return f.status();
}

void ExpectError(const Bytes& b, StatusCode code, const std::vector<std::string>& words) {
  const Status st = Parse(b);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), code) << st.ToString();
  for (const std::string& w : words) {
    EXPECT_NE(st.message().find(w), std::string::npos) << "'" << w << "' not in: " << st.message();
  }
}

TEST(GgufBadFileTest, ValidImageParses) {
  const Bytes b = ValidImage();
  auto f = GgufFile::FromBytes(b.data(), b.size());
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ((*f)->tensors().size(), 3u);
}

TEST(GgufBadFileTest, TruncatedAtEveryCutPoint) {
  const Bytes b = ValidImage();
  for (size_t cut = 0; cut < b.size(); ++cut) {
    const Bytes t(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(cut));
    const Status st = Parse(t);
    ASSERT_FALSE(st.ok()) << "cut at " << cut;
    EXPECT_FALSE(st.message().empty());
    if (cut < 4) {
      EXPECT_NE(st.message().find("truncated"), std::string::npos) << st.message();
    }
  }
}

TEST(GgufBadFileTest, TruncatedFileOnDisk) {
  Bytes b = ValidImage();
  b.resize(b.size() - 10);
  const auto path = std::filesystem::temp_directory_path() /
                    ("sextant_gguf_trunc_" + std::to_string(::getpid()) + ".gguf");
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  auto f = GgufFile::Open(path);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(f.status().message().find("tensor_c"), std::string::npos) << f.status().message();
  EXPECT_NE(f.status().message().find(path.string()), std::string::npos);
  std::filesystem::resize_file(path, 0);
  EXPECT_EQ(GgufFile::Open(path).status().code(), StatusCode::kDataLoss);
  std::filesystem::remove(path);
}

TEST(GgufBadFileTest, BadMagic) {
  Bytes b = ValidImage();
  b[0] = 'X';
  ExpectError(b, StatusCode::kInvalidArgument, {"magic", "offset 0"});
}

TEST(GgufBadFileTest, UnknownVersions) {
  for (uint32_t v : {0u, 1u, 4u, 0x03000000u}) {
    Bytes b = ValidImage();
    Patch<uint32_t>(b, 4, v);
    ExpectError(b, StatusCode::kUnimplemented, {"version"});
  }
  Bytes b = ValidImage();
  Patch<uint32_t>(b, 4, 1);
  ExpectError(b, StatusCode::kUnimplemented, {"version 1"});
  Patch<uint32_t>(b, 4, 2);  // v2 has the same layout
  EXPECT_TRUE(Parse(b).ok());
}

TEST(GgufBadFileTest, StringLengthPastTheEnd) {
  Bytes b = ValidImage();
  // The value of general.architecture: after the key, the u32 type, then u64 length.
  const size_t len_at = FindBytes(b, "general.architecture") + 20 + 4;
  Patch<uint64_t>(b, len_at, 1ull << 40);
  ExpectError(b, StatusCode::kDataLoss, {"general.architecture", "past the end"});
  Patch<uint64_t>(b, len_at, ~0ull);
  ExpectError(b, StatusCode::kDataLoss, {"general.architecture", std::to_string(len_at)});
  // A key length past the end.
  Bytes k = ValidImage();
  Patch<uint64_t>(k, 24, 1ull << 50);
  ExpectError(k, StatusCode::kDataLoss, {"key of metadata entry 0", "offset 24"});
}

TEST(GgufBadFileTest, HugeCounts) {
  Bytes b = ValidImage();
  Patch<uint64_t>(b, 16, 1ull << 62);
  ExpectError(b, StatusCode::kInvalidArgument, {"metadata count", "cannot fit"});
  Bytes t = ValidImage();
  Patch<uint64_t>(t, 8, ~0ull);
  ExpectError(t, StatusCode::kInvalidArgument, {"tensor count", "cannot fit"});
  // A count that fits the file but not what is left after the metadata.
  Bytes t2 = ValidImage();
  Patch<uint64_t>(t2, 8, 40);
  EXPECT_FALSE(Parse(t2).ok());
  // Array length.
  Bytes a = ValidImage();
  const size_t n_at = FindBytes(a, "tokenizer.ggml.tokens") + 21 + 4 + 4;
  Patch<uint64_t>(a, n_at, 1ull << 61);
  ExpectError(a, StatusCode::kDataLoss, {"tokenizer.ggml.tokens", "array length"});
}

TEST(GgufBadFileTest, TensorDataOutsideTheFile) {
  Bytes b = ValidImage();
  const InfoAt c = TensorInfo(b, "tensor_c", 1);
  Patch<uint64_t>(b, c.offset, 1ull << 20);
  ExpectError(b, StatusCode::kDataLoss, {"tensor_c", "outside"});
  Patch<uint64_t>(b, c.offset, ~0ull - 31);  // aligned, would wrap offset + size
  ExpectError(b, StatusCode::kDataLoss, {"tensor_c", "outside"});
}

TEST(GgufBadFileTest, DimensionOverflow) {
  // 2^42 + 1 elements per row: as one dimension the size fits u64 but lies outside the file;
  // with a second dimension of 2^22 the element count overflows int64 and must not wrap.
  Bytes b = ValidImage();
  const InfoAt a = TensorInfo(b, "tensor_a", 2);
  Patch<uint64_t>(b, a.dims, (1ull << 42) + 1);
  ExpectError(b, StatusCode::kDataLoss, {"tensor_a", "outside"});
  Patch<uint64_t>(b, a.dims + 8, 1ull << 22);
  ExpectError(b, StatusCode::kInvalidArgument, {"tensor_a", "overflow"});
  Patch<uint64_t>(b, a.dims, 1ull << 63);
  ExpectError(b, StatusCode::kInvalidArgument, {"tensor_a", "out of range"});
  Patch<uint64_t>(b, a.dims, 0);
  ExpectError(b, StatusCode::kInvalidArgument, {"tensor_a", "dimension 0"});
  // Byte size overflow without element overflow: 2^62 F32 elements are 2^64 bytes.
  Bytes q = ValidImage();
  const InfoAt qa = TensorInfo(q, "tensor_a", 2);
  Patch<uint64_t>(q, qa.dims, 1ull << 61);
  Patch<uint64_t>(q, qa.dims + 8, 2);
  ExpectError(q, StatusCode::kInvalidArgument, {"tensor_a", "overflows"});
  Patch<uint64_t>(q, qa.dims, 1ull << 62);
  Patch<uint64_t>(q, qa.dims + 8, 1);
  ExpectError(q, StatusCode::kInvalidArgument, {"tensor_a", "overflows"});
}

TEST(GgufBadFileTest, TooManyDimensions) {
  Bytes b = ValidImage();
  const InfoAt a = TensorInfo(b, "tensor_a", 2);
  Patch<uint32_t>(b, a.n_dims, 5);
  ExpectError(b, StatusCode::kInvalidArgument, {"tensor_a", "n_dims 5"});
  Patch<uint32_t>(b, a.n_dims, 0);
  ExpectError(b, StatusCode::kInvalidArgument, {"tensor_a", "n_dims 0"});
}

TEST(GgufBadFileTest, UnsupportedTensorType) {
  Bytes b = ValidImage();
  const InfoAt a = TensorInfo(b, "tensor_a", 2);
  Patch<uint32_t>(b, a.type, 6);
  ExpectError(b, StatusCode::kUnimplemented, {"tensor_a", "type id 6", "Q5_0"});
  Patch<uint32_t>(b, a.type, 123456);
  ExpectError(b, StatusCode::kUnimplemented, {"tensor_a", "123456"});
  // A supported type whose block does not divide the row: Q4_K rows of 64.
  Patch<uint32_t>(b, a.type, 12);
  ExpectError(b, StatusCode::kInvalidArgument, {"tensor_a", "block size"});
}

TEST(GgufBadFileTest, MisalignedOffset) {
  Bytes b = ValidImage();
  const InfoAt c = TensorInfo(b, "tensor_c", 1);
  uint64_t off;
  std::memcpy(&off, b.data() + c.offset, 8);
  Patch<uint64_t>(b, c.offset, off + 4);
  ExpectError(b, StatusCode::kInvalidArgument, {"tensor_c", "alignment"});
}

TEST(GgufBadFileTest, OverlappingTensors) {
  Bytes b = ValidImage();
  const InfoAt c = TensorInfo(b, "tensor_c", 1);
  Patch<uint64_t>(b, c.offset, 0);  // tensor_a's data
  ExpectError(b, StatusCode::kInvalidArgument, {"overlaps", "tensor_a", "tensor_c"});
}

TEST(GgufBadFileTest, DuplicateKeyAndTensor) {
  GgufWriter w;
  ASSERT_TRUE(w.AddUint32("key.one", 1).ok());
  ASSERT_TRUE(w.AddUint32("key.two", 2).ok());
  ASSERT_TRUE(w.AddTensorF32("t1", TensorType::kF32, {1}, {1}).ok());
  ASSERT_TRUE(w.AddTensorF32("t2", TensorType::kF32, {1}, {2}).ok());
  Bytes d = *w.WriteToMemory();
  Bytes dk = d;
  std::memcpy(dk.data() + FindBytes(dk, "key.two"), "key.one", 7);
  ExpectError(dk, StatusCode::kInvalidArgument, {"duplicate", "key.one"});
  Bytes dt = d;
  dt[FindBytes(dt, "t2") + 1] = '1';
  ExpectError(dt, StatusCode::kInvalidArgument, {"duplicate", "'t1'"});
}

TEST(GgufBadFileTest, BadMetadataValues) {
  // Unknown value type.
  Bytes b = ValidImage();
  const size_t type_at = FindBytes(b, "llama.block_count") + 17;
  Patch<uint32_t>(b, type_at, 13);
  ExpectError(b, StatusCode::kInvalidArgument, {"llama.block_count", "unknown value type 13"});
  // Nested array.
  Bytes n = ValidImage();
  Patch<uint32_t>(n, FindBytes(n, "tokenizer.ggml.tokens") + 21 + 4, 9);
  ExpectError(n, StatusCode::kInvalidArgument, {"tokenizer.ggml.tokens", "nested"});
  // A bool that is neither 0 nor 1.
  Bytes t = ValidImage();
  t[FindBytes(t, "tokenizer.ggml.add_bos_token") + 28 + 4] = 2;
  ExpectError(t, StatusCode::kInvalidArgument, {"add_bos_token", "bool"});
  // general.alignment: wrong type and not a power of two.
  GgufWriter w;
  ASSERT_TRUE(w.AddUint32("general.alignment", 32).ok());
  Bytes a = *w.WriteToMemory();
  Bytes a1 = a;
  Patch<uint32_t>(a1, a1.size() - 4, 24);
  ExpectError(a1, StatusCode::kInvalidArgument, {"general.alignment", "power of two"});
  Bytes a2 = a;
  Patch<uint32_t>(a2, a2.size() - 8, static_cast<uint32_t>(ValueType::kInt32));
  ExpectError(a2, StatusCode::kInvalidArgument, {"general.alignment", "int32"});
}

TEST(GgufBadFileTest, RandomByteFlipsNeverCrash) {
  const Bytes good = ValidImage();
  std::mt19937_64 rng(12345);
  int accepted = 0;
  for (int iter = 0; iter < 2000; ++iter) {
    Bytes b = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      b[rng() % b.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
    }
    if (rng() % 4 == 0) b.resize(rng() % b.size());
    auto f = GgufFile::FromBytes(b.data(), b.size());
    if (!f.ok()) {
      ASSERT_FALSE(f.status().message().empty());
      continue;
    }
    ++accepted;
    // Whatever was accepted is safe to use: touch every tensor byte range and dequantize rows.
    for (const Tensor& t : (*f)->tensors()) {
      ASSERT_GE(t.data, b.data());
      ASSERT_LE(t.data + t.size_bytes, b.data() + b.size());
      if (t.size_bytes > 0 && t.dims[0] <= 4096) {
        std::vector<float> row(static_cast<size_t>(t.dims[0]));
        ASSERT_TRUE(DequantizeRow(t.type, t.data, t.dims[0], row.data()).ok());
      }
    }
    for (const auto& [key, value] : (*f)->metadata()) {
      (void)(*f)->GetUint(key);
      (void)(*f)->GetString(key);
      (void)(*f)->GetArray(key);
    }
  }
  EXPECT_GT(accepted, 0);  // flips inside tensor data keep the file valid
}

}  // namespace
}  // namespace sextant::gguf
