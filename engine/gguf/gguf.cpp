// The bounded GGUF reader. Layout (little-endian):
//   magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//   kv_count x (string key | u32 value_type | value)
//   tensor_count x (string name | u32 n_dims | n_dims x u64 ne | u32 type | u64 offset)
//   padding to general.alignment | tensor data
// A string is u64 length + bytes; an array is u32 element type + u64 count + elements.
#include "engine/gguf/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <limits>
#include <mutex>
#include <type_traits>

#include "engine/base/sha256.h"

namespace sextant::gguf {

struct Sha256Cache {
  std::mutex mu;
  std::string hex;  // guarded by mu; empty until computed
};

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint64_t kMaxKeyBytes = 65535;
constexpr uint64_t kMaxTensorNameBytes = 1024;
// Smallest encodings, used to reject counts that cannot fit in the bytes left.
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;  // key len, 1-byte key, type, u8 value
constexpr uint64_t kMinTensorInfoBytes =
    8 + 1 + 4 + 8 + 4 + 8;  // name, n_dims, one dim, type, offset

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// ggml's names for type ids this engine does not read, for error messages.
std::string GgmlTypeIdName(uint32_t id) {
  static constexpr const char* kNames[] = {"F32",
                                           "F16",
                                           "Q4_0",
                                           "Q4_1",
                                           "Q4_2 (removed)",
                                           "Q4_3 (removed)",
                                           "Q5_0",
                                           "Q5_1",
                                           "Q8_0",
                                           "Q8_1",
                                           "Q2_K",
                                           "Q3_K",
                                           "Q4_K",
                                           "Q5_K",
                                           "Q6_K",
                                           "Q8_K",
                                           "IQ2_XXS",
                                           "IQ2_XS",
                                           "IQ3_XXS",
                                           "IQ1_S",
                                           "IQ4_NL",
                                           "IQ3_S",
                                           "IQ2_S",
                                           "IQ4_XS",
                                           "I8",
                                           "I16",
                                           "I32",
                                           "I64",
                                           "F64",
                                           "IQ1_M",
                                           "BF16",
                                           "Q4_0_4_4 (removed)",
                                           "Q4_0_4_8 (removed)",
                                           "Q4_0_8_8 (removed)",
                                           "TQ1_0",
                                           "TQ2_0",
                                           "IQ4_NL_4_4 (removed)",
                                           "IQ4_NL_4_8 (removed)",
                                           "IQ4_NL_8_8 (removed)",
                                           "MXFP4"};
  if (id < std::size(kNames)) return kNames[id];
  return "unknown";
}

size_t FixedSize(ValueType t) {
  switch (t) {
    case ValueType::kUint8:
    case ValueType::kInt8:
    case ValueType::kBool:
      return 1;
    case ValueType::kUint16:
    case ValueType::kInt16:
      return 2;
    case ValueType::kUint32:
    case ValueType::kInt32:
    case ValueType::kFloat32:
      return 4;
    case ValueType::kUint64:
    case ValueType::kInt64:
    case ValueType::kFloat64:
      return 8;
    case ValueType::kString:
    case ValueType::kArray:
      return 0;
  }
  return 0;
}

bool KnownValueType(uint32_t t) { return t <= 12; }

// A cursor over the image that never reads past its end.
// Invariant: pos_ <= size_.
class Cursor {
 public:
  Cursor(const uint8_t* data, uint64_t size) : data_(data), size_(size) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  template <typename T>
  Status Read(T* out, std::string_view what) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (remaining() < sizeof(T)) return Truncated(sizeof(T), what);
    std::memcpy(out, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::Ok();
  }

  Status ReadString(std::string* out, uint64_t max_len, std::string_view what) {
    const uint64_t at = pos_;
    uint64_t len = 0;
    SEXTANT_RETURN_IF_ERROR(Read(&len, what));
    if (len > remaining()) {
      return Status::DataLoss("string length " + std::to_string(len) + " of " + std::string(what) +
                              " at byte offset " + std::to_string(at) + " runs past the end (" +
                              std::to_string(remaining()) + " bytes left)");
    }
    if (len > max_len) {
      return Status::InvalidArgument("string length " + std::to_string(len) + " of " +
                                     std::string(what) + " at byte offset " + std::to_string(at) +
                                     " exceeds the limit of " + std::to_string(max_len));
    }
    out->assign(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
    pos_ += len;
    return Status::Ok();
  }

  Status Truncated(uint64_t need, std::string_view what) const {
    return Status::DataLoss("file truncated: " + std::string(what) + " at byte offset " +
                            std::to_string(pos_) + " needs " + std::to_string(need) + " bytes, " +
                            std::to_string(remaining()) + " left");
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

template <typename T>
Status ReadVector(Cursor& c, uint64_t n, std::vector<T>* out, std::string_view what) {
  // Caller has checked n * sizeof(T) <= remaining.
  out->resize(static_cast<size_t>(n));
  for (uint64_t i = 0; i < n; ++i) {
    SEXTANT_RETURN_IF_ERROR(c.Read(&(*out)[i], what));
  }
  return Status::Ok();
}

}  // namespace

std::string_view ValueTypeName(ValueType type) {
  switch (type) {
    case ValueType::kUint8:
      return "uint8";
    case ValueType::kInt8:
      return "int8";
    case ValueType::kUint16:
      return "uint16";
    case ValueType::kInt16:
      return "int16";
    case ValueType::kUint32:
      return "uint32";
    case ValueType::kInt32:
      return "int32";
    case ValueType::kFloat32:
      return "float32";
    case ValueType::kBool:
      return "bool";
    case ValueType::kString:
      return "string";
    case ValueType::kArray:
      return "array";
    case ValueType::kUint64:
      return "uint64";
    case ValueType::kInt64:
      return "int64";
    case ValueType::kFloat64:
      return "float64";
  }
  return "unknown";
}

size_t ArrayValue::size() const {
  return std::visit([](const auto& v) { return v.size(); }, elements);
}

int64_t Tensor::elements() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;  // checked against overflow by the reader
  return n;
}

int64_t Tensor::rows() const {
  if (dims.empty() || dims[0] == 0) return 0;
  return elements() / dims[0];
}

uint64_t Tensor::row_bytes() const {
  if (dims.empty()) return 0;
  return RowBytes(type, dims[0]).value_or(0);
}

// Parses an image into a GgufFile. Every read goes through a Cursor.
class GgufParser {
 public:
  GgufParser(const uint8_t* data, uint64_t size, GgufFile* file)
      : c_(data, size), size_(size), file_(file) {}

  Status Parse() {
    uint32_t magic = 0;
    SEXTANT_RETURN_IF_ERROR(c_.Read(&magic, "magic"));
    if (magic != kMagic) {
      return Status::InvalidArgument("bad magic at byte offset 0: " + Hex(magic) +
                                     ", expected 0x46554747 (\"GGUF\")");
    }
    uint32_t version = 0;
    SEXTANT_RETURN_IF_ERROR(c_.Read(&version, "version"));
    if (version != 2 && version != 3) {
      if (version != 0 && (version & 0xffffu) == 0) {
        return Status::Unimplemented("GGUF version " + Hex(version) +
                                     " at byte offset 4 looks big-endian; only little-endian "
                                     "files are supported");
      }
      return Status::Unimplemented("GGUF version " + std::to_string(version) +
                                   " at byte offset 4 is not supported (supported: 2, 3)");
    }
    file_->version_ = version;

    uint64_t tensor_count = 0, kv_count = 0;
    SEXTANT_RETURN_IF_ERROR(c_.Read(&tensor_count, "tensor count"));
    SEXTANT_RETURN_IF_ERROR(c_.Read(&kv_count, "metadata count"));
    if (kv_count > c_.remaining() / kMinKvBytes) {
      return Status::InvalidArgument("metadata count " + std::to_string(kv_count) +
                                     " at byte offset 16 cannot fit in the " +
                                     std::to_string(c_.remaining()) + " bytes left");
    }
    if (tensor_count > c_.remaining() / kMinTensorInfoBytes) {
      return Status::InvalidArgument("tensor count " + std::to_string(tensor_count) +
                                     " at byte offset 8 cannot fit in the " +
                                     std::to_string(c_.remaining()) + " bytes left");
    }

    for (uint64_t i = 0; i < kv_count; ++i) SEXTANT_RETURN_IF_ERROR(ParseKv(i));

    if (const Value* v = file_->Find("general.alignment")) {
      if (v->type != ValueType::kUint32) {
        return Status::InvalidArgument("metadata key 'general.alignment' has type " +
                                       std::string(ValueTypeName(v->type)) + ", expected uint32");
      }
      const uint32_t a = std::get<uint32_t>(v->data);
      if (a == 0 || (a & (a - 1)) != 0) {
        return Status::InvalidArgument("metadata key 'general.alignment' is " + std::to_string(a) +
                                       ", expected a power of two");
      }
      file_->alignment_ = a;
    }

    if (tensor_count > c_.remaining() / kMinTensorInfoBytes) {
      return Status::InvalidArgument("tensor count " + std::to_string(tensor_count) +
                                     " cannot fit in the " + std::to_string(c_.remaining()) +
                                     " bytes left after the metadata (byte offset " +
                                     std::to_string(c_.pos()) + ")");
    }
    file_->tensors_.reserve(static_cast<size_t>(tensor_count));
    for (uint64_t i = 0; i < tensor_count; ++i) SEXTANT_RETURN_IF_ERROR(ParseTensorInfo(i));

    return PlaceTensors();
  }

 private:
  Status ParseKv(uint64_t index) {
    const uint64_t at = c_.pos();
    std::string key;
    SEXTANT_RETURN_IF_ERROR(
        c_.ReadString(&key, kMaxKeyBytes, "key of metadata entry " + std::to_string(index)));
    if (key.empty()) {
      return Status::InvalidArgument("metadata entry " + std::to_string(index) +
                                     " at byte offset " + std::to_string(at) + " has an empty key");
    }
    const std::string what = "metadata key '" + key + "'";
    uint32_t type_id = 0;
    const uint64_t type_at = c_.pos();
    SEXTANT_RETURN_IF_ERROR(c_.Read(&type_id, what + " type"));
    if (!KnownValueType(type_id)) {
      return Status::InvalidArgument(what + ": unknown value type " + std::to_string(type_id) +
                                     " at byte offset " + std::to_string(type_at));
    }
    Value value;
    SEXTANT_RETURN_IF_ERROR(ParseValue(static_cast<ValueType>(type_id), what, &value));
    if (file_->metadata_.count(key) != 0) {
      return Status::InvalidArgument("duplicate " + what + " at byte offset " + std::to_string(at));
    }
    file_->metadata_.emplace(std::move(key), std::move(value));
    return Status::Ok();
  }

  Status ParseBool(bool* out, const std::string& what) {
    const uint64_t at = c_.pos();
    uint8_t b = 0;
    SEXTANT_RETURN_IF_ERROR(c_.Read(&b, what));
    if (b > 1) {
      return Status::InvalidArgument(what + ": bool value " + std::to_string(b) +
                                     " at byte offset " + std::to_string(at) + " is not 0 or 1");
    }
    *out = b != 0;
    return Status::Ok();
  }

  template <typename T>
  Status ParseScalar(const std::string& what, Value* out) {
    T v{};
    SEXTANT_RETURN_IF_ERROR(c_.Read(&v, what));
    out->data = v;
    return Status::Ok();
  }

  Status ParseValue(ValueType type, const std::string& what, Value* out) {
    out->type = type;
    switch (type) {
      case ValueType::kUint8:
        return ParseScalar<uint8_t>(what, out);
      case ValueType::kInt8:
        return ParseScalar<int8_t>(what, out);
      case ValueType::kUint16:
        return ParseScalar<uint16_t>(what, out);
      case ValueType::kInt16:
        return ParseScalar<int16_t>(what, out);
      case ValueType::kUint32:
        return ParseScalar<uint32_t>(what, out);
      case ValueType::kInt32:
        return ParseScalar<int32_t>(what, out);
      case ValueType::kFloat32:
        return ParseScalar<float>(what, out);
      case ValueType::kUint64:
        return ParseScalar<uint64_t>(what, out);
      case ValueType::kInt64:
        return ParseScalar<int64_t>(what, out);
      case ValueType::kFloat64:
        return ParseScalar<double>(what, out);
      case ValueType::kBool: {
        bool b = false;
        SEXTANT_RETURN_IF_ERROR(ParseBool(&b, what));
        out->data = b;
        return Status::Ok();
      }
      case ValueType::kString: {
        std::string s;
        SEXTANT_RETURN_IF_ERROR(c_.ReadString(&s, std::numeric_limits<uint64_t>::max(), what));
        out->data = std::move(s);
        return Status::Ok();
      }
      case ValueType::kArray: {
        ArrayValue arr;
        SEXTANT_RETURN_IF_ERROR(ParseArray(what, &arr));
        out->data = std::move(arr);
        return Status::Ok();
      }
    }
    return Status::Internal(what + ": unhandled value type");
  }

  Status ParseArray(const std::string& what, ArrayValue* arr) {
    uint32_t elem_id = 0;
    const uint64_t at = c_.pos();
    SEXTANT_RETURN_IF_ERROR(c_.Read(&elem_id, what + " array element type"));
    if (!KnownValueType(elem_id)) {
      return Status::InvalidArgument(what + ": unknown array element type " +
                                     std::to_string(elem_id) + " at byte offset " +
                                     std::to_string(at));
    }
    const auto elem = static_cast<ValueType>(elem_id);
    if (elem == ValueType::kArray) {
      return Status::InvalidArgument(what + ": nested arrays are not supported (byte offset " +
                                     std::to_string(at) + ")");
    }
    uint64_t n = 0;
    const uint64_t count_at = c_.pos();
    SEXTANT_RETURN_IF_ERROR(c_.Read(&n, what + " array length"));
    // Every element needs at least this many bytes in the file: a count that cannot fit is an
    // error before anything is allocated, so allocations stay bounded by the file size.
    const uint64_t min_elem = elem == ValueType::kString ? 8 : FixedSize(elem);
    if (n > c_.remaining() / min_elem) {
      return Status::DataLoss(what + ": array length " + std::to_string(n) + " at byte offset " +
                              std::to_string(count_at) + " runs past the end (" +
                              std::to_string(c_.remaining()) + " bytes left)");
    }
    arr->element_type = elem;
    const std::string ew = what + " array element";
    switch (elem) {
      case ValueType::kUint8:
        return ReadVector(c_, n, &arr->elements.emplace<std::vector<uint8_t>>(), ew);
      case ValueType::kInt8:
        return ReadVector(c_, n, &arr->elements.emplace<std::vector<int8_t>>(), ew);
      case ValueType::kUint16:
        return ReadVector(c_, n, &arr->elements.emplace<std::vector<uint16_t>>(), ew);
      case ValueType::kInt16:
        return ReadVector(c_, n, &arr->elements.emplace<std::vector<int16_t>>(), ew);
      case ValueType::kUint32:
        return ReadVector(c_, n, &arr->elements.emplace<std::vector<uint32_t>>(), ew);
      case ValueType::kInt32:
        return ReadVector(c_, n, &arr->elements.emplace<std::vector<int32_t>>(), ew);
      case ValueType::kFloat32:
        return ReadVector(c_, n, &arr->elements.emplace<std::vector<float>>(), ew);
      case ValueType::kUint64:
        return ReadVector(c_, n, &arr->elements.emplace<std::vector<uint64_t>>(), ew);
      case ValueType::kInt64:
        return ReadVector(c_, n, &arr->elements.emplace<std::vector<int64_t>>(), ew);
      case ValueType::kFloat64:
        return ReadVector(c_, n, &arr->elements.emplace<std::vector<double>>(), ew);
      case ValueType::kBool: {
        auto& v = arr->elements.emplace<std::vector<bool>>(static_cast<size_t>(n));
        for (uint64_t i = 0; i < n; ++i) {
          bool b = false;
          SEXTANT_RETURN_IF_ERROR(ParseBool(&b, ew));
          v[i] = b;
        }
        return Status::Ok();
      }
      case ValueType::kString: {
        auto& v = arr->elements.emplace<std::vector<std::string>>();
        v.reserve(static_cast<size_t>(n));
        for (uint64_t i = 0; i < n; ++i) {
          std::string s;
          SEXTANT_RETURN_IF_ERROR(c_.ReadString(&s, std::numeric_limits<uint64_t>::max(),
                                                what + " element " + std::to_string(i)));
          v.push_back(std::move(s));
        }
        return Status::Ok();
      }
      case ValueType::kArray:
        break;
    }
    return Status::Internal(what + ": unhandled array element type");
  }

  Status ParseTensorInfo(uint64_t index) {
    const uint64_t at = c_.pos();
    Tensor t;
    SEXTANT_RETURN_IF_ERROR(
        c_.ReadString(&t.name, kMaxTensorNameBytes, "name of tensor " + std::to_string(index)));
    if (t.name.empty()) {
      return Status::InvalidArgument("tensor " + std::to_string(index) + " at byte offset " +
                                     std::to_string(at) + " has an empty name");
    }
    const std::string what = "tensor '" + t.name + "'";
    uint32_t n_dims = 0;
    const uint64_t dims_at = c_.pos();
    SEXTANT_RETURN_IF_ERROR(c_.Read(&n_dims, what + " n_dims"));
    if (n_dims < 1 || n_dims > 4) {
      return Status::InvalidArgument(what + ": n_dims " + std::to_string(n_dims) +
                                     " at byte offset " + std::to_string(dims_at) +
                                     " is outside 1..4");
    }
    int64_t elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim_at = c_.pos();
      uint64_t ne = 0;
      SEXTANT_RETURN_IF_ERROR(c_.Read(&ne, what + " dimension"));
      if (ne < 1 || ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Status::InvalidArgument(what + ": dimension " + std::to_string(d) + " = " +
                                       std::to_string(ne) + " at byte offset " +
                                       std::to_string(dim_at) + " is out of range");
      }
      const auto sne = static_cast<int64_t>(ne);
      if (elements > std::numeric_limits<int64_t>::max() / sne) {
        return Status::InvalidArgument(what + ": element count overflows at dimension " +
                                       std::to_string(d) + " = " + std::to_string(ne) +
                                       " (byte offset " + std::to_string(dim_at) + ")");
      }
      elements *= sne;
      t.dims.push_back(sne);
    }
    uint32_t type_id = 0;
    const uint64_t type_at = c_.pos();
    SEXTANT_RETURN_IF_ERROR(c_.Read(&type_id, what + " type"));
    const std::optional<TensorType> type = TensorTypeFromId(type_id);
    if (!type) {
      return Status::Unimplemented(what + ": tensor type id " + std::to_string(type_id) + " (" +
                                   GgmlTypeIdName(type_id) + ") at byte offset " +
                                   std::to_string(type_at) + " is not supported");
    }
    t.type = *type;
    const int64_t block = BlockElements(t.type);
    if (block > 1 && t.dims[0] % block != 0) {
      return Status::InvalidArgument(
          what + ": row length " + std::to_string(t.dims[0]) + " is not a multiple of the " +
          std::string(TensorTypeName(t.type)) + " block size " + std::to_string(block));
    }
    const std::optional<uint64_t> row = RowBytes(t.type, t.dims[0]);
    const uint64_t rows = static_cast<uint64_t>(elements / t.dims[0]);
    if (!row || (rows != 0 && *row > std::numeric_limits<uint64_t>::max() / rows)) {
      return Status::InvalidArgument(what + ": byte size of " + std::to_string(elements) + " " +
                                     std::string(TensorTypeName(t.type)) + " elements overflows");
    }
    t.size_bytes = *row * rows;
    const uint64_t off_at = c_.pos();
    SEXTANT_RETURN_IF_ERROR(c_.Read(&t.offset, what + " offset"));
    if (t.offset % file_->alignment_ != 0) {
      return Status::InvalidArgument(what + ": data offset " + std::to_string(t.offset) +
                                     " (byte offset " + std::to_string(off_at) +
                                     ") is not a multiple of the alignment " +
                                     std::to_string(file_->alignment_));
    }
    if (file_->tensor_index_.count(t.name) != 0) {
      return Status::InvalidArgument("duplicate " + what + " at byte offset " + std::to_string(at));
    }
    file_->tensor_index_.emplace(t.name, file_->tensors_.size());
    file_->tensors_.push_back(std::move(t));
    return Status::Ok();
  }

  Status PlaceTensors() {
    auto& tensors = file_->tensors_;
    if (tensors.empty()) return Status::Ok();
    const uint64_t a = file_->alignment_;
    const uint64_t end_of_infos = c_.pos();
    const uint64_t data_start = end_of_infos + (a - end_of_infos % a) % a;
    if (data_start > size_) {
      return Status::DataLoss("tensor data section would start at byte offset " +
                              std::to_string(data_start) + ", past the end of the " +
                              std::to_string(size_) + "-byte file");
    }
    const uint64_t data_bytes = size_ - data_start;
    for (Tensor& t : tensors) {
      if (t.offset > data_bytes || t.size_bytes > data_bytes - t.offset) {
        return Status::DataLoss("tensor '" + t.name + "': data at byte offsets " +
                                std::to_string(data_start) + "+" + std::to_string(t.offset) +
                                " .. +" + std::to_string(t.size_bytes) +
                                " bytes lies outside the " + std::to_string(size_) + "-byte file");
      }
      t.data = file_->base_ + data_start + t.offset;
    }
    std::vector<const Tensor*> order;
    order.reserve(tensors.size());
    for (const Tensor& t : tensors) order.push_back(&t);
    std::sort(order.begin(), order.end(),
              [](const Tensor* x, const Tensor* y) { return x->offset < y->offset; });
    for (size_t i = 1; i < order.size(); ++i) {
      const Tensor* prev = order[i - 1];
      const Tensor* cur = order[i];
      if (prev->size_bytes > 0 && cur->offset < prev->offset + prev->size_bytes) {
        return Status::InvalidArgument(
            "tensor '" + cur->name + "' (data offset " + std::to_string(cur->offset) +
            ") overlaps tensor '" + prev->name + "' (data offset " + std::to_string(prev->offset) +
            ", " + std::to_string(prev->size_bytes) + " bytes)");
      }
    }
    return Status::Ok();
  }

  Cursor c_;
  uint64_t size_;
  GgufFile* file_;
};

Result<std::unique_ptr<GgufFile>> GgufFile::FromBytes(const uint8_t* data, size_t size) {
  std::unique_ptr<GgufFile> file(new GgufFile());
  file->base_ = data;
  file->size_ = size;
  file->sha_cache_ = std::make_unique<Sha256Cache>();
  if (data == nullptr && size != 0) return Status::InvalidArgument("null image");
  GgufParser parser(data, size, file.get());
  SEXTANT_RETURN_IF_ERROR(parser.Parse());
  return file;
}

Result<std::unique_ptr<GgufFile>> GgufFile::Open(const std::filesystem::path& path) {
  const std::string p = path.string();
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string msg = p + ": " + std::strerror(err);
    if (err == ENOENT || err == ENOTDIR) return Status::NotFound(msg);
    return Status::Unavailable(msg);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::Unavailable(p + ": fstat: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::InvalidArgument(p + ": not a regular file");
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return Status::DataLoss(p + ": file is empty (a GGUF file starts with a 24-byte header)");
  }
  void* map = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_err = errno;
  ::close(fd);
  if (map == MAP_FAILED) return Status::Unavailable(p + ": mmap: " + std::strerror(map_err));

  std::unique_ptr<GgufFile> file(new GgufFile());
  file->path_ = path;
  file->base_ = static_cast<const uint8_t*>(map);
  file->size_ = size;
  file->mapped_ = true;  // the destructor unmaps, also when parsing fails below
  file->sha_cache_ = std::make_unique<Sha256Cache>();
  GgufParser parser(file->base_, size, file.get());
  Status st2 = parser.Parse();
  if (!st2.ok()) return st2.WithContext(p);
  return file;
}

GgufFile::~GgufFile() {
  if (mapped_ && base_ != nullptr) {
    ::munmap(const_cast<uint8_t*>(base_), static_cast<size_t>(size_));
  }
}

const Value* GgufFile::Find(std::string_view key) const {
  auto it = metadata_.find(std::string(key));
  return it == metadata_.end() ? nullptr : &it->second;
}

const Tensor* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

Status Missing(std::string_view key) {
  return Status::NotFound("metadata key '" + std::string(key) + "' is missing");
}

Status WrongType(std::string_view key, ValueType have, std::string_view want) {
  return Status::InvalidArgument("metadata key '" + std::string(key) + "' has type " +
                                 std::string(ValueTypeName(have)) + ", expected " +
                                 std::string(want));
}

// The value as a signed 128-bit-safe pair: (is_integer, negative, magnitude).
struct IntView {
  bool is_int = false;
  bool negative = false;
  uint64_t magnitude = 0;
};

IntView AsInt(const Value& v) {
  IntView r;
  std::visit(
      [&r](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          r.is_int = true;
          if constexpr (std::is_signed_v<T>) {
            r.negative = x < 0;
            r.magnitude = x < 0 ? static_cast<uint64_t>(0) - static_cast<uint64_t>(x)
                                : static_cast<uint64_t>(x);
          } else {
            r.magnitude = static_cast<uint64_t>(x);
          }
        }
      },
      v.data);
  return r;
}

}  // namespace

Result<std::string> GgufFile::GetString(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return Missing(key);
  if (v->type != ValueType::kString) return WrongType(key, v->type, "string");
  return std::get<std::string>(v->data);
}

Result<uint64_t> GgufFile::GetUint(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return Missing(key);
  const IntView i = AsInt(*v);
  if (!i.is_int) return WrongType(key, v->type, "an unsigned integer");
  if (i.negative) {
    return Status::InvalidArgument("metadata key '" + std::string(key) + "' is negative (-" +
                                   std::to_string(i.magnitude) + "), expected an unsigned integer");
  }
  return i.magnitude;
}

Result<int64_t> GgufFile::GetInt(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return Missing(key);
  const IntView i = AsInt(*v);
  if (!i.is_int) return WrongType(key, v->type, "an integer");
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (!i.negative && i.magnitude > kMax) {
    return Status::InvalidArgument("metadata key '" + std::string(key) + "' value " +
                                   std::to_string(i.magnitude) + " does not fit in int64");
  }
  if (i.negative) {
    return i.magnitude == kMax + 1 ? std::numeric_limits<int64_t>::min()
                                   : -static_cast<int64_t>(i.magnitude);
  }
  return static_cast<int64_t>(i.magnitude);
}

Result<float> GgufFile::GetFloat(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return Missing(key);
  if (v->type == ValueType::kFloat32) return std::get<float>(v->data);
  if (v->type == ValueType::kFloat64) return static_cast<float>(std::get<double>(v->data));
  return WrongType(key, v->type, "float32 or float64");
}

Result<bool> GgufFile::GetBool(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return Missing(key);
  if (v->type != ValueType::kBool) return WrongType(key, v->type, "bool");
  return std::get<bool>(v->data);
}

Result<const ArrayValue*> GgufFile::GetArray(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return Missing(key);
  if (v->type != ValueType::kArray) return WrongType(key, v->type, "array");
  return &std::get<ArrayValue>(v->data);
}

Result<std::string> GgufFile::Sha256() const {
  std::lock_guard<std::mutex> lock(sha_cache_->mu);
  if (!sha_cache_->hex.empty()) return sha_cache_->hex;
  constexpr uint64_t kChunk = uint64_t{1} << 24;
  std::array<uint8_t, 32> digest{};
  // One digest for the code base (engine/base/sha256.h): OpenSSL's where the build has it.
  sextant::Sha256 s;
  for (uint64_t off = 0; off < size_; off += kChunk) {
    s.Update(base_ + off, static_cast<size_t>(std::min(kChunk, size_ - off)));
  }
  digest = s.Final();
  sha_cache_->hex = DigestHex(digest);
  return sha_cache_->hex;
}

}  // namespace sextant::gguf
