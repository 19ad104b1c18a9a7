// Elementwise MLP activations, bandwidth-bound: 16-byte vectors of 8 elements
// where the rows allow them (a scalar loop otherwise, and for a ragged tail),
// each element read and written by the same thread, so out may alias an input
// read at the same index, as on the CPU. SiluMul walks rows (blockIdx.y) and
// columns (blockIdx.x), so no per-element division. The entry points run the
// shared checks (kernels/activation.cc) and launch the instantiation for the
// op's type.
#include "kernels/activation.h"

#include "common/status_macros.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/host_util.h"
#include "kernels/params_check_util.h"

namespace tessera::cuda {
namespace {

using cuda_host::FromCuda;
using cuda_launch::DeviceSilu;
using cuda_launch::FromFloat;
using cuda_launch::GridFor;
using cuda_launch::Load8;
using cuda_launch::RowGrid;
using cuda_launch::RowsOfVec8;
using cuda_launch::Store8;
using cuda_launch::ToFloat;
using cuda_launch::WithDeviceType;
using params_check::StrideOr;

constexpr int kThreads = 256;

__device__ __forceinline__ float ReluSquare(float v) {
  const float positive = v > 0.0f ? v : 0.0f;
  return positive * positive;
}

// Strides resolved from 0.
struct SiluMulRows {
  SiluMulParams p;
  int64_t gate_stride, up_stride, out_stride;
};

// kVec 8: columns in vectors of 8 (width % 8 == 0, 16-byte rows); 1: scalars.
template <typename T, int kVec>
__global__ void SiluMulKernel(SiluMulRows s) {
  const SiluMulParams& p = s.p;
  for (int64_t r = blockIdx.y; r < p.rows; r += gridDim.y) {
    const T* gate = static_cast<const T*>(p.gate) + r * s.gate_stride;  // (width)
    const T* up = static_cast<const T*>(p.up) + r * s.up_stride;        // (width)
    T* out = static_cast<T*>(p.out) + r * s.out_stride;                 // (width)
    for (int64_t c = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) * kVec; c < p.width;
         c += int64_t{gridDim.x} * blockDim.x * kVec) {
      if constexpr (kVec == 8) {
        float g[8], u[8];
        Load8(gate + c, g);
        Load8(up + c, u);
#pragma unroll
        for (int i = 0; i < 8; ++i) g[i] = DeviceSilu(g[i]) * u[i];
        Store8(out + c, g);
      } else {
        out[c] = FromFloat<T>(DeviceSilu(ToFloat(gate[c])) * ToFloat(up[c]));
      }
    }
  }
}

// Elements [0, 8·vectors) in vectors of 8 (16-byte aligned), the rest one by one.
template <typename T>
__global__ void ReluSquaredKernel(ReluSquaredParams p, int64_t vectors) {
  cuda_launch::GridDependencyWait();  // first: see cuda_util.cuh
  const T* x = static_cast<const T*>(p.x);  // (count)
  T* out = static_cast<T*>(p.out);          // (count)
  const int64_t first = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  const int64_t step = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = first; i < vectors; i += step) {
    float v[8];
    Load8(x + 8 * i, v);
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] = ReluSquare(v[k]);
    Store8(out + 8 * i, v);
  }
  for (int64_t i = 8 * vectors + first; i < p.count; i += step) out[i] = FromFloat<T>(ReluSquare(ToFloat(x[i])));
}

template <typename T>
cudaError_t LaunchSiluMul(const SiluMulParams& p, cudaStream_t stream) {
  const SiluMulRows rows{p, StrideOr(p.gate_stride, p.width), StrideOr(p.up_stride, p.width),
                         StrideOr(p.out_stride, p.width)};
  if (p.width % 8 == 0 && RowsOfVec8<T>(p.gate, rows.gate_stride) && RowsOfVec8<T>(p.up, rows.up_stride) &&
      RowsOfVec8<T>(p.out, rows.out_stride)) {
    SiluMulKernel<T, 8><<<RowGrid(p.rows, p.width / 8, kThreads), kThreads, 0, stream>>>(rows);
  } else {
    SiluMulKernel<T, 1><<<RowGrid(p.rows, p.width, kThreads), kThreads, 0, stream>>>(rows);
  }
  return cudaGetLastError();
}

template <typename T>
cudaError_t LaunchReluSquared(const ReluSquaredParams& p, cudaStream_t stream) {
  const int64_t vectors = RowsOfVec8<T>(p.x, 0) && RowsOfVec8<T>(p.out, 0) ? p.count / 8 : 0;
  const int64_t threads_wanted = vectors > p.count - 8 * vectors ? vectors : p.count - 8 * vectors;
  return cuda_launch::LaunchAfterPrior(ReluSquaredKernel<T>, GridFor(threads_wanted, kThreads), kThreads, 0, stream,
                                       p, vectors);
}

}  // namespace

absl::Status SiluMul(const SiluMulParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckSiluMulParams(p));
  if (p.rows == 0) return absl::OkStatus();
  return FromCuda("SiluMul", WithDeviceType(p.type, [&](auto t) { return LaunchSiluMul<decltype(t)>(p, stream); }));
}

absl::Status ReluSquared(const ReluSquaredParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckReluSquaredParams(p));
  if (p.count == 0) return absl::OkStatus();
  return FromCuda("ReluSquared",
                  WithDeviceType(p.type, [&](auto t) { return LaunchReluSquared<decltype(t)>(p, stream); }));
}

}  // namespace tessera::cuda
