// The bias step of Linear: y = bias (or y += bias when accumulating) laid into
// y before one cuBLAS GEMM with beta = 1 finishes the job, as the CPU does.
// The GEMM itself is host code (linear.cc).
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/launch.h"

namespace tessera::cuda_launch {
namespace {

__global__ void LinearBiasKernel(LinearParams p, int64_t y_stride) {
  const int64_t count = p.rows * p.out_features;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / p.out_features;
    const int64_t n = i - r * p.out_features;
    float* y = p.y + r * y_stride + n;
    *y = p.accumulate ? *y + p.bias[n] : p.bias[n];
  }
}

}  // namespace

cudaError_t LinearBias(const LinearParams& p, cudaStream_t stream) {
  if (p.rows == 0 || p.bias == nullptr) return cudaSuccess;
  constexpr int kThreads = 256;
  LinearBiasKernel<<<GridFor(p.rows * p.out_features, kThreads), kThreads, 0, stream>>>(
      p, p.y_stride == 0 ? p.out_features : p.y_stride);
  return cudaGetLastError();
}

}  // namespace tessera::cuda_launch
