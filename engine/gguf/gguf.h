// GGUF v3 files: a bounded, memory-mapped reader.
//
// The reader treats every file as hostile: magic, version, counts, every string and array
// length, tensor dimensions (n_dims <= 4), types, offsets and alignment are checked before use,
// sizes are computed with overflow checks, and no allocation is sized by an unchecked field.
// A bad file yields a Status that names the key, tensor or byte offset; never a crash.
//
// Tensor data is not copied: Tensor::data points into the read-only mapping, which lives as long
// as the GgufFile.
//
// Thread-safety: a GgufFile is immutable after Open(); concurrent readers need no locking.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/base/status.h"
#include "engine/gguf/types.h"

namespace sextant::gguf {

// Metadata value types, with GGUF's ids.
enum class ValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};
std::string_view ValueTypeName(ValueType type);

// An array value: its element type and the elements, decoded. Strings are owned copies.
struct ArrayValue {
  ValueType element_type = ValueType::kUint8;
  std::variant<std::vector<uint8_t>, std::vector<int8_t>, std::vector<uint16_t>,
               std::vector<int16_t>, std::vector<uint32_t>, std::vector<int32_t>,
               std::vector<float>, std::vector<bool>, std::vector<std::string>,
               std::vector<uint64_t>, std::vector<int64_t>, std::vector<double>>
      elements;
  size_t size() const;
};

// One metadata value. Nested arrays (array of arrays) are rejected by the reader.
struct Value {
  ValueType type = ValueType::kUint8;
  std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool, std::string,
               ArrayValue, uint64_t, int64_t, double>
      data;
};

struct Tensor {
  std::string name;
  TensorType type = TensorType::kF32;
  std::vector<int64_t> dims;      // ne[0] (innermost, contiguous) first, as in GGUF; 1..4 entries
  uint64_t offset = 0;            // from the start of the data section
  uint64_t size_bytes = 0;        // checked: lies inside the file
  const uint8_t* data = nullptr;  // into the mapping

  int64_t elements() const;    // product of dims
  int64_t rows() const;        // elements() / dims[0]
  uint64_t row_bytes() const;  // bytes of one row of dims[0] elements
};

class GgufFile {
 public:
  // Maps and validates the file. Errors: NOT_FOUND / UNAVAILABLE for I/O, INVALID_ARGUMENT or
  // DATA_LOSS for malformed content (the message names key, tensor or offset), UNIMPLEMENTED for
  // an unsupported version or tensor type.
  static Result<std::unique_ptr<GgufFile>> Open(const std::filesystem::path& path);
  // Validates an in-memory image (tests and fuzzers). The bytes must outlive the GgufFile.
  static Result<std::unique_ptr<GgufFile>> FromBytes(const uint8_t* data, size_t size);

  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t file_size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

  const std::map<std::string, Value>& metadata() const { return metadata_; }
  const Value* Find(std::string_view key) const;

  // Typed accessors. NOT_FOUND when missing, INVALID_ARGUMENT naming the key and both types when
  // the stored type differs. Integer getters accept any integer type whose value fits.
  Result<std::string> GetString(std::string_view key) const;
  Result<uint64_t> GetUint(std::string_view key) const;
  Result<int64_t> GetInt(std::string_view key) const;
  Result<float> GetFloat(std::string_view key) const;  // float32 or float64
  Result<bool> GetBool(std::string_view key) const;
  Result<const ArrayValue*> GetArray(std::string_view key) const;

  const std::vector<Tensor>& tensors() const { return tensors_; }
  const Tensor* FindTensor(std::string_view name) const;

  // sha256 of the whole file as lowercase hex (computed on first call, then cached).
  Result<std::string> Sha256() const;

 private:
  GgufFile() = default;
  friend class GgufParser;

  std::filesystem::path path_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  bool mapped_ = false;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::map<std::string, Value> metadata_;
  std::vector<Tensor> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
  // The digest, computed on first use under its own mutex (Sha256() is const and thread-safe).
  std::unique_ptr<struct Sha256Cache> sha_cache_;
};

}  // namespace sextant::gguf
