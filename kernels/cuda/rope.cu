// Rotary embedding in place, one thread per (token, head, i < rotary_dim/2):
// each thread owns the pair (i, i + r/2), so no two threads touch one element.
// inv_freq comes from the host (same std::pow as the CPU reference), and the
// phase is position · inv_freq in fp32, as transformers forms it.
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/launch.h"

namespace tessera::cuda_launch {
namespace {

__global__ void RopeKernel(RopeParams p, const float* inv_freq, int64_t x_stride) {
  const int64_t half = p.rotary_dim / 2;
  const int64_t count = p.num_tokens * p.num_heads * half;
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < count;
       idx += int64_t{gridDim.x} * blockDim.x) {
    const int64_t i = idx % half;
    const int64_t th = idx / half;
    const int64_t h = th % p.num_heads;
    const int64_t t = th / p.num_heads;
    const float position = static_cast<float>(p.position0 + t);
    const float phi = __fmul_rn(position, inv_freq[i]);
    const float cos_phi = cosf(phi);
    const float sin_phi = sinf(phi);
    float* x = p.x + t * x_stride + h * p.head_dim;  // (head_dim)
    const float first = x[i];
    const float second = x[i + half];
    x[i] = first * cos_phi - second * sin_phi;
    x[i + half] = second * cos_phi + first * sin_phi;
  }
}

}  // namespace

cudaError_t Rope(const RopeParams& p, const float* inv_freq, cudaStream_t stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  RopeKernel<<<GridFor(p.num_tokens * p.num_heads * (p.rotary_dim / 2), kThreads), kThreads, 0,
               stream>>>(p, inv_freq, p.x_stride == 0 ? p.num_heads * p.head_dim : p.x_stride);
  return cudaGetLastError();
}

}  // namespace tessera::cuda_launch
