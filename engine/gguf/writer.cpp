// The GGUF writer: header and tensor infos are encoded up front (every size is known from the
// shapes), then tensor data is produced chunk by chunk, quantized by a few threads, and appended.
#include "engine/gguf/writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>
#include <thread>

#include "engine/gguf/quantize.h"

namespace sextant::gguf {
namespace {

constexpr uint64_t kChunkBytes = uint64_t{8} << 20;  // tensor bytes produced per step

class Encoder {
 public:
  explicit Encoder(std::vector<uint8_t>* out) : out_(out) {}
  template <typename T>
  void Put(T v) {
    const size_t at = out_->size();
    out_->resize(at + sizeof(T));
    std::memcpy(out_->data() + at, &v, sizeof(T));
  }
  void PutString(const std::string& s) {
    Put<uint64_t>(s.size());
    out_->insert(out_->end(), s.begin(), s.end());
  }

  void PutValue(const Value& v) {
    std::visit(
        [this](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, std::string>) {
            PutString(x);
          } else if constexpr (std::is_same_v<T, bool>) {
            Put<uint8_t>(x ? 1 : 0);
          } else if constexpr (std::is_same_v<T, ArrayValue>) {
            Put<uint32_t>(static_cast<uint32_t>(x.element_type));
            Put<uint64_t>(x.size());
            std::visit(
                [this](const auto& elems) {
                  for (const auto& e : elems) {
                    using E = std::decay_t<decltype(e)>;
                    if constexpr (std::is_same_v<E, std::string>) {
                      PutString(e);
                    } else if constexpr (std::is_same_v<E, bool>) {
                      Put<uint8_t>(e ? 1 : 0);
                    } else {
                      Put<E>(e);
                    }
                  }
                },
                x.elements);
          } else {
            Put<T>(x);
          }
        },
        v.data);
  }

 private:
  std::vector<uint8_t>* out_;
};

// The variant index each ValueType must use (both follow the ValueType numbering).
bool ValueMatchesType(const Value& v) {
  if (v.data.index() != static_cast<size_t>(v.type)) return false;
  if (v.type == ValueType::kArray) {
    const auto& a = std::get<ArrayValue>(v.data);
    if (a.element_type == ValueType::kArray) return false;
    // ArrayValue's element variant skips kArray (index 9): ids above 9 shift down by one.
    const auto id = static_cast<size_t>(a.element_type);
    const size_t want = id > 9 ? id - 1 : id;
    if (id > 12 || a.elements.index() != want) return false;
  }
  return true;
}

uint64_t AlignUp(uint64_t v, uint64_t a) { return v + (a - v % a) % a; }

}  // namespace

// Where Write() puts bytes: a file descriptor or a vector.
class GgufWriter::Sink {
 public:
  virtual ~Sink() = default;
  virtual Status Append(const uint8_t* data, size_t n) = 0;
};

namespace {

class FdSink : public GgufWriter::Sink {
 public:
  FdSink(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  Status Append(const uint8_t* data, size_t n) override {
    while (n > 0) {
      const ssize_t w = ::write(fd_, data, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        return Status::Unavailable(path_ + ": write: " + std::strerror(errno));
      }
      data += w;
      n -= static_cast<size_t>(w);
    }
    return Status::Ok();
  }

 private:
  int fd_;
  std::string path_;
};

class VectorSink : public GgufWriter::Sink {
 public:
  explicit VectorSink(std::vector<uint8_t>* out) : out_(out) {}
  Status Append(const uint8_t* data, size_t n) override {
    out_->insert(out_->end(), data, data + n);
    return Status::Ok();
  }

 private:
  std::vector<uint8_t>* out_;
};

}  // namespace

Status GgufWriter::AddMetadata(std::string key, Value value) {
  if (key.empty()) return Status::InvalidArgument("metadata key is empty");
  for (const auto& [k, v] : metadata_) {
    if (k == key) return Status::InvalidArgument("duplicate metadata key '" + key + "'");
  }
  if (!ValueMatchesType(value)) {
    return Status::InvalidArgument("metadata key '" + key + "': value does not match its type " +
                                   std::string(ValueTypeName(value.type)) +
                                   " (or is a nested array)");
  }
  if (key == "general.alignment") {
    if (value.type != ValueType::kUint32) {
      return Status::InvalidArgument("metadata key 'general.alignment' must be uint32");
    }
    const uint32_t a = std::get<uint32_t>(value.data);
    if (a == 0 || (a & (a - 1)) != 0) {
      return Status::InvalidArgument("metadata key 'general.alignment' must be a power of two");
    }
    if (!tensors_.empty()) {
      return Status::FailedPrecondition("set 'general.alignment' before adding tensors");
    }
    alignment_ = a;
  }
  metadata_.emplace_back(std::move(key), std::move(value));
  return Status::Ok();
}

Status GgufWriter::AddString(std::string key, std::string value) {
  return AddMetadata(std::move(key), Value{ValueType::kString, std::move(value)});
}
Status GgufWriter::AddUint32(std::string key, uint32_t value) {
  return AddMetadata(std::move(key), Value{ValueType::kUint32, value});
}
Status GgufWriter::AddInt32(std::string key, int32_t value) {
  return AddMetadata(std::move(key), Value{ValueType::kInt32, value});
}
Status GgufWriter::AddUint64(std::string key, uint64_t value) {
  return AddMetadata(std::move(key), Value{ValueType::kUint64, value});
}
Status GgufWriter::AddFloat32(std::string key, float value) {
  return AddMetadata(std::move(key), Value{ValueType::kFloat32, value});
}
Status GgufWriter::AddBool(std::string key, bool value) {
  return AddMetadata(std::move(key), Value{ValueType::kBool, value});
}
Status GgufWriter::AddStringArray(std::string key, std::vector<std::string> values) {
  ArrayValue a;
  a.element_type = ValueType::kString;
  a.elements = std::move(values);
  return AddArray(std::move(key), std::move(a));
}
Status GgufWriter::AddArray(std::string key, ArrayValue value) {
  return AddMetadata(std::move(key), Value{ValueType::kArray, std::move(value)});
}

Status GgufWriter::CheckTensor(const std::string& name, TensorType type,
                               const std::vector<int64_t>& dims) const {
  if (name.empty()) return Status::InvalidArgument("tensor name is empty");
  for (const PendingTensor& t : tensors_) {
    if (t.name == name) return Status::InvalidArgument("duplicate tensor '" + name + "'");
  }
  if (dims.empty() || dims.size() > 4) {
    return Status::InvalidArgument("tensor '" + name + "': " + std::to_string(dims.size()) +
                                   " dimensions, expected 1..4");
  }
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 1 || n > std::numeric_limits<int64_t>::max() / d) {
      return Status::InvalidArgument("tensor '" + name + "': bad dimension " + std::to_string(d));
    }
    n *= d;
  }
  if (!RowBytes(type, dims[0])) {
    return Status::InvalidArgument("tensor '" + name + "': row length " + std::to_string(dims[0]) +
                                   " is not a multiple of the " +
                                   std::string(TensorTypeName(type)) + " block size");
  }
  return Status::Ok();
}

Status GgufWriter::AddPending(PendingTensor t) {
  int64_t rows = 1;
  for (size_t i = 1; i < t.dims.size(); ++i) rows *= t.dims[i];
  t.size_bytes = *RowBytes(t.type, t.dims[0]) * static_cast<uint64_t>(rows);
  t.offset = data_bytes_;
  data_bytes_ = AlignUp(data_bytes_ + t.size_bytes, alignment_);
  tensors_.push_back(std::move(t));
  return Status::Ok();
}

Status GgufWriter::AddTensor(std::string name, TensorType type, std::vector<int64_t> dims,
                             RowSource rows) {
  SEXTANT_RETURN_IF_ERROR(CheckTensor(name, type, dims));
  if (!rows) return Status::InvalidArgument("tensor '" + name + "': no row source");
  PendingTensor t{std::move(name), type, std::move(dims), std::move(rows), {}, false, 0, 0};
  return AddPending(std::move(t));
}

Status GgufWriter::AddTensorEncoded(std::string name, TensorType type, std::vector<int64_t> dims,
                                    EncodedRowSource rows) {
  SEXTANT_RETURN_IF_ERROR(CheckTensor(name, type, dims));
  if (!rows) return Status::InvalidArgument("tensor '" + name + "': no row source");
  PendingTensor t{std::move(name), type, std::move(dims), {}, {}, false, 0, 0, std::move(rows)};
  return AddPending(std::move(t));
}

Status GgufWriter::AddTensorF32(std::string name, TensorType type, std::vector<int64_t> dims,
                                std::vector<float> data) {
  SEXTANT_RETURN_IF_ERROR(CheckTensor(name, type, dims));
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  if (static_cast<int64_t>(data.size()) != n) {
    return Status::InvalidArgument("tensor '" + name + "': " + std::to_string(data.size()) +
                                   " values for " + std::to_string(n) + " elements");
  }
  const int64_t row_len = dims[0];
  auto shared = std::make_shared<std::vector<float>>(std::move(data));
  RowSource rows = [shared, row_len](int64_t row, float* out) {
    std::memcpy(out, shared->data() + row * row_len, static_cast<size_t>(row_len) * 4);
  };
  return AddTensor(std::move(name), type, std::move(dims), std::move(rows));
}

Status GgufWriter::AddTensorRaw(std::string name, TensorType type, std::vector<int64_t> dims,
                                std::vector<uint8_t> bytes) {
  SEXTANT_RETURN_IF_ERROR(CheckTensor(name, type, dims));
  int64_t rows = 1;
  for (size_t i = 1; i < dims.size(); ++i) rows *= dims[i];
  const uint64_t want = *RowBytes(type, dims[0]) * static_cast<uint64_t>(rows);
  if (bytes.size() != want) {
    return Status::InvalidArgument("tensor '" + name + "': " + std::to_string(bytes.size()) +
                                   " bytes, expected " + std::to_string(want));
  }
  PendingTensor t{std::move(name), type, std::move(dims), {}, std::move(bytes), true, 0, 0};
  return AddPending(std::move(t));
}

std::vector<uint8_t> GgufWriter::EncodeHeader() const {
  std::vector<uint8_t> out;
  Encoder e(&out);
  e.Put<uint32_t>(0x46554747);  // "GGUF"
  e.Put<uint32_t>(3);
  e.Put<uint64_t>(tensors_.size());
  e.Put<uint64_t>(metadata_.size());
  for (const auto& [key, value] : metadata_) {
    e.PutString(key);
    e.Put<uint32_t>(static_cast<uint32_t>(value.type));
    e.PutValue(value);
  }
  for (const PendingTensor& t : tensors_) {
    e.PutString(t.name);
    e.Put<uint32_t>(static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) e.Put<uint64_t>(static_cast<uint64_t>(d));
    e.Put<uint32_t>(static_cast<uint32_t>(t.type));
    e.Put<uint64_t>(t.offset);
  }
  if (!tensors_.empty()) out.resize(AlignUp(out.size(), alignment_), 0);
  return out;
}

uint64_t GgufWriter::FileSize() const {
  const uint64_t header = EncodeHeader().size();
  if (tensors_.empty()) return header;
  const PendingTensor& last = tensors_.back();
  return header + last.offset + last.size_bytes;
}

Status GgufWriter::WriteTo(Sink& sink, int threads, const Progress& progress) const {
  const std::vector<uint8_t> header = EncodeHeader();
  SEXTANT_RETURN_IF_ERROR(sink.Append(header.data(), header.size()));
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  uint64_t total = 0;
  for (const PendingTensor& t : tensors_) total += t.size_bytes;
  uint64_t done = 0;
  uint64_t written = 0;  // bytes of the data section so far
  std::vector<uint8_t> chunk;
  const uint8_t zeros[256] = {};
  for (const PendingTensor& t : tensors_) {
    // Padding between tensors.
    while (written < t.offset) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(sizeof(zeros), t.offset - written));
      SEXTANT_RETURN_IF_ERROR(sink.Append(zeros, n));
      written += n;
    }
    if (t.is_raw) {
      SEXTANT_RETURN_IF_ERROR(sink.Append(t.raw.data(), t.raw.size()));
      written += t.raw.size();
      done += t.raw.size();
      if (progress && total > 0 && !progress(static_cast<float>(done) / total)) {
        return Status::Cancelled("write cancelled");
      }
      continue;
    }
    const int64_t row_len = t.dims[0];
    const uint64_t row_bytes = *RowBytes(t.type, row_len);
    int64_t rows = 1;
    for (size_t i = 1; i < t.dims.size(); ++i) rows *= t.dims[i];
    const int64_t rows_per_chunk =
        std::max<int64_t>(1, static_cast<int64_t>(kChunkBytes / std::max<uint64_t>(row_bytes, 1)));
    for (int64_t r0 = 0; r0 < rows; r0 += rows_per_chunk) {
      const int64_t nr = std::min(rows_per_chunk, rows - r0);
      chunk.resize(static_cast<size_t>(nr) * row_bytes);
      // Rows are independent: split them across threads, each with its own f32 scratch row.
      const int nt = static_cast<int>(std::min<int64_t>(threads, nr));
      std::atomic<bool> failed{false};
      auto work = [&](int ti) {
        std::vector<float> scratch(t.encoded ? 0 : static_cast<size_t>(row_len));
        for (int64_t r = ti; r < nr; r += nt) {
          if (t.encoded) {
            t.encoded(r0 + r, chunk.data() + r * row_bytes);
            continue;
          }
          t.rows(r0 + r, scratch.data());
          if (!QuantizeRow(t.type, scratch.data(), row_len, chunk.data() + r * row_bytes).ok()) {
            failed = true;
          }
        }
      };
      if (nt <= 1) {
        work(0);
      } else {
        std::vector<std::thread> pool;
        pool.reserve(static_cast<size_t>(nt - 1));
        for (int ti = 1; ti < nt; ++ti) pool.emplace_back(work, ti);
        work(0);
        for (auto& th : pool) th.join();
      }
      if (failed) return Status::Internal("tensor '" + t.name + "': quantization failed");
      SEXTANT_RETURN_IF_ERROR(sink.Append(chunk.data(), chunk.size()));
      written += chunk.size();
      done += chunk.size();
      if (progress && total > 0 && !progress(static_cast<float>(done) / total)) {
        return Status::Cancelled("write cancelled");
      }
    }
  }
  return Status::Ok();
}

Result<std::vector<uint8_t>> GgufWriter::WriteToMemory() const {
  std::vector<uint8_t> out;
  VectorSink sink(&out);
  SEXTANT_RETURN_IF_ERROR(WriteTo(sink, 1, {}));
  return out;
}

Status GgufWriter::Write(const std::filesystem::path& path, int threads,
                         const Progress& progress) const {
  const std::string final_path = path.string();
  const std::string tmp = final_path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::Unavailable(tmp + ": " + std::strerror(errno));
  FdSink sink(fd, tmp);
  Status st = WriteTo(sink, threads, progress);
  if (st.ok() && ::fsync(fd) != 0)
    st = Status::Unavailable(tmp + ": fsync: " + std::strerror(errno));
  if (::close(fd) != 0 && st.ok())
    st = Status::Unavailable(tmp + ": close: " + std::strerror(errno));
  if (st.ok() && ::rename(tmp.c_str(), final_path.c_str()) != 0) {
    st = Status::Unavailable(final_path + ": rename: " + std::strerror(errno));
  }
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  // Make the rename durable too.
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

}  // namespace sextant::gguf
