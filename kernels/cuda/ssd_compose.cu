// The initial-state fold of context-parallel SSD, one thread per state element
// (grid-stride), folding the earlier shards in rank order: a handful of ranks,
// so the fold is sequential per element, in fp32 like the CPU. Each thread
// reads its element of initial_state before writing the same element of h_in,
// so the two may alias. The entry point runs the shared checks
// (kernels/ssd_compose.cc) and launches.
#include "kernels/ssd_compose.h"

#include "common/status_macros.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/host_util.h"

namespace tessera::cuda {
namespace {

using cuda_host::FromCuda;
using cuda_launch::GridFor;

__global__ void SsdComposeKernel(SsdComposeParams p) {
  const int64_t count = p.num_heads * p.per_head;
  const int64_t stride = p.num_heads + count;  // one shard's summary
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t head = i / p.per_head;
    float h = p.initial_state == nullptr ? 0.0f : p.initial_state[i];
    for (int64_t r = 0; r < p.ranks_before; ++r) {
      const float* summary = p.summaries + r * stride;  // [log Λ (H) | S (H, P, N)]
      h = expf(summary[head]) * h + summary[p.num_heads + i];
    }
    p.h_in[i] = h;
  }
}

cudaError_t LaunchSsdCompose(const SsdComposeParams& p, cudaStream_t stream) {
  constexpr int kThreads = 256;
  SsdComposeKernel<<<GridFor(p.num_heads * p.per_head, kThreads), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

absl::Status SsdComposeInitialState(const SsdComposeParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckSsdComposeParams(p));
  return FromCuda("SsdComposeInitialState", LaunchSsdCompose(p, stream));
}

}  // namespace tessera::cuda
