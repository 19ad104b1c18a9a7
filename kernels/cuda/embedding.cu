// Token embedding gather for a table stored as fp32 (cuda::Embedding) or bf16
// (cuda::MixedEmbedding), widened to fp32: one block row per token, threads
// across hidden, so no per-element division and coalesced rows. The ids were
// checked on the host by the entry point before this launch (host_util.h).
#include <cuda_bf16.h>

#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/launch.h"

namespace tessera::cuda_launch {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void EmbeddingKernel(EmbeddingParams p, const T* table) {
  for (int64_t t = blockIdx.y; t < p.num_tokens; t += gridDim.y) {
    const T* row = table + static_cast<int64_t>(p.ids[t]) * p.hidden;  // (hidden)
    float* out = p.out + t * p.hidden;                                 // (hidden)
    for (int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; c < p.hidden;
         c += int64_t{gridDim.x} * blockDim.x) {
      out[c] = ToFloat(row[c]);
    }
  }
}

template <typename T>
cudaError_t LaunchEmbedding(const EmbeddingParams& p, const T* table, cudaStream_t stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  EmbeddingKernel<T><<<RowGrid(p.num_tokens, p.hidden, kThreads), kThreads, 0, stream>>>(p, table);
  return cudaGetLastError();
}

}  // namespace

cudaError_t Embedding(const EmbeddingParams& p, cudaStream_t stream) {
  return LaunchEmbedding(p, p.table, stream);
}

cudaError_t EmbeddingBf16(const EmbeddingParams& p, const void* table, cudaStream_t stream) {
  return LaunchEmbedding(p, static_cast<const __nv_bfloat16*>(table), stream);
}

}  // namespace tessera::cuda_launch
