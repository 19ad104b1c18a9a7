// Elementwise MLP activations, one thread per element (grid-stride), so out may
// alias an input read at the same index, as on the CPU. The entry points run
// the shared checks (kernels/activation.cc) and launch.
#include "kernels/activation.h"

#include "common/status_macros.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/host_util.h"

namespace tessera::cuda {
namespace {

using cuda_host::FromCuda;
using cuda_launch::DeviceSilu;
using cuda_launch::GridFor;

__global__ void SiluMulKernel(SiluMulParams p, int64_t gate_stride, int64_t up_stride) {
  const int64_t count = p.rows * p.width;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / p.width;
    const int64_t c = i - r * p.width;
    p.out[i] = DeviceSilu(p.gate[r * gate_stride + c]) * p.up[r * up_stride + c];
  }
}

__global__ void ReluSquaredKernel(ReluSquaredParams p) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < p.count;
       i += int64_t{gridDim.x} * blockDim.x) {
    const float positive = p.x[i] > 0.0f ? p.x[i] : 0.0f;
    p.out[i] = positive * positive;
  }
}

cudaError_t LaunchSiluMul(const SiluMulParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  SiluMulKernel<<<GridFor(p.rows * p.width, kThreads), kThreads, 0, stream>>>(
      p, p.gate_stride == 0 ? p.width : p.gate_stride, p.up_stride == 0 ? p.width : p.up_stride);
  return cudaGetLastError();
}

cudaError_t LaunchReluSquared(const ReluSquaredParams& p, cudaStream_t stream) {
  if (p.count == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  ReluSquaredKernel<<<GridFor(p.count, kThreads), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

absl::Status SiluMul(const SiluMulParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckSiluMulParams(p));
  return FromCuda("SiluMul", LaunchSiluMul(p, stream));
}

absl::Status ReluSquared(const ReluSquaredParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckReluSquaredParams(p));
  return FromCuda("ReluSquared", LaunchReluSquared(p, stream));
}

}  // namespace tessera::cuda
