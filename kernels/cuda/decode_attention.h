// The split-KV ("FlashDecoding") attention kernels (kernels/cuda/decode_attention.cu)
// as kernels/cuda/attention.cu calls them: a few query rows against many keys,
// the keys cut across thread blocks, the partial results merged by the
// log-sum-exp rule of kernels/attention.h. attention.cu decides when a call
// goes here (its dispatch rule); this header says what the kernels can take.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/attention.h"

namespace tessera::cuda_decode {

// True when `p` (already checked by CheckAttentionParams, q_len >= 1) fits the
// kernels: bf16 or fp32, head_dim 64 or 128, q_len · (Hq/Hkv) <= 128 query
// rows per KV head, kv_len < 2^31, Hkv <= 65535, K and V rows 16-byte aligned
// (base pointers and row strides). q, out and lse may have any alignment.
bool SplitKvSupports(const AttentionParams& p);

// Workspace bytes the launch needs for `p` (supported) on the current device:
// (splits, Lq, Hq, D) partial outs then (splits, Lq, Hq) partial lses, fp32;
// 0 when one split covers the keys (the kernel then writes out and lse
// itself). Never decreases as kv_len grows.
int64_t SplitKvWorkspaceBytes(const AttentionParams& p);

// Enqueues the split kernel and, with more than one split, the combine kernel
// on `stream`. p.workspace must hold SplitKvWorkspaceBytes(p) bytes
// (cudaErrorInvalidValue otherwise).
cudaError_t LaunchSplitKvAttention(const AttentionParams& p, cudaStream_t stream);

}  // namespace tessera::cuda_decode
