// Read-only, memory-mapped access to one .safetensors file.
//
// Why: checkpoints come from outside the process, so the file is treated as
// hostile input. Open() maps the file (MAP_PRIVATE, PROT_READ) and validates
// every header field before anything can be read: the header length against
// the file size, the JSON structure and types, each dtype, each shape (no
// negative dims, no overflow), each byte range (inside the data section, sized
// exactly numel * dtype size, no two tensors overlapping). After a successful
// Open, Data() of any listed tensor is in bounds by construction; nothing here
// aborts or reads out of bounds on a malformed file, and every error names the
// file and, where there is one, the tensor.
//
// Format (https://github.com/huggingface/safetensors): u64 little-endian
// header length N, N bytes of JSON (may be padded with spaces), then the data
// section. The JSON maps tensor name -> {"dtype", "shape", "data_offsets":
// [begin, end)} with offsets relative to the data section, plus an optional
// "__metadata__" object of string -> string.
//
// Status codes: NotFound for a missing file; DataLoss when bytes are missing
// (file shorter than its header says, a byte range past the end of the data
// section); InvalidArgument for a header that is present but wrong.
//
// The mapping can still fault (SIGBUS) if another process truncates the file
// while it is mapped; checkpoints are expected to be immutable while served.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tessera {

// Element types as safetensors names them: F64 F32 F16 BF16 I64 I32 I16 I8 U8
// BOOL. Anything else (F8_E4M3, U16, ...) is rejected at Open.
enum class DType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

// Bytes per element.
int64_t DTypeSize(DType dtype);
// The safetensors spelling ("F32", "BF16", ...).
std::string_view DTypeName(DType dtype);

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // every dim >= 0; the product fits in int64
  uint64_t data_begin = 0;     // [data_begin, data_end): byte range relative
  uint64_t data_end = 0;       // to the start of the data section
  int64_t numel() const;       // 1 for a scalar (empty shape)
};

class SafetensorsFile {
 public:
  // Maps `path` read-only and parses + validates its header.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();  // unmaps the file
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // nullptr if the file has no tensor of that name.
  const TensorInfo* Find(std::string_view name) const;
  // All tensor names, sorted.
  std::vector<std::string> TensorNames() const;
  // The "__metadata__" object (empty if absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Start of `t`'s bytes inside the mapping (data_end - data_begin bytes are
  // readable). No alignment is guaranteed. `t` must come from this file.
  const uint8_t* Data(const TensorInfo& t) const;
  // Size in bytes of the data section (file size - 8 - header length).
  uint64_t data_size() const { return data_size_; }

 private:
  explicit SafetensorsFile(std::string path) : path_(std::move(path)) {}
  absl::Status Map();
  absl::Status ParseHeader();
  absl::Status CheckNoOverlaps() const;

  std::string path_;
  void* map_ = nullptr;  // whole file, PROT_READ, MAP_PRIVATE
  uint64_t map_size_ = 0;
  const uint8_t* data_section_ = nullptr;
  uint64_t data_size_ = 0;
  std::map<std::string, TensorInfo, std::less<>> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Reads tensor `name` converted to fp32 into owned memory. Accepts F32, F16,
// BF16 and F64; any other dtype is InvalidArgument, a missing tensor NotFound.
absl::StatusOr<std::vector<float>> ReadFloat32(const SafetensorsFile& f, std::string_view name);
// Converts `n` elements stored as `dtype` (F32, F16, BF16 or F64; no
// alignment needed) at `p` to fp32 in `out`. False for any other dtype.
bool ConvertToFloat32(const uint8_t* p, DType dtype, int64_t n, float* out);

// Reads tensor `name` widened to int64. Accepts I64, I32, I16, I8, U8 and BOOL;
// any other dtype is InvalidArgument, a missing tensor NotFound.
absl::StatusOr<std::vector<int64_t>> ReadInt64(const SafetensorsFile& f, std::string_view name);

}  // namespace tessera
