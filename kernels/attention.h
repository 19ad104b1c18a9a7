// Attention forward with GQA and a causal mask by global position, returning
// the log-sum-exp of each row as well as the output, so that partial results
// over disjoint key sets merge exactly (ring prefill, split-KV decode):
//   lse = log(exp(lse_1) + exp(lse_2))
//   o   = exp(lse_1 - lse) · o_1 + exp(lse_2 - lse) · o_2
//
// Query row i (global position q_position0 + i) sees key j (global position
// kv_position0 + j) iff causal is false or kv_position0 + j <= q_position0 + i.
// Query head h reads KV head h / (num_q_heads / num_kv_heads).
// A row that sees no key gets out = 0 and lse = -inf (merges as "nothing").
//
// q, k and v share one storage type (`type`): fp32, or bf16 widened to fp32 as
// it is read; scores, softmax, accumulation, out and lse are fp32 whatever the
// type. The CPU reference takes fp32 only (UNIMPLEMENTED for bf16). CUDA has
// every feature for both types (GQA, positions, causal or not, kv_len 0, lse
// optional, head_dim <= 256): bf16 with head_dim 64 or 128 and 16-byte-aligned
// rows runs on Hopper tensor cores (wgmma, FlashAttention-3 style), the rest
// on a CUDA-core kernel that reads either type; decode-shaped calls (a few
// query rows, many keys) split the keys across thread blocks and merge the
// partials by the rule above (FlashDecoding), in `workspace` when given one.
// A batch of decode queries, each request over its own K/V cache, is one call
// of DecodeAttention (kernels/decode_attention.h), on the same kernels.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"
#include "kernels/element_type.h"

namespace tessera {

struct AttentionParams {
  int64_t q_len = 0;         // Lq
  int64_t kv_len = 0;        // Lk (may be 0)
  int64_t num_q_heads = 0;   // Hq
  int64_t num_kv_heads = 0;  // Hkv, divides Hq
  int64_t head_dim = 0;      // D
  ElementType type = ElementType::kF32;  // of q, k, v
  const void* q = nullptr;   // (Lq, Hq, D) of `type`, token stride q_stride
  int64_t q_stride = 0;      // elements; 0 means Hq·D
  const void* k = nullptr;   // (Lk, Hkv, D) of `type`, token stride k_stride
  int64_t k_stride = 0;      // elements; 0 means Hkv·D
  const void* v = nullptr;   // (Lk, Hkv, D) of `type`, token stride v_stride
  int64_t v_stride = 0;      // elements; 0 means Hkv·D
  int64_t q_position0 = 0;   // global position of query row 0
  int64_t kv_position0 = 0;  // global position of key 0
  bool causal = true;
  float scale = 0.0f;        // softmax scale, usually 1/sqrt(D)
  float* out = nullptr;      // (Lq, Hq, D) fp32 contiguous
  float* lse = nullptr;      // (Lq, Hq) fp32 natural log, or null
  // Optional device scratch for a backend that splits the keys across thread
  // blocks (CUDA's split-KV decode path: per split, a partial out (Lq, Hq, D)
  // and lse (Lq, Hq), fp32), sized by cuda::AttentionWorkspaceBytes. Without
  // it (or with too few bytes) the backend takes a path that needs none; the
  // answer is the same either way. The CPU reference ignores it.
  void* workspace = nullptr;
  int64_t workspace_bytes = 0;  // bytes at `workspace`
};

// Merges a partial result into an accumulator, in place, by the rule above.
struct AttentionMergeParams {
  int64_t rows = 0;      // Lq·Hq
  int64_t head_dim = 0;  // D
  float* out = nullptr;         // (rows, D) accumulator, in/out
  float* lse = nullptr;         // (rows) accumulator, in/out
  const float* part_out = nullptr;  // (rows, D)
  const float* part_lse = nullptr;  // (rows)
};

// The contract's checks (kernels/attention.cc), which every backend runs first:
// OK or INVALID_ARGUMENT "<Op>: <what>" naming the field and the value given.
absl::Status CheckAttentionParams(const AttentionParams& p);
absl::Status CheckAttentionMergeParams(const AttentionMergeParams& p);

namespace cpu {
absl::Status Attention(const AttentionParams& p);
absl::Status AttentionMerge(const AttentionMergeParams& p);
}  // namespace cpu

// The same op on device pointers, enqueued on `stream` (all pointers device memory).
namespace cuda {
absl::Status Attention(const AttentionParams& p, CudaStream stream);
// Workspace bytes that let cuda::Attention run `p` on its split-KV path (a
// decode-shaped call over more keys than one thread block per KV head should
// read), on the current device; 0 when the call takes no workspace (any other
// shape, invalid params, or keys few enough for one block). Cheap: no
// allocation, no synchronization. On a given device it never decreases as the
// keys that the queries see grow, so a workspace sized for the longest decode
// call serves the shorter ones.
int64_t AttentionWorkspaceBytes(const AttentionParams& p);
absl::Status AttentionMerge(const AttentionMergeParams& p, CudaStream stream);
}  // namespace cuda

}  // namespace tessera
