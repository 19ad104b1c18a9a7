// Strided (rows, width) casts between storage types: fp32 -> bf16 (round to
// nearest even, __float2bfloat16_rn), bf16 -> fp32 (exact) and same-type
// copies. One block row per matrix row and threads across the row, so no
// per-element division; 16-byte vectors of 8 elements where both sides' rows
// allow them (a same-type copy moves the words untouched), scalar loads and
// stores otherwise (a bf16 row at an odd stride or offset is only 2-byte
// aligned). The entry point runs the shared
// checks (kernels/cast.cc) and launches the instantiation for the two types;
// the allowed aliasing (same type and stride) does nothing.
#include "kernels/cast.h"

#include <cuda_bf16.h>

#include <type_traits>

#include "common/status_macros.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/host_util.h"
#include "kernels/params_check_util.h"

namespace tessera::cuda {
namespace {

using cuda_host::FromCuda;
using cuda_launch::Load8;
using cuda_launch::LoadRaw8;
using cuda_launch::RowGrid;
using cuda_launch::RowsOfVec8;
using cuda_launch::Store8;
using cuda_launch::StoreRaw8;
using cuda_launch::ToFloat;
using params_check::StrideOr;

constexpr int kThreads = 256;

// Strides resolved from 0 (>= width), in elements of their own array.
struct CastRows {
  int64_t rows = 0;
  int64_t width = 0;
  const void* in = nullptr;  // (rows, width), row stride in_stride
  int64_t in_stride = 0;
  void* out = nullptr;       // (rows, width), row stride out_stride
  int64_t out_stride = 0;
};

__device__ __forceinline__ void StoreFloat(float* out, float v) { *out = v; }
__device__ __forceinline__ void StoreFloat(__nv_bfloat16* out, float v) {
  *out = __float2bfloat16_rn(v);
}

// kVec 8: columns in 16-byte vectors of 8 elements; 1: one by one.
template <typename In, typename Out, int kVec>
__global__ void CastRowsKernel(CastRows p) {
  cuda_launch::GridDependencyWait();  // first: see cuda_util.cuh
  for (int64_t r = blockIdx.y; r < p.rows; r += gridDim.y) {
    const In* in = static_cast<const In*>(p.in) + r * p.in_stride;  // (width)
    Out* out = static_cast<Out*>(p.out) + r * p.out_stride;         // (width)
    for (int64_t c = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) * kVec; c < p.width;
         c += int64_t{gridDim.x} * blockDim.x * kVec) {
      if constexpr (kVec == 8 && std::is_same_v<In, Out>) {
        StoreRaw8(out + c, LoadRaw8(in + c));  // a copy, bit for bit
      } else if constexpr (kVec == 8) {
        float v[8];
        Load8(in + c, v);
        Store8(out + c, v);
      } else if constexpr (std::is_same_v<In, Out>) {
        out[c] = in[c];  // a copy, bit for bit
      } else {
        StoreFloat(out + c, ToFloat(in[c]));
      }
    }
  }
}

template <typename In, typename Out>
cudaError_t LaunchCastRows(const CastRows& p, cudaStream_t stream) {
  if (p.width % 8 == 0 && RowsOfVec8<In>(p.in, p.in_stride) && RowsOfVec8<Out>(p.out, p.out_stride)) {
    return cuda_launch::LaunchAfterPrior(CastRowsKernel<In, Out, 8>, RowGrid(p.rows, p.width / 8, kThreads), kThreads,
                                         0, stream, p);
  }
  return cuda_launch::LaunchAfterPrior(CastRowsKernel<In, Out, 1>, RowGrid(p.rows, p.width, kThreads), kThreads, 0,
                                       stream, p);
}

// The instantiation for (in_type, out_type); both checked to lie in the enum.
template <typename In>
cudaError_t LaunchFrom(ElementType out_type, const CastRows& rows, cudaStream_t stream) {
  switch (out_type) {
    case ElementType::kF32:
      return LaunchCastRows<In, float>(rows, stream);
    case ElementType::kBF16:
      return LaunchCastRows<In, __nv_bfloat16>(rows, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace

absl::Status Cast(const CastParams& p, CudaStream stream) {
  constexpr absl::string_view kOp = "Cast";
  RETURN_IF_ERROR(CheckCastParams(p));
  if (p.rows == 0 || p.in == p.out) return absl::OkStatus();  // aliasing: same type and stride
  const CastRows rows{p.rows, p.width, p.in, StrideOr(p.in_stride, p.width),
                      p.out, StrideOr(p.out_stride, p.width)};
  switch (p.in_type) {
    case ElementType::kF32:
      return FromCuda(kOp, LaunchFrom<float>(p.out_type, rows, stream));
    case ElementType::kBF16:
      return FromCuda(kOp, LaunchFrom<__nv_bfloat16>(p.out_type, rows, stream));
  }
  return absl::InternalError("Cast: unhandled in_type");  // rejected by the checks
}

}  // namespace tessera::cuda
