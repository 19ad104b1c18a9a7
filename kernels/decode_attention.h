// Decode attention over a batch of requests (continuous batching): each
// request brings one new query row (already RoPE'd) and attends over its own
// K/V cache, which lives wherever that request's cache lives (one K and one V
// pointer per request, not contiguous, not padded), with its own length:
//   out[r, h] = softmax(scale · q[r, h] · K_rᵀ) · V_r  over keys [0, kv_lens[r])
// with GQA (query head h reads KV head h / (Hq/Hkv)) and the log-sum-exp of
// each row, so that partials over disjoint key sets merge exactly by the rule
// of kernels/attention.h (AttentionMerge: split-KV across workers).
//
// Causality needs no positions here: a decode query comes after every key
// of its cache, and a query that may see only a prefix of the cache (keys at
// global positions kv_position0 + j <= its position) is the same call with
// kv_lens[r] = its position - kv_position0 + 1. A request with kv_len 0 gets
// out = 0 and lse = -inf (merges as "nothing").
//
// q, K and V share one storage type (fp32, or bf16 widened as read); scores,
// softmax, accumulation, out and lse are fp32. The CPU reference takes fp32
// only (UNIMPLEMENTED for bf16), request by request as cpu::Attention.
// CUDA: bf16 or fp32 with head_dim 64 or 128, Hq/Hkv <= 128 and K/V row
// strides that keep 16-byte rows run the split-KV (FlashDecoding) kernels of
// kernels/cuda/decode_attention.cu, which cut the keys of all requests into
// pieces of about equal size across thread blocks (planned on the device from
// kv_lens, so a CUDA graph captured once serves any lengths), given the
// workspace that cuda::DecodeAttentionWorkspaceBytes asks for (without it,
// one piece per request and KV head: the same answer, fewer thread blocks).
// That path needs every k[r] and v[r] 16-byte aligned (as cache blocks are).
// Any other shape (head_dim <= 256) runs a plain CUDA-core kernel.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"
#include "kernels/element_type.h"

namespace tessera {

struct DecodeAttentionParams {
  int64_t batch = 0;         // requests (may be 0)
  int64_t num_q_heads = 0;   // Hq
  int64_t num_kv_heads = 0;  // Hkv, divides Hq
  int64_t head_dim = 0;      // D
  ElementType type = ElementType::kF32;  // of q and every request's K and V
  const void* q = nullptr;   // (batch, Hq, D) of `type`, request stride q_stride
  int64_t q_stride = 0;      // elements; 0 means Hq·D
  const void* const* k = nullptr;  // (batch) pointers: request r's keys (kv_lens[r], Hkv, D) of `type`, token
                                   // stride k_stride (null where kv_lens[r] is 0)
  int64_t k_stride = 0;            // elements; 0 means Hkv·D
  const void* const* v = nullptr;  // (batch) pointers: request r's values, as k
  int64_t v_stride = 0;            // elements; 0 means Hkv·D
  const int32_t* kv_lens = nullptr;  // (batch) keys each request sees, >= 0
  float scale = 0.0f;        // softmax scale, usually 1/sqrt(D)
  float* out = nullptr;      // (batch, Hq, D) fp32 contiguous
  float* lse = nullptr;      // (batch, Hq) fp32 natural log, or null
  // Device scratch for the split-KV path: partial outs and lses of the key
  // pieces, sized by cuda::DecodeAttentionWorkspaceBytes (null or too small:
  // one piece per request). The CPU reference ignores it.
  void* workspace = nullptr;
  int64_t workspace_bytes = 0;  // bytes at `workspace`
};
// On CUDA, q, the pointer arrays k and v, kv_lens, the caches, out, lse and
// the workspace are all device memory.

// The contract's checks (kernels/decode_attention.cc), which every backend runs first:
// OK or INVALID_ARGUMENT "<Op>: <what>" naming the field and the value given.
absl::Status CheckDecodeAttentionParams(const DecodeAttentionParams& p);

namespace cpu {
absl::Status DecodeAttention(const DecodeAttentionParams& p);
}  // namespace cpu

// The same op on device pointers, enqueued on `stream` (all pointers device memory).
namespace cuda {
absl::Status DecodeAttention(const DecodeAttentionParams& p, CudaStream stream);
// Workspace bytes that let cuda::DecodeAttention split the keys of `p`'s
// requests across thread blocks, on the current device; 0 when the call takes
// no workspace (a shape for the plain kernel, invalid params, batch 0). It
// depends on batch, heads and head_dim only, never on the lengths, so one
// workspace serves every step of a batch size (and every smaller batch).
int64_t DecodeAttentionWorkspaceBytes(const DecodeAttentionParams& p);
}  // namespace cuda

}  // namespace tessera
