// Gated RMSNorm by the shared norm kernels (norm_rows.cuh), one block per
// (row, group): g = y · silu(z) held in registers and read once when the rows
// allow 16-byte vectors, so out may overwrite y or z in place. The entry point
// runs the shared checks (kernels/gated_rms_norm.cc) and launches the
// instantiation for the type of z and out.
#include "kernels/gated_rms_norm.h"

#include "common/status_macros.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/host_util.h"
#include "kernels/cuda/norm_rows.cuh"
#include "kernels/params_check_util.h"

namespace tessera::cuda {

absl::Status GatedRmsNorm(const GatedRmsNormParams& p, CudaStream stream) {
  using params_check::StrideOr;
  RETURN_IF_ERROR(CheckGatedRmsNormParams(p));
  const cuda_norm::NormRows rows{p.rows, p.width, p.group_size, p.eps, p.y, StrideOr(p.y_stride, p.width), p.z,
                                 StrideOr(p.z_stride, p.width), p.weight, p.out, StrideOr(p.out_stride, p.width)};
  return cuda_host::FromCuda("GatedRmsNorm", cuda_launch::WithDeviceType(p.type, [&](auto t) {
                               using T = decltype(t);
                               return cuda_norm::LaunchNormRows<T, T>(rows, stream);
                             }));
}

}  // namespace tessera::cuda
