// The one small matrix product the SSD kernels are built from: a 64×64 fp32
// output tile accumulated from 16-deep slices staged in shared memory, on 256
// threads holding 4×4 outputs each (rows ty + 16i, columns tx + 16j, so the
// shared-memory reads are conflict-free). Every SSD step is such a product
// with a decay folded into one operand while it is staged; that is the seam
// where these CUDA-core products can later move to tensor cores (wgmma).
#pragma once

#include <cuda_runtime.h>

namespace tessera::cuda_launch {

struct TileMma {
  static constexpr int kTile = 64;     // output rows and columns per block
  static constexpr int kDepth = 16;    // reduction slice staged per step
  static constexpr int kThreads = 256;
  static constexpr int kPitch = kTile + 4;  // shared row pitch (floats)
  static constexpr int kPerThread = kTile / 16;  // 4

  // a: (kDepth, kPitch) holding A[m][k] at a[k][m]; b: (kDepth, kPitch) holding B[k][n].
  __device__ __forceinline__ static void Accumulate(const float (*a)[kPitch],
                                                    const float (*b)[kPitch],
                                                    float (&acc)[kPerThread][kPerThread]) {
    const int tx = threadIdx.x % 16;
    const int ty = threadIdx.x / 16;
#pragma unroll
    for (int k = 0; k < kDepth; ++k) {
      float av[kPerThread], bv[kPerThread];
#pragma unroll
      for (int i = 0; i < kPerThread; ++i) av[i] = a[k][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < kPerThread; ++j) bv[j] = b[k][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < kPerThread; ++i) {
#pragma unroll
        for (int j = 0; j < kPerThread; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
      }
    }
  }

  __device__ __forceinline__ static int Row(int i) { return threadIdx.x / 16 + 16 * i; }
  __device__ __forceinline__ static int Col(int j) { return threadIdx.x % 16 + 16 * j; }
};

}  // namespace tessera::cuda_launch
