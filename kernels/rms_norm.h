// RMSNorm over the last dimension: out = x / sqrt(mean(x²) + eps) · weight,
// computed in fp32. Used for every pre-norm and the final norm.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"

namespace tessera {

struct RmsNormParams {
  int64_t rows = 0;   // R (may be 0)
  int64_t width = 0;  // W, normalized over
  float eps = 1e-5f;  // finite, >= 0
  const float* x = nullptr;       // (rows, width), row stride x_stride
  int64_t x_stride = 0;           // 0 means width
  const float* weight = nullptr;  // (width)
  float* out = nullptr;           // (rows, width) contiguous; may alias x when x_stride == width
};

// The contract's checks (kernels/rms_norm.cc), which every backend runs first:
// OK or INVALID_ARGUMENT "<Op>: <what>" naming the field and the value given.
absl::Status CheckRmsNormParams(const RmsNormParams& p);

namespace cpu {
absl::Status RmsNorm(const RmsNormParams& p);
}  // namespace cpu

// The same op on device pointers, enqueued on `stream` (all pointers device memory).
namespace cuda {
absl::Status RmsNorm(const RmsNormParams& p, CudaStream stream);
}  // namespace cuda

}  // namespace tessera
