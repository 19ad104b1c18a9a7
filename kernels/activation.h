// Elementwise MLP activations, in fp32:
//   SiluMul:     out = silu(gate) · up        (SwiGLU MLP of bamba/granite)
//   ReluSquared: out = max(x, 0)²             (relu² MLP of nemotron_h)
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"

namespace tessera {

struct SiluMulParams {
  int64_t rows = 0;   // R (may be 0)
  int64_t width = 0;  // W
  const float* gate = nullptr;  // (rows, width), row stride gate_stride
  int64_t gate_stride = 0;      // 0 means width
  const float* up = nullptr;    // (rows, width), row stride up_stride
  int64_t up_stride = 0;        // 0 means width
  float* out = nullptr;         // (rows, width) contiguous; may alias gate or up when contiguous
};

struct ReluSquaredParams {
  int64_t count = 0;  // elements (may be 0)
  const float* x = nullptr;  // (count)
  float* out = nullptr;      // (count); may alias x
};

// The contract's checks (kernels/activation.cc), which every backend runs first:
// OK or INVALID_ARGUMENT "<Op>: <what>" naming the field and the value given.
absl::Status CheckSiluMulParams(const SiluMulParams& p);
absl::Status CheckReluSquaredParams(const ReluSquaredParams& p);

namespace cpu {
absl::Status SiluMul(const SiluMulParams& p);
absl::Status ReluSquared(const ReluSquaredParams& p);
}  // namespace cpu

// The same op on device pointers, enqueued on `stream` (all pointers device memory).
namespace cuda {
absl::Status SiluMul(const SiluMulParams& p, CudaStream stream);
absl::Status ReluSquared(const ReluSquaredParams& p, CudaStream stream);
}  // namespace cuda

}  // namespace tessera
