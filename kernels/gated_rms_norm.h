// Gated RMSNorm of the Mamba-2 mixer: g = y · silu(z), then RMSNorm of g over
// groups of `group_size` consecutive channels, times weight.
// group_size == width normalizes over the full d_inner (transformers' mamba2 and
// bamba); group_size == d_inner / n_groups normalizes per group (nemotron_h,
// mamba_ssm). The grouping is a per-family setting chosen by the model config.
//
// y (the scan's output) is fp32; z and out share one storage type (`type`):
// fp32, or bf16 (z read from the in_proj output, out rounded once on store,
// the out_proj's operand). Computed in fp32 either way. out may overwrite y
// or z in place: every element is read before its group's output is written.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"
#include "kernels/element_type.h"

namespace tessera {

struct GatedRmsNormParams {
  int64_t rows = 0;         // R (may be 0)
  int64_t width = 0;        // d_inner
  int64_t group_size = 0;   // divides width
  float eps = 1e-5f;        // finite, >= 0
  const float* y = nullptr;     // (rows, width), row stride y_stride
  int64_t y_stride = 0;         // 0 means width
  const void* z = nullptr;      // (rows, width) gate of `type`, row stride z_stride
  int64_t z_stride = 0;         // 0 means width
  const float* weight = nullptr;  // (width)
  void* out = nullptr;          // (rows, width) of `type`, row stride out_stride; may alias y (fp32, same
                                // stride) or z (same stride)
  // Last, so that brace-initialized params written before them keep their meaning.
  int64_t out_stride = 0;       // 0 means width
  ElementType type = ElementType::kF32;  // of z and out
};

// The contract's checks (kernels/gated_rms_norm.cc), which every backend runs first:
// OK or INVALID_ARGUMENT "<Op>: <what>" naming the field and the value given.
absl::Status CheckGatedRmsNormParams(const GatedRmsNormParams& p);

namespace cpu {
absl::Status GatedRmsNorm(const GatedRmsNormParams& p);
}  // namespace cpu

// The same op on device pointers, enqueued on `stream` (all pointers device memory).
namespace cuda {
absl::Status GatedRmsNorm(const GatedRmsNormParams& p, CudaStream stream);
}  // namespace cuda

}  // namespace tessera
