// bf16-input variants used by the accuracy checks of tests/kernels_gpu (the
// flash-attention rule: error against an fp32 reference at most twice that of
// a plain implementation that rounds inputs and outputs to bf16). Inputs are
// device __nv_bfloat16 arrays passed as void*; accumulation and outputs fp32.
// Not part of the op contracts: the engine's bf16 path will define its own.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/attention.h"
#include "kernels/cuda_stream.h"
#include "kernels/linear.h"

namespace tessera::cuda {

// y = x · Wᵀ with x (rows, in) and W (out, in) in bf16, packed; y fp32 packed.
absl::Status LinearBf16(int64_t rows, int64_t in_features, int64_t out_features, const void* x,
                        const void* weight, float* y, CudaStream stream);

// Attention with q/k/v in bf16 (layout and strides of p, whose q/k/v are ignored).
absl::Status AttentionBf16(const AttentionParams& p, const void* q, const void* k, const void* v,
                           CudaStream stream);

}  // namespace tessera::cuda
