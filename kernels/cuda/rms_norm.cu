// RMSNorm, one block per row: a block-wide sum of squares, then each thread
// writes the elements it read, so out may alias x (x_stride == width). The
// entry point runs the shared checks (kernels/rms_norm.cc) and launches.
#include "kernels/rms_norm.h"

#include "common/status_macros.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/host_util.h"

namespace tessera::cuda {
namespace {

using cuda_host::FromCuda;
using cuda_launch::BlockSum;

constexpr int kThreads = 256;

__global__ void RmsNormKernel(RmsNormParams p, int64_t x_stride) {
  __shared__ float scratch[32];
  const float* x = p.x + blockIdx.x * x_stride;  // (width)
  float* out = p.out + blockIdx.x * p.width;     // (width)
  float sum_squares = 0.0f;
  for (int64_t c = threadIdx.x; c < p.width; c += blockDim.x) sum_squares += x[c] * x[c];
  sum_squares = BlockSum(sum_squares, scratch);
  const float inv_rms = 1.0f / sqrtf(sum_squares / static_cast<float>(p.width) + p.eps);
  for (int64_t c = threadIdx.x; c < p.width; c += blockDim.x) {
    out[c] = p.weight[c] * (x[c] * inv_rms);
  }
}

cudaError_t LaunchRmsNorm(const RmsNormParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  if (p.rows > INT32_MAX) return cudaErrorInvalidValue;
  RmsNormKernel<<<static_cast<unsigned>(p.rows), kThreads, 0, stream>>>(
      p, p.x_stride == 0 ? p.width : p.x_stride);
  return cudaGetLastError();
}

}  // namespace

absl::Status RmsNorm(const RmsNormParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckRmsNormParams(p));
  return FromCuda("RmsNorm", LaunchRmsNorm(p, stream));
}

}  // namespace tessera::cuda
