// Gated RMSNorm, one block per (row, group): g = y · silu(z) summed in squares
// over the group, then each thread rewrites the elements it read, so out may
// alias y (y_stride == width). The entry point runs the shared checks
// (kernels/gated_rms_norm.cc) and launches.
#include "kernels/gated_rms_norm.h"

#include "common/status_macros.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/host_util.h"

namespace tessera::cuda {
namespace {

using cuda_host::FromCuda;
using cuda_launch::BlockSum;
using cuda_launch::CeilDiv;
using cuda_launch::DeviceSilu;

__global__ void GatedRmsNormKernel(GatedRmsNormParams p, int64_t y_stride, int64_t z_stride,
                                   int64_t groups) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x / groups;
  const int64_t c0 = (blockIdx.x - row * groups) * p.group_size;
  const float* y = p.y + row * y_stride + c0;  // (group_size)
  const float* z = p.z + row * z_stride + c0;  // (group_size)
  float* out = p.out + row * p.width + c0;     // (group_size)
  float sum_squares = 0.0f;
  for (int64_t c = threadIdx.x; c < p.group_size; c += blockDim.x) {
    const float g = y[c] * DeviceSilu(z[c]);
    sum_squares += g * g;
  }
  sum_squares = BlockSum(sum_squares, scratch);
  const float inv_rms = 1.0f / sqrtf(sum_squares / static_cast<float>(p.group_size) + p.eps);
  for (int64_t c = threadIdx.x; c < p.group_size; c += blockDim.x) {
    const float g = y[c] * DeviceSilu(z[c]);
    out[c] = p.weight[c0 + c] * (g * inv_rms);
  }
}

cudaError_t LaunchGatedRmsNorm(const GatedRmsNormParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  const int64_t groups = p.width / p.group_size;
  const int64_t blocks = p.rows * groups;
  if (blocks > INT32_MAX) return cudaErrorInvalidValue;
  const int threads = p.group_size >= 256 ? 256 : static_cast<int>(CeilDiv(p.group_size, 32) * 32);
  GatedRmsNormKernel<<<static_cast<unsigned>(blocks), threads, 0, stream>>>(
      p, p.y_stride == 0 ? p.width : p.y_stride, p.z_stride == 0 ? p.width : p.z_stride, groups);
  return cudaGetLastError();
}

}  // namespace

absl::Status GatedRmsNorm(const GatedRmsNormParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckGatedRmsNormParams(p));
  return FromCuda("GatedRmsNorm", LaunchGatedRmsNorm(p, stream));
}

}  // namespace tessera::cuda
