// The tensor-core attention forward for Hopper (kernels/cuda/flash_attention_sm90.cu),
// as kernels/cuda/attention.cu calls it: bf16 q/k/v, head_dim 64 or 128, rows
// of q, k and v 16-byte aligned. Every other request runs attention.cu's own
// kernel; FlashAttentionSm90Supports says which path a request takes.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/attention.h"

namespace tessera::cuda_flash {

// The kernel's schedules, both computing the same bits (see the .cu file).
enum class FlashVariant {
  kInOrder,   // S = QKᵀ, softmax, P·V, each finished before the next step
  kPingpong,  // the next S and this P·V in flight under the softmax; the two
              // consumer warpgroups take turns on the tensor cores
};

// The faster schedule on an H200 (bench/attention_bench, 2026-12-03): kPingpong
// for head_dim 128, kInOrder for 64, whose shorter MMAs leave too little to
// hide a softmax under.
FlashVariant DefaultFlashVariant(int64_t head_dim);

// True when `p` (already checked by CheckAttentionParams) fits the kernel:
// bf16, head_dim 64 or 128, q_len and kv_len >= 1 and < 2^31, row strides and
// base pointers of q, k, v 16-byte aligned, out 8-byte aligned.
bool FlashAttentionSm90Supports(const AttentionParams& p);

// Launches the kernel on `stream` (a request FlashAttentionSm90Supports accepts).
cudaError_t LaunchFlashAttentionSm90(const AttentionParams& p, FlashVariant variant,
                                     cudaStream_t stream);

}  // namespace tessera::cuda_flash
