// Causal depthwise conv1d + SiLU over xpad = [state_in (K-1 rows) ; x (L rows)].
// Two launches on one stream: the convolution (one thread per output element),
// then the state shift (one thread per channel walking the K-1 state rows in
// ascending order, reading row L+r of xpad before writing row r), so state_out
// may alias state_in exactly as on the CPU. The entry point runs the shared
// checks (kernels/causal_conv1d.cc) and launches.
#include "kernels/causal_conv1d.h"

#include "common/status_macros.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/host_util.h"

namespace tessera::cuda {
namespace {

using cuda_host::FromCuda;
using cuda_launch::CeilDiv;
using cuda_launch::DeviceSilu;
using cuda_launch::GridFor;

// Element c of row `row` of xpad (zero where state_in is null).
__device__ __forceinline__ float PaddedValue(const CausalConv1dParams& p, int64_t x_stride,
                                             int64_t row, int64_t c) {
  const int64_t state_rows = p.kernel_width - 1;
  if (row >= state_rows) return p.x[(row - state_rows) * x_stride + c];
  return p.state_in == nullptr ? 0.0f : p.state_in[row * p.channels + c];
}

__global__ void CausalConv1dKernel(CausalConv1dParams p, int64_t x_stride) {
  const int64_t count = p.seq_len * p.channels;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t t = i / p.channels;
    const int64_t c = i - t * p.channels;
    float acc = p.bias == nullptr ? 0.0f : p.bias[c];
    for (int64_t k = 0; k < p.kernel_width; ++k) {
      acc += p.weight[c * p.kernel_width + k] * PaddedValue(p, x_stride, t + k, c);
    }
    p.out[i] = DeviceSilu(acc);
  }
}

__global__ void CausalConv1dStateKernel(CausalConv1dParams p, int64_t x_stride) {
  const int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (c >= p.channels) return;
  for (int64_t r = 0; r < p.kernel_width - 1; ++r) {
    p.state_out[r * p.channels + c] = PaddedValue(p, x_stride, p.seq_len + r, c);
  }
}

cudaError_t LaunchCausalConv1d(const CausalConv1dParams& p, cudaStream_t stream) {
  constexpr int kThreads = 256;
  const int64_t x_stride = p.x_stride == 0 ? p.channels : p.x_stride;
  if (p.seq_len > 0) {
    CausalConv1dKernel<<<GridFor(p.seq_len * p.channels, kThreads), kThreads, 0, stream>>>(
        p, x_stride);
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  }
  if (p.state_out != nullptr && p.kernel_width > 1) {
    const int64_t blocks = CeilDiv(p.channels, kThreads);
    if (blocks > INT32_MAX) return cudaErrorInvalidValue;
    CausalConv1dStateKernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p, x_stride);
    return cudaGetLastError();
  }
  return cudaSuccess;
}

}  // namespace

absl::Status CausalConv1d(const CausalConv1dParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckCausalConv1dParams(p));
  return FromCuda("CausalConv1d", LaunchCausalConv1d(p, stream));
}

}  // namespace tessera::cuda
