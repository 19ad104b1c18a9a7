// Causal depthwise conv1d + SiLU of the Mamba-2 mixer, with carried state.
//
// out[t, c] = silu(bias[c] + Σ_{k<K} weight[c, k] · xpad[t + k, c]) where xpad is
// the K-1 rows of state_in (oldest first) followed by the L rows of x. The same
// op serves prefill (L tokens), the one-token decode update (L = 1) and the
// context-parallel conv halo (state_in = the left neighbour's last K-1 rows).
// state_out receives the last K-1 rows of xpad: the state for what comes next.
//
// x and out each have a storage type (fp32 or bf16): x is read widened to
// fp32 (the bf16 in_proj output on the GPU's bf16 path), the sum and SiLU run
// in fp32 and out is rounded once on store (bf16: the SSD scan's x, B, C;
// fp32 for the one-token update). weight, bias and both states are fp32: a
// state holds pre-conv rows exactly, whatever x's type.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"
#include "kernels/element_type.h"

namespace tessera {

struct CausalConv1dParams {
  int64_t seq_len = 0;       // L (may be 0: then only the state moves)
  int64_t channels = 0;      // C = d_inner + 2·G·N
  int64_t kernel_width = 0;  // K >= 1
  const void* x = nullptr;   // (L, C) of x_type, row stride x_stride
  int64_t x_stride = 0;      // 0 means channels
  const float* weight = nullptr;    // (C, K): Hugging Face conv1d.weight [C, 1, K]
  const float* bias = nullptr;      // (C) or null
  const float* state_in = nullptr;  // (K-1, C) oldest row first, or null for zeros
  void* out = nullptr;              // (L, C) of out_type, contiguous, SiLU applied; must not overlap x
  float* state_out = nullptr;       // (K-1, C) or null; may alias state_in
  // Last, so that brace-initialized params written before them keep their meaning.
  ElementType x_type = ElementType::kF32;
  ElementType out_type = ElementType::kF32;
};

// The contract's checks (kernels/causal_conv1d.cc), which every backend runs first:
// OK or INVALID_ARGUMENT "<Op>: <what>" naming the field and the value given.
absl::Status CheckCausalConv1dParams(const CausalConv1dParams& p);

namespace cpu {
absl::Status CausalConv1d(const CausalConv1dParams& p);
}  // namespace cpu

// The same op on device pointers, enqueued on `stream` (all pointers device memory).
namespace cuda {
absl::Status CausalConv1d(const CausalConv1dParams& p, CudaStream stream);
}  // namespace cuda

}  // namespace tessera
