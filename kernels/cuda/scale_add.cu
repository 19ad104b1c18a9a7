// y = alpha · x + beta · y, one thread per element (grid-stride). The entry
// point runs the shared checks (kernels/scale_add.cc) and launches.
#include "kernels/scale_add.h"

#include "common/status_macros.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/host_util.h"

namespace tessera::cuda {
namespace {

using cuda_host::FromCuda;
using cuda_launch::GridFor;

__global__ void ScaleAddKernel(ScaleAddParams p, int64_t x_stride, int64_t y_stride) {
  const int64_t count = p.rows * p.width;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / p.width;
    const int64_t c = i - r * p.width;
    float* y = p.y + r * y_stride + c;
    *y = p.x == nullptr ? p.beta * *y : p.beta * *y + p.alpha * p.x[r * x_stride + c];
  }
}

}  // namespace

absl::Status ScaleAdd(const ScaleAddParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckScaleAddParams(p));
  if (p.rows == 0) return absl::OkStatus();
  constexpr int kThreads = 256;
  ScaleAddKernel<<<GridFor(p.rows * p.width, kThreads), kThreads, 0, stream>>>(
      p, p.x_stride == 0 ? p.width : p.x_stride, p.y_stride == 0 ? p.width : p.y_stride);
  return FromCuda("ScaleAdd", cudaGetLastError());
}

}  // namespace tessera::cuda
