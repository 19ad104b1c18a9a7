// How the CUDA backend places the model's weights on its device: matrices in
// the compute type (a bf16 checkpoint goes up as its bytes, no host
// conversion; other dtypes are converted on the host in slices on the way),
// vectors as fp32. A tensor placed twice (tied embeddings: lm_head views the
// embedding table) is uploaded once. Stacked projections (model_tensors.h)
// go up part by part into one allocation, each part converted on its own.
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "model/checkpoint.h"
#include "worker/tensor.h"

namespace tessera::cuda_engine {

class WeightUploader {
 public:
  explicit WeightUploader(ElementType matrix_type) : matrix_type_(matrix_type) {}

  // The TensorPlacer of model_tensors.h, on the current device.
  absl::StatusOr<Tensor> Place(const HostTensor& host, bool matrix);
  // The TensorStacker of model_tensors.h, on the current device.
  absl::StatusOr<Tensor> Stack(const std::vector<const HostTensor*>& parts, bool matrix);

  // The device memory of every placed tensor (the caller keeps it).
  std::vector<Buffer> TakeBuffers() { return std::move(buffers_); }
  int64_t bytes() const { return bytes_; }

 private:
  // Device memory for `t` (shape and type set), kept in buffers_.
  absl::Status Allocate(Tensor& t);

  ElementType matrix_type_;
  std::vector<Buffer> buffers_;
  std::map<std::pair<const void*, bool>, Tensor> placed_;  // by (host source, matrix)
  int64_t bytes_ = 0;
};

}  // namespace tessera::cuda_engine
