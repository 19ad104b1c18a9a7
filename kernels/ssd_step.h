// One-token Mamba-2 state update (decode): for each head h, group g = h/(H/G),
//   state = exp(dt_h · A_h) · state + dt_h · x_h ⊗ B_g
//   y_h   = state · C_g + D_h · x_h
// The same recurrence SsdScan chunks; decode calls this once per new token.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"

namespace tessera {

struct SsdStepParams {
  int64_t num_heads = 0;   // H
  int64_t head_dim = 0;    // P
  int64_t num_groups = 0;  // G, divides H
  int64_t state_size = 0;  // N
  const float* x = nullptr;   // (H, P)
  const float* dt = nullptr;  // (H) after DtSoftplus
  const float* A = nullptr;   // (H)
  const float* B = nullptr;   // (G, N)
  const float* C = nullptr;   // (G, N)
  const float* D = nullptr;   // (H) or null
  float* state = nullptr;     // (H, P, N) in/out, fp32
  float* y = nullptr;         // (H, P)
};

// The contract's checks (kernels/ssd_step.cc), which every backend runs first:
// OK or INVALID_ARGUMENT "<Op>: <what>" naming the field and the value given.
absl::Status CheckSsdStepParams(const SsdStepParams& p);

namespace cpu {
absl::Status SsdStep(const SsdStepParams& p);
}  // namespace cpu

// The same op on device pointers, enqueued on `stream` (all pointers device memory).
namespace cuda {
absl::Status SsdStep(const SsdStepParams& p, CudaStream stream);
}  // namespace cuda

}  // namespace tessera
