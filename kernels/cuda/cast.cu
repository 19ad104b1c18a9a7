// The row casts of the bf16 mode (cuda::StoreAs, cuda::LoadAsFloat): strided
// (rows, width) copies fp32 -> bf16 (round to nearest even), bf16 -> fp32
// (exact) and fp32 -> fp32. One block row per matrix row and threads across
// the row, so no per-element division; scalar loads and stores, because a bf16
// row at an odd stride or offset is only 2-byte aligned.
#include <cuda_bf16.h>

#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/launch.h"

namespace tessera::cuda_launch {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ void StoreFloat(float* out, float v) { *out = v; }
__device__ __forceinline__ void StoreFloat(__nv_bfloat16* out, float v) {
  *out = __float2bfloat16_rn(v);
}

template <typename In, typename Out>
__global__ void CastRowsKernel(CastRowsParams p) {
  const In* in = static_cast<const In*>(p.in);  // (rows, in_stride)
  Out* out = static_cast<Out*>(p.out);          // (rows, out_stride)
  for (int64_t r = blockIdx.y; r < p.rows; r += gridDim.y) {
    for (int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; c < p.width;
         c += int64_t{gridDim.x} * blockDim.x) {
      StoreFloat(out + r * p.out_stride + c, ToFloat(in[r * p.in_stride + c]));
    }
  }
}

template <typename In, typename Out>
cudaError_t LaunchCastRows(const CastRowsParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  CastRowsKernel<In, Out><<<RowGrid(p.rows, p.width, kThreads), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t CastF32ToBf16(const CastRowsParams& p, cudaStream_t stream) {
  return LaunchCastRows<float, __nv_bfloat16>(p, stream);
}

cudaError_t CastBf16ToF32(const CastRowsParams& p, cudaStream_t stream) {
  return LaunchCastRows<__nv_bfloat16, float>(p, stream);
}

cudaError_t CopyF32(const CastRowsParams& p, cudaStream_t stream) {
  return LaunchCastRows<float, float>(p, stream);
}

}  // namespace tessera::cuda_launch
