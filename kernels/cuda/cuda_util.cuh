// Device helpers shared by the CUDA kernels: the scalar functions the CPU
// reference applies (same formulas, full-precision expf/logf, no fast math), a
// block-wide sum, the widening of a stored operand (fp32 or bf16) to fp32, and
// launch-size arithmetic (flat grid-stride loops and row-wise 2-D grids).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace tessera::cuda_launch {

__device__ __forceinline__ float DeviceSilu(float x) { return x / (1.0f + expf(-x)); }

// torch.nn.functional.softplus with its default threshold of 20.
__device__ __forceinline__ float DeviceSoftplus(float v) {
  return v > 20.0f ? v : log1pf(expf(v));
}

// A stored operand as the fp32 every kernel computes in (exact for bf16).
__device__ __forceinline__ float ToFloat(float v) { return v; }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 v) { return __bfloat162float(v); }

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

// A grid for a row-wise loop over (rows, width): blockIdx.y strides over rows,
// blockIdx.x over column blocks of `threads`, each dimension capped.
inline dim3 RowGrid(int64_t rows, int64_t width, int threads) {
  const int64_t x = CeilDiv(width, threads);
  return dim3(static_cast<unsigned>(x < 1 ? 1 : (x < 1024 ? x : 1024)),
              static_cast<unsigned>(rows < 1 ? 1 : (rows < 65535 ? rows : 65535)));
}

// Blocks for a grid-stride loop over `count` elements.
inline unsigned GridFor(int64_t count, int threads) {
  const int64_t blocks = CeilDiv(count, threads);
  return static_cast<unsigned>(blocks < 65535 * 16 ? (blocks < 1 ? 1 : blocks) : 65535 * 16);
}

}  // namespace tessera::cuda_launch
