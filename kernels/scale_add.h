// y = alpha · x + beta · y over (rows, width) fp32 rows: the residual add of a
// block whose output is scaled first (granitemoehybrid's residual_multiplier)
// and an in-place scaling (x null: y = beta · y, its embedding_multiplier).
// Elementwise, one pass, so y may not alias x unless they are the same rows.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"

namespace tessera {

struct ScaleAddParams {
  int64_t rows = 0;           // R (may be 0)
  int64_t width = 0;          // W
  float alpha = 1.0f;         // scale of x (ignored when x is null)
  const float* x = nullptr;   // (R, W), row stride x_stride; null: no x term
  int64_t x_stride = 0;       // 0 means W
  float beta = 1.0f;          // scale of y's old value
  float* y = nullptr;         // (R, W), row stride y_stride; in/out
  int64_t y_stride = 0;       // 0 means W
};

// The contract's checks (kernels/scale_add.cc), which every backend runs first.
absl::Status CheckScaleAddParams(const ScaleAddParams& p);

namespace cpu {
absl::Status ScaleAdd(const ScaleAddParams& p);
}  // namespace cpu

namespace cuda {
absl::Status ScaleAdd(const ScaleAddParams& p, CudaStream stream);
}  // namespace cuda

}  // namespace tessera
