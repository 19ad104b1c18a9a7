// One-token Mamba-2 state update (decode): for each head h, group g = h/(H/G),
//   state = exp(dt_h · A_h) · state + dt_h · x_h ⊗ B_g
//   y_h   = state · C_g + D_h · x_h
// The same recurrence SsdScan chunks; decode calls this once per new token.
//
// Batched decode (continuous batching) runs `batch` requests in one call, each
// with its own state (`states`, one pointer per request: the state pool's
// slots, neither contiguous nor padded); x, dt, B, C and y hold one row per
// request, `*_stride` elements apart, so x, B and C can be read straight from
// the one-token conv's output rows ([x | B | C]) and dt from in_proj's.
// With dt_bias set, dt holds the raw dt columns and the step applies
// DtSoftplus itself: dt = clamp(softplus(dt_raw + dt_bias), dt_min, dt_max).
// Without `states` the single `state` is updated (batch 1), as before.
#pragma once

#include <cstdint>
#include <limits>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"
#include "kernels/element_type.h"

namespace tessera {

struct SsdStepParams {
  int64_t num_heads = 0;   // H
  int64_t head_dim = 0;    // P
  int64_t num_groups = 0;  // G, divides H
  int64_t state_size = 0;  // N
  const float* x = nullptr;   // (batch, H, P), request stride x_stride
  const void* dt = nullptr;   // (batch, H) of dt_type, request stride dt_stride: after DtSoftplus, or raw
                              // (dt_bias set)
  const float* A = nullptr;   // (H)
  const float* B = nullptr;   // (batch, G, N), request stride b_stride
  const float* C = nullptr;   // (batch, G, N), request stride c_stride
  const float* D = nullptr;   // (H) or null
  float* state = nullptr;     // (H, P, N) in/out, fp32: the one request's when `states` is null
  float* y = nullptr;         // (batch, H, P), request stride y_stride; may alias x (same stride)
  // Last, so that brace-initialized params written before them keep their meaning.
  int64_t batch = 1;                // requests; must be 1 without `states` (may be 0 with)
  float* const* states = nullptr;   // (batch) pointers, each (H, P, N) fp32 in/out, or null (then `state`);
                                    // on CUDA the array and the states are device memory
  int64_t x_stride = 0;             // elements between requests' x rows; 0 means H·P
  int64_t dt_stride = 0;            // 0 means H
  int64_t b_stride = 0;             // 0 means G·N
  int64_t c_stride = 0;             // 0 means G·N
  int64_t y_stride = 0;             // 0 means H·P
  const float* dt_bias = nullptr;   // (H), or null: dt is already the step size
  float dt_min = 0.0f;              // with dt_bias: time_step_limit[0]
  float dt_max = std::numeric_limits<float>::infinity();  // with dt_bias: time_step_limit[1]
  ElementType dt_type = ElementType::kF32;  // of dt (bf16: in_proj's raw dt columns)
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
