// GgufWriter: builds a GGUF v3 file (metadata of every value type, tensors of every supported
// type) and writes it atomically (temporary file in the same folder, fsync, rename).
//
// Tensor data is streamed: a tensor given as a row source is generated and quantized a chunk of
// rows at a time straight into the file, so a model is never held in memory, let alone twice.
//
// Thread-safety: a GgufWriter is not thread-safe; use it from one thread. Write() may call row
// sources from several threads at once (see RowSource).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "engine/base/status.h"
#include "engine/gguf/gguf.h"
#include "engine/gguf/types.h"

namespace sextant::gguf {

class GgufWriter {
 public:
  // Fills `out` with the dims[0] f32 values of row `row` (rows counted over dims[1..]).
  // Called concurrently for distinct rows when Write() runs with threads > 1, so it must be
  // safe to call from several threads and must not depend on call order.
  using RowSource = std::function<void(int64_t row, float* out)>;
  // Fills `out` with the RowBytes(type, dims[0]) bytes of row `row`, already in the on-disk layout
  // of the tensor's type. Same rules as RowSource: any thread, any order.
  using EncodedRowSource = std::function<void(int64_t row, uint8_t* out)>;
  // Called after each chunk with the fraction of tensor bytes written; false cancels the write.
  using Progress = std::function<bool(float fraction)>;

  GgufWriter() = default;

  // Metadata. INVALID_ARGUMENT for an empty or duplicate key, a nested array, or an array whose
  // variant does not match its element type. `general.alignment` must be a uint32 power of two;
  // it sets the alignment of the tensor data (default 32).
  Status AddMetadata(std::string key, Value value);
  Status AddString(std::string key, std::string value);
  Status AddUint32(std::string key, uint32_t value);
  Status AddInt32(std::string key, int32_t value);
  Status AddUint64(std::string key, uint64_t value);
  Status AddFloat32(std::string key, float value);
  Status AddBool(std::string key, bool value);
  Status AddStringArray(std::string key, std::vector<std::string> values);
  Status AddArray(std::string key, ArrayValue value);

  // Tensors, in file order. dims are ne[0] first (the row length), 1..4 entries, each >= 1, and
  // dims[0] must be a multiple of the type's block size. INVALID_ARGUMENT otherwise, or for an
  // empty or duplicate name.
  //
  // f32 rows, quantized to `type` on write.
  Status AddTensor(std::string name, TensorType type, std::vector<int64_t> dims, RowSource rows);
  // f32 data held by the writer (dims product elements), quantized to `type` on write.
  Status AddTensorF32(std::string name, TensorType type, std::vector<int64_t> dims,
                      std::vector<float> data);
  // Rows produced in the on-disk layout of `type` (no quantization on write).
  Status AddTensorEncoded(std::string name, TensorType type, std::vector<int64_t> dims,
                          EncodedRowSource rows);
  // Bytes already in the on-disk layout of `type`; their size must be exactly the tensor's.
  Status AddTensorRaw(std::string name, TensorType type, std::vector<int64_t> dims,
                      std::vector<uint8_t> bytes);

  // Writes the file atomically: on any error (or cancellation: CANCELLED) no file appears at
  // `path` and the temporary file is removed. threads <= 0 means one per hardware thread.
  Status Write(const std::filesystem::path& path, int threads = 1,
               const Progress& progress = {}) const;
  // The same image in memory (tests, fuzzers).
  Result<std::vector<uint8_t>> WriteToMemory() const;

  // Bytes the file will have.
  uint64_t FileSize() const;
  uint32_t alignment() const { return alignment_; }

  class Sink;  // where the bytes go (a file or a vector); defined in writer.cpp

 private:
  struct PendingTensor {
    std::string name;
    TensorType type;
    std::vector<int64_t> dims;
    RowSource rows;            // set for row-sourced and f32 tensors
    std::vector<uint8_t> raw;  // set for raw tensors
    bool is_raw = false;
    uint64_t size_bytes = 0;
    uint64_t offset = 0;       // within the data section
    EncodedRowSource encoded;  // set for encoded-row tensors
  };
  Status CheckTensor(const std::string& name, TensorType type,
                     const std::vector<int64_t>& dims) const;
  Status AddPending(PendingTensor t);
  std::vector<uint8_t> EncodeHeader() const;  // up to and including the padding to data start
  Status WriteTo(Sink& sink, int threads, const Progress& progress) const;

  std::vector<std::pair<std::string, Value>> metadata_;
  std::vector<PendingTensor> tensors_;
  uint32_t alignment_ = 32;
  uint64_t data_bytes_ = 0;
};

}  // namespace sextant::gguf
