// One-token Mamba-2 state update, one warp per state row (head h, channel p):
// lanes stride over N, so the state row is read and written coalesced, and the
// readout state·C is a warp sum. Every lane reads x before lane 0 writes y, so
// y may alias x as on the CPU. The entry point runs the shared checks
// (kernels/ssd_step.cc) and launches.
#include "kernels/ssd_step.h"

#include "common/status_macros.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/host_util.h"

namespace tessera::cuda {
namespace {

using cuda_host::FromCuda;
using cuda_launch::CeilDiv;
using cuda_launch::WarpSum;

constexpr int kWarpsPerBlock = 8;

__global__ void SsdStepKernel(SsdStepParams p) {
  const int64_t row = blockIdx.x * int64_t{kWarpsPerBlock} + (threadIdx.x >> 5);  // h·P + i
  const int lane = threadIdx.x & 31;
  if (row >= p.num_heads * p.head_dim) return;
  const int64_t h = row / p.head_dim;
  const int64_t g = h / (p.num_heads / p.num_groups);
  const int64_t n = p.state_size;
  const float* b = p.B + g * n;  // (N)
  const float* c = p.C + g * n;  // (N)
  const float dt = p.dt[h];
  const float decay = expf(dt * p.A[h]);
  const float x = p.x[row];
  const float dt_x = dt * x;
  float* state_row = p.state + row * n;  // (N)
  float readout = 0.0f;
  for (int64_t i = lane; i < n; i += 32) {
    const float s = decay * state_row[i] + dt_x * b[i];
    state_row[i] = s;
    readout += s * c[i];
  }
  readout = WarpSum(readout);
  if (lane == 0) p.y[row] = readout + (p.D == nullptr ? 0.0f : p.D[h]) * x;
}

cudaError_t LaunchSsdStep(const SsdStepParams& p, cudaStream_t stream) {
  const int64_t blocks = CeilDiv(p.num_heads * p.head_dim, kWarpsPerBlock);
  if (blocks > INT32_MAX) return cudaErrorInvalidValue;
  SsdStepKernel<<<static_cast<unsigned>(blocks), kWarpsPerBlock * 32, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

absl::Status SsdStep(const SsdStepParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckSsdStepParams(p));
  return FromCuda("SsdStep", LaunchSsdStep(p, stream));
}

}  // namespace tessera::cuda
