// The weights of a Hugging Face model directory, as fp32 host tensors.
//
// Why: model code should ask for "model.layers.0.mamba.A_log with shape [8]"
// and get either the tensor or an error that names the file, the tensor and
// both shapes, without knowing whether the checkpoint is one file or shards.
// Open() resolves the layout once, the way transformers does: model.safetensors
// if present, else model.safetensors.index.json, whose "weight_map" (tensor ->
// shard file) is the authority on which tensors exist. Every shard is mapped
// and validated at Open, and every tensor the map lists must be in its shard,
// so a broken checkpoint fails at startup rather than mid-load.
//
// Lifetime: a HostTensor loaded from an F32 tensor whose bytes are 4-byte
// aligned is a zero-copy view into the file mapping; it stays valid only while
// the Checkpoint that produced it is alive. Other dtypes (F16, BF16, F64) and
// unaligned F32 are converted into memory the HostTensor owns.
//
// Threads: nothing changes after Open, so const methods may run concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/safetensors.h"

namespace tessera {

// A read-only fp32 tensor: a view into a Checkpoint's mapping, or a view of
// `owned`. Copies and moves keep `data` pointing at the right buffer.
// Loaded "as stored" (LoadAsStored), it is instead a view of the checkpoint's
// bytes in their own dtype: `data` is null and `stored` points into the
// mapping (what a GPU backend uploads without converting bf16 on the host).
struct HostTensor {
  std::vector<int64_t> shape;  // row-major
  const float* data = nullptr;  // numel() elements
  std::vector<float> owned;     // empty for a zero-copy view
  const uint8_t* stored = nullptr;     // as-stored bytes (numel() · DTypeSize), or null
  DType stored_dtype = DType::kF32;    // dtype of `stored`

  HostTensor() = default;
  HostTensor(const HostTensor& other);
  HostTensor(HostTensor&& other) noexcept;
  HostTensor& operator=(const HostTensor& other);
  HostTensor& operator=(HostTensor&& other) noexcept;
  ~HostTensor() = default;

  int64_t numel() const;
  // True when `data` points into a Checkpoint's mapping rather than `owned`.
  bool is_view() const { return data != nullptr && data != owned.data(); }
};

class Checkpoint {
 public:
  // Opens `model_dir`/model.safetensors, or the shards that
  // `model_dir`/model.safetensors.index.json names. NotFound naming the
  // directory if neither file exists.
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(const std::string& model_dir);

  const std::string& dir() const { return dir_; }
  bool Contains(std::string_view name) const;
  // All tensor names across shards, sorted.
  std::vector<std::string> TensorNames() const;
  // The header entry of `name` (dtype, shape), or null; reads no tensor data.
  const TensorInfo* Info(std::string_view name) const;

  // Loads `name` as fp32 and checks its shape equals `expected_shape`
  // (InvalidArgument naming the tensor, the file and both shapes otherwise).
  // A missing tensor is NotFound. The result may view this Checkpoint's memory.
  absl::StatusOr<HostTensor> LoadFloat32(std::string_view name,
                                         absl::Span<const int64_t> expected_shape) const;
  // Same without a shape check.
  absl::StatusOr<HostTensor> LoadFloat32(std::string_view name) const;
  // A view of `name`'s bytes as stored (any floating dtype), shape checked
  // like LoadFloat32; valid while this Checkpoint lives.
  absl::StatusOr<HostTensor> LoadAsStored(std::string_view name, absl::Span<const int64_t> expected_shape) const;

 private:
  explicit Checkpoint(std::string dir) : dir_(std::move(dir)) {}
  absl::Status OpenSingle(const std::string& path);
  absl::Status OpenSharded(const std::string& index_path);
  absl::StatusOr<const SafetensorsFile*> OpenShard(const std::string& file_name);
  absl::Status CheckShape(std::string_view name, absl::Span<const int64_t> expected_shape) const;

  std::string dir_;
  std::map<std::string, std::unique_ptr<SafetensorsFile>, std::less<>> files_;  // by file name
  std::map<std::string, const SafetensorsFile*, std::less<>> tensor_file_;  // tensor -> its file
};

}  // namespace tessera
