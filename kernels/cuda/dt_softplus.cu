// Mamba-2 step sizes, one thread per (token, head): softplus with torch's
// threshold, then the time_step_limit clamp in std::clamp's order. The entry
// point runs the shared checks (kernels/dt_softplus.cc) and launches the
// instantiation for dt_raw's type.
#include "kernels/dt_softplus.h"

#include "common/status_macros.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/host_util.h"

namespace tessera::cuda {
namespace {

using cuda_host::FromCuda;
using cuda_launch::DeviceSoftplus;
using cuda_launch::GridFor;
using cuda_launch::ToFloat;
using cuda_launch::WithDeviceType;

template <typename In>
__global__ void DtSoftplusKernel(DtSoftplusParams p, int64_t dt_stride) {
  const In* raw = static_cast<const In*>(p.dt_raw);  // (rows, H), row stride dt_stride
  const int64_t count = p.rows * p.num_heads;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t t = i / p.num_heads;
    const int64_t h = i - t * p.num_heads;
    const float v = DeviceSoftplus(ToFloat(raw[t * dt_stride + h]) + p.dt_bias[h]);
    p.out[i] = v < p.dt_min ? p.dt_min : (p.dt_max < v ? p.dt_max : v);
  }
}

cudaError_t LaunchDtSoftplus(const DtSoftplusParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  return WithDeviceType(p.dt_raw_type, [&](auto raw) {
    DtSoftplusKernel<decltype(raw)><<<GridFor(p.rows * p.num_heads, kThreads), kThreads, 0, stream>>>(
        p, p.dt_stride == 0 ? p.num_heads : p.dt_stride);
    return cudaGetLastError();
  });
}

}  // namespace

absl::Status DtSoftplus(const DtSoftplusParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckDtSoftplusParams(p));
  return FromCuda("DtSoftplus", LaunchDtSoftplus(p, stream));
}

}  // namespace tessera::cuda
