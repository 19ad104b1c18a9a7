// Writes one .safetensors file while its tensors are being produced.
//
// Why: a random 8B-shaped checkpoint is ~2 GB; generating it all in memory and
// then serialising would hold it twice. The header only needs names, dtypes
// and shapes, so it is written first and the data follows in pieces of any
// size, tensor after tensor in the order declared.
//
// Layout (what worker/safetensors.h reads): u64 little-endian header length,
// the JSON header padded with spaces so the data section starts 8-byte
// aligned, then each tensor's bytes starting at an 8-byte aligned offset
// (zero padding between tensors). The file is written to PATH.tmp and renamed
// to PATH by Finish(), so a reader never sees a half-written checkpoint.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/safetensors.h"

namespace tessera {

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // row-major; numel = product (1 for a scalar)

  int64_t numel() const;
  int64_t bytes() const { return numel() * DTypeSize(dtype); }
};

class SafetensorsWriter {
 public:
  // Writes the header for `entries` (data in that order) to PATH.tmp.
  // InvalidArgument for duplicate or empty names, negative dims, or names
  // clashing with "__metadata__".
  static absl::StatusOr<std::unique_ptr<SafetensorsWriter>> Create(
      const std::string& path, std::vector<SafetensorsEntry> entries,
      const std::vector<std::pair<std::string, std::string>>& metadata = {});
  ~SafetensorsWriter();  // removes PATH.tmp unless Finish() succeeded
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // Appends raw little-endian element bytes; a piece may span tensors.
  // FailedPrecondition when more bytes come than the entries declare.
  absl::Status Append(absl::Span<const uint8_t> bytes);
  // Checks every declared byte arrived, flushes, closes and renames.
  absl::Status Finish();

  int64_t data_bytes_total() const { return data_total_; }
  int64_t data_bytes_written() const { return data_written_; }

 private:
  SafetensorsWriter(std::string path, std::vector<SafetensorsEntry> entries)
      : path_(std::move(path)), entries_(std::move(entries)) {}
  absl::Status WriteRaw(const void* data, size_t size);
  absl::Status PadCompletedTensors();

  std::string path_;
  std::vector<SafetensorsEntry> entries_;
  std::vector<int64_t> begins_;  // (entries): data-section offset of each tensor
  std::FILE* file_ = nullptr;
  bool finished_ = false;
  int64_t data_total_ = 0;    // sum of tensor bytes (without padding)
  int64_t data_written_ = 0;  // tensor bytes appended so far
  int64_t offset_ = 0;        // bytes written into the data section, padding included
  size_t current_ = 0;        // the entry receiving bytes
};

}  // namespace tessera
