// A strided (rows, width) copy between storage types: fp32 -> bf16 rounds to
// nearest even (overflow to ±inf, NaN stays NaN), bf16 -> fp32 is exact, and a
// same-type cast is a copy. It is how an fp32 tensor becomes a bf16 GEMM
// operand (attention's output, the MoE router's input for the experts), how
// new K/V rows enter the cache, and how bf16 rows come back as fp32.
// Strides are in elements of their own array. out may alias in only with the
// same type and the same stride, and then nothing is done.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"
#include "kernels/element_type.h"

namespace tessera {

struct CastParams {
  int64_t rows = 0;   // R (may be 0)
  int64_t width = 0;  // W
  ElementType in_type = ElementType::kF32;
  const void* in = nullptr;   // (R, W) of in_type, row stride in_stride
  int64_t in_stride = 0;      // elements; 0 means W
  ElementType out_type = ElementType::kF32;
  void* out = nullptr;        // (R, W) of out_type, row stride out_stride
  int64_t out_stride = 0;     // elements; 0 means W
};

// The contract's checks (kernels/cast.cc), which every backend runs first:
// OK or INVALID_ARGUMENT "Cast: <what>" naming the field and the value given.
absl::Status CheckCastParams(const CastParams& p);

namespace cpu {
absl::Status Cast(const CastParams& p);
}  // namespace cpu

// The same op on device pointers, enqueued on `stream` (all pointers device memory).
namespace cuda {
absl::Status Cast(const CastParams& p, CudaStream stream);
}  // namespace cuda

}  // namespace tessera
