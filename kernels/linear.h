// Linear layer: y = x · Wᵀ (+ bias), the matrix product behind every projection
// and the lm_head. W is stored (out_features, in_features) row-major, exactly as
// Hugging Face checkpoints store nn.Linear weights, so no transpose at load.
// The CPU version calls BLAS (OpenBLAS); the CUDA version cuBLAS.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"

namespace tessera {

struct LinearParams {
  int64_t rows = 0;          // M: tokens
  int64_t in_features = 0;   // K
  int64_t out_features = 0;  // N
  const float* x = nullptr;  // (rows, in_features), row stride x_stride
  int64_t x_stride = 0;      // elements between rows of x; 0 means in_features
  const float* weight = nullptr;  // (out_features, in_features) row-major
  const float* bias = nullptr;    // (out_features) or null
  float* y = nullptr;        // (rows, out_features), row stride y_stride
  int64_t y_stride = 0;      // 0 means out_features
  bool accumulate = false;   // true: y += x·Wᵀ (residual add fused), false: y = x·Wᵀ
};

namespace cpu {
absl::Status Linear(const LinearParams& p);
// Threads BLAS may use per call (1 when several workers share the cores).
void SetBlasThreads(int threads);
}  // namespace cpu

// The same op on device pointers, enqueued on `stream` (all pointers device memory).
namespace cuda {
absl::Status Linear(const LinearParams& p, CudaStream stream);
}  // namespace cuda

}  // namespace tessera
