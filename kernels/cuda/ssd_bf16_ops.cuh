// What both bf16 SsdScan kernels (ssd_scan_bf16.cu on mma.sync, ssd_scan_sm90.cu
// on wgmma) share: bf16x2 helpers that turn stored operands into scaled ones (a
// product's K dimension is the token, and the decay weights live on it), the
// warp's cumsum of dt·A over a 64-token chunk, and the host's copy of the
// params into a kernel's argument struct.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/flash_attention_ptx.cuh"
#include "kernels/ssd_scan.h"

namespace tessera::cuda_ssd {

using cuda_flash::Exp2;
using cuda_flash::PackBf16;

// bf16x2 bits (`lo` in the low half) as two floats.
__device__ __forceinline__ float2 UnpackBf16(uint32_t bits) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&bits));
}

// A bf16x2 operand whose two elements are scaled by w_lo and w_hi.
__device__ __forceinline__ uint32_t ScaleBf16(uint32_t bits, float w_lo, float w_hi) {
  const float2 v = UnpackBf16(bits);
  return PackBf16(v.x * w_lo, v.y * w_hi);
}

// The cumsum of one 64-token chunk by one warp, lane l holding tokens 2l and
// 2l + 1 (v = dt·A of each): cum of both tokens, inclusive, and the chunk's total.
struct ChunkCumsum {
  float cum0, cum1, total;
};
__device__ __forceinline__ ChunkCumsum WarpChunkCumsum(float v0, float v1, int lane) {
  float inclusive = v0 + v1;
#pragma unroll
  for (int offset = 1; offset < 32; offset <<= 1) {
    const float up = __shfl_up_sync(0xffffffffu, inclusive, offset);
    if (lane >= offset) inclusive += up;
  }
  float exclusive = __shfl_up_sync(0xffffffffu, inclusive, 1);
  if (lane == 0) exclusive = 0.0f;
  ChunkCumsum c;
  c.cum0 = exclusive + v0;
  c.cum1 = c.cum0 + v1;
  c.total = __shfl_sync(0xffffffffu, c.cum1, 31);
  return c;
}

// The sizes, strides (0 resolved to packed rows) and pointers of checked bf16
// params into a kernel's argument struct that has fields of these names.
template <class Args>
void CopyScanOperands(const SsdScanParams& p, Args& a) {
  const int64_t gn = p.num_groups * p.state_size;
  a.seq_len = p.seq_len;
  a.heads = p.num_heads;
  a.heads_per_group = p.num_heads / p.num_groups;
  a.x_stride = p.x_stride == 0 ? p.num_heads * p.head_dim : p.x_stride;
  a.dt_stride = p.dt_stride == 0 ? p.num_heads : p.dt_stride;
  a.b_stride = p.b_stride == 0 ? gn : p.b_stride;
  a.c_stride = p.c_stride == 0 ? gn : p.c_stride;
  a.x = static_cast<const __nv_bfloat16*>(p.x);
  a.dt = p.dt;
  a.A = p.A;
  a.B = static_cast<const __nv_bfloat16*>(p.B);
  a.C = static_cast<const __nv_bfloat16*>(p.C);
  a.D = p.D;
  a.initial_state = p.initial_state;
  a.y = p.y;
  a.final_state = p.final_state;
  a.log_decay = p.log_decay;
}

}  // namespace tessera::cuda_ssd
