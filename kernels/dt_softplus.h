// Mamba-2 step sizes: dt = clamp(softplus(dt_raw + dt_bias), dt_min, dt_max),
// softplus(v) = log(1 + exp(v)) (v itself above 20, as torch does). dt_raw
// (the dt columns of the in_proj output) is fp32 or bf16, widened as read;
// the step sizes are fp32 (the scan and its decays take them so).
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"
#include "kernels/element_type.h"

namespace tessera {

struct DtSoftplusParams {
  int64_t rows = 0;       // tokens
  int64_t num_heads = 0;  // H
  const void* dt_raw = nullptr;    // (rows, H) of dt_raw_type, row stride dt_stride
  int64_t dt_stride = 0;           // 0 means num_heads
  const float* dt_bias = nullptr;  // (H)
  float dt_min = 0.0f;             // time_step_limit[0]
  float dt_max = 0.0f;             // time_step_limit[1] (may be +inf)
  float* out = nullptr;            // (rows, H) contiguous
  // Last, so that brace-initialized params written before it keep their meaning.
  ElementType dt_raw_type = ElementType::kF32;
};

// The contract's checks (kernels/dt_softplus.cc), which every backend runs first:
// OK or INVALID_ARGUMENT "<Op>: <what>" naming the field and the value given.
absl::Status CheckDtSoftplusParams(const DtSoftplusParams& p);

namespace cpu {
absl::Status DtSoftplus(const DtSoftplusParams& p);
}  // namespace cpu

// The same op on device pointers, enqueued on `stream` (all pointers device memory).
namespace cuda {
absl::Status DtSoftplus(const DtSoftplusParams& p, CudaStream stream);
}  // namespace cuda

}  // namespace tessera
