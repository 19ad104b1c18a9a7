// One thread per state element, folding the earlier shards in rank order (a
// handful of ranks: the fold is sequential per element, in fp32 like the CPU).
#include "worker/cuda/ssd_compose.h"

namespace tessera::cuda_engine {
namespace {

__global__ void ComposeKernel(const float* summaries, int ranks_before, int64_t num_heads, int64_t per_head,
                              float* h_in) {
  const int64_t count = num_heads * per_head;
  const int64_t stride = num_heads + count;  // one rank's summary
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t head = i / per_head;
    float h = 0.0f;
    for (int r = 0; r < ranks_before; ++r) {
      const float* summary = summaries + r * stride;
      h = expf(summary[head]) * h + summary[num_heads + i];
    }
    h_in[i] = h;
  }
}

}  // namespace

cudaError_t ComposeInitialState(const float* summaries, int ranks_before, int64_t num_heads, int64_t per_head,
                                float* h_in, cudaStream_t stream) {
  const int64_t count = num_heads * per_head;
  if (count == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  const int64_t blocks = (count + kThreads - 1) / kThreads;
  ComposeKernel<<<static_cast<unsigned>(blocks < 65535 * 8 ? blocks : 65535 * 8), kThreads, 0, stream>>>(
      summaries, ranks_before, num_heads, per_head, h_in);
  return cudaGetLastError();
}

}  // namespace tessera::cuda_engine
