// The kernels of RmsNorm and GatedRmsNorm (kernels/cuda/rms_norm.cu,
// gated_rms_norm.cu): RMSNorm of each group of `group` consecutive fp32 values
// of a row, gated first (g = y · silu(z)) when a gate type is given, one block
// per (row, group). Bandwidth-bound, so each input is read once: when the rows
// allow 16-byte vectors the group lives in registers (8 elements per slot,
// kSlots slots per thread, at most 256 threads), summed, then scaled and
// stored; other layouts take a plain two-pass kernel. Either way a thread
// writes only elements it read itself, after the block's sum, so out may
// overwrite y or z in place.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "kernels/cuda/cuda_util.cuh"

namespace tessera::cuda_norm {

// Strides resolved (never 0), in elements of their own array.
struct NormRows {
  int64_t rows = 0;   // R
  int64_t width = 0;  // W
  int64_t group = 0;  // divides W
  float eps = 0.0f;
  const float* y = nullptr;  // (R, W) fp32, row stride y_stride
  int64_t y_stride = 0;
  const void* z = nullptr;  // (R, W) gate of the Gate type, row stride z_stride; unused without one
  int64_t z_stride = 0;
  const float* weight = nullptr;  // (W)
  void* out = nullptr;            // (R, W) of the Out type, row stride out_stride
  int64_t out_stride = 0;
};

// The value normalized at (row, c): y, or y · silu(z).
template <typename Gate>
__device__ __forceinline__ float GatedValue(const NormRows& p, int64_t row, int64_t c) {
  const float y = p.y[row * p.y_stride + c];
  if constexpr (std::is_void_v<Gate>) {
    return y;
  } else {
    return y * cuda_launch::DeviceSilu(cuda_launch::ToFloat(static_cast<const Gate*>(p.z)[row * p.z_stride + c]));
  }
}

// Any layout: every thread strides over the group twice.
template <typename Gate, typename Out>
__global__ void NormRowsKernel(NormRows p) {
  cuda_launch::GridDependencyWait();  // first: see cuda_util.cuh
  __shared__ float scratch[32];
  const int64_t groups = p.width / p.group;
  const int64_t row = blockIdx.x / groups;
  const int64_t c0 = (blockIdx.x - row * groups) * p.group;
  float sum_squares = 0.0f;
  for (int64_t c = c0 + threadIdx.x; c < c0 + p.group; c += blockDim.x) {
    const float g = GatedValue<Gate>(p, row, c);
    sum_squares += g * g;
  }
  sum_squares = cuda_launch::BlockSum(sum_squares, scratch);
  const float inv_rms = 1.0f / sqrtf(sum_squares / static_cast<float>(p.group) + p.eps);
  Out* out = static_cast<Out*>(p.out) + row * p.out_stride;  // (W)
  for (int64_t c = c0 + threadIdx.x; c < c0 + p.group; c += blockDim.x) {
    out[c] = cuda_launch::FromFloat<Out>(p.weight[c] * (GatedValue<Gate>(p, row, c) * inv_rms));
  }
}

// 16-byte rows: slot s of thread i holds elements [8·(s·blockDim + i), +8) of the group.
template <typename Gate, typename Out, int kSlots>
__global__ void __launch_bounds__(256) NormRowsRegisterKernel(NormRows p) {
  __shared__ float scratch[32];
  const int64_t groups = p.width / p.group;
  const int64_t row = blockIdx.x / groups;
  const int64_t c0 = (blockIdx.x - row * groups) * p.group;
#pragma unroll
  for (int s = 0; s < kSlots; ++s) {  // the weights on their way while the kernel before finishes
    const int64_t c = (int64_t{s} * blockDim.x + threadIdx.x) * 8;
    if (c < p.group) cuda_launch::PrefetchL2(p.weight + c0 + c);
  }
  cuda_launch::GridDependencyWait();  // before any load: see cuda_util.cuh
  const float* y = p.y + row * p.y_stride + c0;  // (group)
  float v[kSlots][8];
  float sum_squares = 0.0f;
#pragma unroll
  for (int s = 0; s < kSlots; ++s) {
    const int64_t c = (int64_t{s} * blockDim.x + threadIdx.x) * 8;
    if (c >= p.group) continue;
    cuda_launch::Load8(y + c, v[s]);
    if constexpr (!std::is_void_v<Gate>) {
      float z[8];
      cuda_launch::Load8(static_cast<const Gate*>(p.z) + row * p.z_stride + c0 + c, z);
#pragma unroll
      for (int i = 0; i < 8; ++i) v[s][i] *= cuda_launch::DeviceSilu(z[i]);
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) sum_squares += v[s][i] * v[s][i];
  }
  sum_squares = cuda_launch::BlockSum(sum_squares, scratch);
  const float inv_rms = 1.0f / sqrtf(sum_squares / static_cast<float>(p.group) + p.eps);
  Out* out = static_cast<Out*>(p.out) + row * p.out_stride + c0;  // (group)
#pragma unroll
  for (int s = 0; s < kSlots; ++s) {
    const int64_t c = (int64_t{s} * blockDim.x + threadIdx.x) * 8;
    if (c >= p.group) continue;
    float w[8], o[8];
    cuda_launch::Load8(p.weight + c0 + c, w);
#pragma unroll
    for (int i = 0; i < 8; ++i) o[i] = w[i] * (v[s][i] * inv_rms);
    cuda_launch::Store8(out + c, o);
  }
}

template <typename Gate, typename Out>
bool FitsRegisterKernel(const NormRows& p) {
  using cuda_launch::RowsOfVec8;
  if (p.group % 8 != 0 || p.group / 8 > 8 * 256) return false;
  if (!RowsOfVec8<float>(p.y, p.y_stride) || !RowsOfVec8<float>(p.weight, 0) || !RowsOfVec8<Out>(p.out, p.out_stride)) {
    return false;
  }
  if constexpr (!std::is_void_v<Gate>) {
    if (!RowsOfVec8<Gate>(p.z, p.z_stride)) return false;
  }
  return true;
}

template <typename Gate, typename Out, int kSlots>
cudaError_t LaunchRegisterKernel(const NormRows& p, unsigned blocks, cudaStream_t stream) {
  const int64_t vectors = p.group / 8;
  const int64_t threads = cuda_launch::CeilDiv(cuda_launch::CeilDiv(vectors, kSlots), 32) * 32;
  return cuda_launch::LaunchAfterPrior(NormRowsRegisterKernel<Gate, Out, kSlots>, blocks,
                                       static_cast<unsigned>(threads), 0, stream, p);
}

// Gate void: plain RMSNorm of y.
template <typename Gate, typename Out>
cudaError_t LaunchNormRows(const NormRows& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  const int64_t blocks = p.rows * (p.width / p.group);
  if (blocks > INT32_MAX) return cudaErrorInvalidValue;
  const unsigned grid = static_cast<unsigned>(blocks);
  if (FitsRegisterKernel<Gate, Out>(p)) {
    const int64_t vectors = p.group / 8;  // at most 256 threads a block: the fewest slots that allow it
    if (vectors <= 256) return LaunchRegisterKernel<Gate, Out, 1>(p, grid, stream);
    if (vectors <= 512) return LaunchRegisterKernel<Gate, Out, 2>(p, grid, stream);
    if (vectors <= 1024) return LaunchRegisterKernel<Gate, Out, 4>(p, grid, stream);
    return LaunchRegisterKernel<Gate, Out, 8>(p, grid, stream);
  }
  const int threads = p.group >= 256 ? 256 : static_cast<int>(cuda_launch::CeilDiv(p.group, 32) * 32);
  return cuda_launch::LaunchAfterPrior(NormRowsKernel<Gate, Out>, grid, threads, 0, stream, p);
}

}  // namespace tessera::cuda_norm
