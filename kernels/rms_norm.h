// RMSNorm over the last dimension: out = x / sqrt(mean(x²) + eps) · weight,
// computed in fp32. Used for every pre-norm and the final norm. x (the
// residual stream) is fp32; out is fp32 or bf16 (`out_type`, rounded once on
// store): the normed rows go straight into the next GEMM in its operand type.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"
#include "kernels/element_type.h"

namespace tessera {

struct RmsNormParams {
  int64_t rows = 0;   // R (may be 0)
  int64_t width = 0;  // W, normalized over
  float eps = 1e-5f;  // finite, >= 0
  const float* x = nullptr;       // (rows, width), row stride x_stride
  int64_t x_stride = 0;           // 0 means width
  const float* weight = nullptr;  // (width)
  void* out = nullptr;            // (rows, width) of out_type, contiguous; may alias x when fp32 and x_stride == width
  // Last, so that brace-initialized params written before it keep their meaning.
  ElementType out_type = ElementType::kF32;  // of out
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
