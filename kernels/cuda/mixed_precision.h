// The ops of the CUDA engine's bf16 mode, where operands are stored in bf16
// (weights, GEMM inputs, K/V) while accumulation, softmax, SSM states and the
// residual stream stay fp32. Each takes the storage type of its operands, so
// the engine's fp32 mode runs the same calls with ElementType::kF32.
// Device pointers; strides in elements; enqueued on `stream`. Each validates
// its params first (INVALID_ARGUMENT naming the op and field, as the fp32 ops
// do), and kF32 runs exactly the fp32 op of the same contract.
// Host entry points in mixed_precision.cc, kernels in cast.cu, embedding.cu
// and attention.cu.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/attention.h"
#include "kernels/cuda_stream.h"
#include "kernels/embedding.h"

namespace tessera::cuda {

enum class ElementType { kF32, kBF16 };
// 4 or 2; 0 for a value outside the enum.
int64_t ElementBytes(ElementType type);

// y (rows, out) = x (rows, in) · Wᵀ (+ bias), or y += ... when accumulate.
// x and weight share one storage type (both fp32 or both bf16); y and bias
// are fp32; cuBLAS with fp32 accumulation (no TF32 for fp32 operands). The
// bias, when given, is laid into y (or added to it) before the GEMM, as in
// cuda::Linear. rows may be 0 (nothing happens).
struct MixedLinearParams {
  int64_t rows = 0;
  int64_t in_features = 0;
  int64_t out_features = 0;
  ElementType type = ElementType::kF32;  // of x and weight
  const void* x = nullptr;               // (rows, in_features), row stride x_stride
  int64_t x_stride = 0;                  // 0 means in_features
  const void* weight = nullptr;          // (out_features, in_features) row-major
  const float* bias = nullptr;           // (out_features) or null
  float* y = nullptr;                    // (rows, out_features), row stride y_stride
  int64_t y_stride = 0;                  // 0 means out_features
  bool accumulate = false;
};
absl::Status MixedLinear(const MixedLinearParams& p, CudaStream stream);

// out (rows, width) in `type` = in (rows, width) fp32, rounded to nearest
// even; row strides in elements (0 means width). fp32 -> fp32 is a copy.
// out may alias in only for kF32 with equal strides (then nothing is done).
absl::Status StoreAs(ElementType type, int64_t rows, int64_t width, const float* in,
                     int64_t in_stride, void* out, int64_t out_stride, CudaStream stream);
// out (rows, width) fp32 = in (rows, width) stored as `type`.
absl::Status LoadAsFloat(ElementType type, int64_t rows, int64_t width, const void* in,
                         int64_t in_stride, float* out, int64_t out_stride, CudaStream stream);

// out (num_tokens, hidden) fp32 = table[ids], the table stored as `type`
// (p.table is ignored). Ids are device memory, checked against the
// vocabulary like cuda::Embedding (so this synchronizes `stream`; a bad id is
// INVALID_ARGUMENT and leaves out untouched).
absl::Status MixedEmbedding(const EmbeddingParams& p, ElementType type, const void* table,
                            CudaStream stream);

// cuda::Attention with q, k, v stored as `type` (p.q/k/v ignored; strides of
// p in elements); softmax, accumulation, out and lse in fp32. One kernel for
// both types (operands widened to fp32 as shared memory is filled), so bf16
// has every feature and limit of Attention: GQA, positions, causal or not,
// kv_len 0, lse optional, head_dim <= 256.
absl::Status MixedAttention(const AttentionParams& p, ElementType type, const void* q,
                            const void* k, const void* v, CudaStream stream);

}  // namespace tessera::cuda
