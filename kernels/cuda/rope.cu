// Rotary embedding in place, one thread per (token, head, i < rotary_dim/2):
// each thread owns the pair (i, i + r/2), so no two threads touch one element.
// inv_freq comes from the host (same std::pow as the CPU reference), and the
// phase is position · inv_freq in fp32, as transformers forms it. The entry
// point runs the shared checks (kernels/rope.cc), uploads inv_freq to
// stream-ordered scratch and launches.
#include "kernels/rope.h"

#include <cmath>
#include <vector>

#include "common/status_macros.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/host_util.h"
#include "kernels/cuda/rope_rotate.cuh"

namespace tessera::cuda {
namespace {

using cuda_host::FromCuda;
using cuda_launch::GridFor;
using cuda_launch::RotatePair;
using cuda_launch::WithDeviceType;

template <typename T>
__global__ void RopeKernel(RopeParams p, const float* inv_freq, int64_t x_stride) {
  const int64_t half = p.rotary_dim / 2;
  const int64_t count = p.num_tokens * p.num_heads * half;
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < count;
       idx += int64_t{gridDim.x} * blockDim.x) {
    const int64_t i = idx % half;
    const int64_t th = idx / half;
    const int64_t h = th % p.num_heads;
    const int64_t t = th / p.num_heads;
    RotatePair(static_cast<T*>(p.x) + t * x_stride + h * p.head_dim, i, half,
               static_cast<float>(p.position0 + t), inv_freq[i]);
  }
}

// inv_freq: (rotary_dim / 2) device floats.
cudaError_t LaunchRope(const RopeParams& p, const float* inv_freq, cudaStream_t stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  return WithDeviceType(p.type, [&](auto t) {
    RopeKernel<decltype(t)><<<GridFor(p.num_tokens * p.num_heads * (p.rotary_dim / 2), kThreads), kThreads, 0,
                              stream>>>(p, inv_freq, p.x_stride == 0 ? p.num_heads * p.head_dim : p.x_stride);
    return cudaGetLastError();
  });
}

}  // namespace

absl::Status Rope(const RopeParams& p, CudaStream stream) {
  constexpr absl::string_view kOp = "Rope";
  RETURN_IF_ERROR(CheckRopeParams(p));
  if (p.num_tokens == 0) return absl::OkStatus();
  const std::vector<float> inv_freq = RopeInverseFrequencies(p.theta, p.rotary_dim);
  float* device_inv_freq = nullptr;  // (rotary_dim / 2)
  RETURN_IF_ERROR(FromCuda(kOp, cudaMallocAsync(reinterpret_cast<void**>(&device_inv_freq),
                                                sizeof(float) * inv_freq.size(), stream)));
  // A pageable host-to-device copy returns once the source is staged, so the
  // host vector may go out of scope after it.
  const absl::Status copied = FromCuda(
      kOp, cudaMemcpyAsync(device_inv_freq, inv_freq.data(), sizeof(float) * inv_freq.size(),
                           cudaMemcpyHostToDevice, stream));
  const absl::Status launched =
      copied.ok() ? FromCuda(kOp, LaunchRope(p, device_inv_freq, stream)) : copied;
  const absl::Status freed = FromCuda(kOp, cudaFreeAsync(device_inv_freq, stream));
  return launched.ok() ? freed : launched;
}

}  // namespace tessera::cuda
