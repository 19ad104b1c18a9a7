// One-token causal conv1d + SiLU for a batch of decoding requests, each with
// its own conv state (the state pool's slots: neither contiguous nor padded):
// for request r and channel c,
//   out[r, c] = silu(bias[c] + Σ_{k<K-1} weight[c, k] · state_r[k, c] + weight[c, K-1] · x[r, c])
// then state_r drops its oldest row and appends x[r] (fp32, widened exactly).
// Per request this is CausalConv1d with seq_len 1 and state_out = state_in
// (kernels/causal_conv1d.h); this op runs the whole batch in one call.
//
// x has a storage type (fp32 or bf16: in_proj's xBC columns on the GPU's bf16
// path) and a row stride; out has its own type (fp32 for the one-token SSD
// step, which reads x, B and C straight from it); the sum and SiLU run in fp32.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"
#include "kernels/element_type.h"

namespace tessera {

struct ConvStepParams {
  int64_t batch = 0;         // requests (may be 0)
  int64_t channels = 0;      // C = d_inner + 2·G·N
  int64_t kernel_width = 0;  // K >= 1
  const void* x = nullptr;   // (batch, C) of x_type, row stride x_stride: each request's new pre-conv row
  int64_t x_stride = 0;      // elements; 0 means channels
  const float* weight = nullptr;   // (C, K): Hugging Face conv1d.weight [C, 1, K]
  const float* bias = nullptr;     // (C) or null
  float* const* states = nullptr;  // (batch) pointers, each (K-1, C) fp32 in/out, oldest row first; may be
                                   // null when K == 1. On CUDA the array and the states are device memory
  void* out = nullptr;             // (batch, C) of out_type, row stride out_stride, SiLU applied; must not
                                   // overlap x or a state
  int64_t out_stride = 0;          // elements; 0 means channels
  ElementType x_type = ElementType::kF32;
  ElementType out_type = ElementType::kF32;
};

// The contract's checks (kernels/conv_step.cc), which every backend runs first:
// OK or INVALID_ARGUMENT "<Op>: <what>" naming the field and the value given.
absl::Status CheckConvStepParams(const ConvStepParams& p);

namespace cpu {
absl::Status ConvStep(const ConvStepParams& p);
}  // namespace cpu

// The same op on device pointers, enqueued on `stream` (all pointers device memory).
namespace cuda {
absl::Status ConvStep(const ConvStepParams& p, CudaStream stream);
}  // namespace cuda

}  // namespace tessera
