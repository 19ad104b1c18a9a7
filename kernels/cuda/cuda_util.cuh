// Device helpers shared by the CUDA kernels: the scalar functions the CPU
// reference applies (same formulas, full-precision expf/logf, no fast math), a
// block-wide sum, and launch-size arithmetic.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace tessera::cuda_launch {

__device__ __forceinline__ float DeviceSilu(float x) { return x / (1.0f + expf(-x)); }

// torch.nn.functional.softplus with its default threshold of 20.
__device__ __forceinline__ float DeviceSoftplus(float v) {
  return v > 20.0f ? v : log1pf(expf(v));
}

__device__ __forceinline__ float WarpSum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum of `v` over the block (blockDim.x a multiple of 32, <= 1024); every
// thread gets the result. `scratch` holds 32 floats of shared memory.
__device__ __forceinline__ float BlockSum(float v, float* scratch) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  v = WarpSum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  v = lane < warps ? scratch[lane] : 0.0f;
  return WarpSum(v);
}

inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Blocks for a grid-stride loop over `count` elements.
inline unsigned GridFor(int64_t count, int threads) {
  const int64_t blocks = CeilDiv(count, threads);
  return static_cast<unsigned>(blocks < 65535 * 16 ? (blocks < 1 ? 1 : blocks) : 65535 * 16);
}

}  // namespace tessera::cuda_launch
