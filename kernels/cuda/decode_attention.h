// The split-KV ("FlashDecoding") attention kernels (kernels/cuda/decode_attention.cu)
// as their callers see them: a few query rows against many keys, the keys cut
// across thread blocks, the partial results merged by the log-sum-exp rule of
// kernels/attention.h. Two ops call them: cuda::Attention (one request's
// rows; kernels/cuda/attention.cu decides when a call goes here) and
// cuda::DecodeAttention (a batch of requests, one row each, with their own
// K/V and lengths); this header says what the kernels can take. The plain
// kernel that serves DecodeAttention's other shapes is here too
// (kernels/cuda/decode_attention_ffma.cu).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/attention.h"
#include "kernels/decode_attention.h"

namespace tessera::cuda_decode {

// The largest batch DecodeAttention's kernels take (a grid dimension).
constexpr int64_t kMaxDecodeBatch = 65535;

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

// The same for a batch (checked by CheckDecodeAttentionParams): the shape
// rules above with q_len 1, batch <= kMaxDecodeBatch; the pointers k[r], v[r]
// (device values) must be 16-byte aligned. The workspace (partials of about
// one wave of key pieces, and the plan) depends on batch, heads and head_dim
// only. Without that much workspace the launch runs one piece per request
// and KV head, and no combine.
bool BatchSplitKvSupports(const DecodeAttentionParams& p);
int64_t BatchSplitKvWorkspaceBytes(const DecodeAttentionParams& p);
cudaError_t LaunchBatchSplitKvAttention(const DecodeAttentionParams& p, cudaStream_t stream);

// DecodeAttention on CUDA cores for any head_dim <= 256 and any alignment: a
// warp per (request, query head), one pass over the keys with an online softmax.
cudaError_t LaunchDecodeAttentionFfma(const DecodeAttentionParams& p, cudaStream_t stream);

}  // namespace tessera::cuda_decode
