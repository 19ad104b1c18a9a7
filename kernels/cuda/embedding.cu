// Token embedding gather, one thread per output element. The ids were checked
// on the host by the entry point before this launch (see entry_points.cc).
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/launch.h"

namespace tessera::cuda_launch {
namespace {

__global__ void EmbeddingKernel(EmbeddingParams p) {
  const int64_t count = p.num_tokens * p.hidden;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t t = i / p.hidden;
    const int64_t c = i - t * p.hidden;
    p.out[i] = p.table[static_cast<int64_t>(p.ids[t]) * p.hidden + c];
  }
}

}  // namespace

cudaError_t Embedding(const EmbeddingParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  EmbeddingKernel<<<GridFor(p.num_tokens * p.hidden, kThreads), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace tessera::cuda_launch
