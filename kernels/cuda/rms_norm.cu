// RMSNorm of each row (one group the width of the row), by the shared norm
// kernels (norm_rows.cuh): the row held in registers and read once when it
// allows 16-byte vectors, written in out_type, so out may alias x. The entry
// point runs the shared checks (kernels/rms_norm.cc) and launches the
// instantiation for out_type.
#include "kernels/rms_norm.h"

#include "common/status_macros.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/host_util.h"
#include "kernels/cuda/norm_rows.cuh"
#include "kernels/params_check_util.h"

namespace tessera::cuda {

absl::Status RmsNorm(const RmsNormParams& p, CudaStream stream) {
  RETURN_IF_ERROR(CheckRmsNormParams(p));
  // One group the width of the row, no gate, out packed.
  const cuda_norm::NormRows rows{
      p.rows, p.width, p.width, p.eps, p.x, params_check::StrideOr(p.x_stride, p.width), nullptr, 0, p.weight,
      p.out,  p.width};
  return cuda_host::FromCuda("RmsNorm", cuda_launch::WithDeviceType(p.out_type, [&](auto out) {
                               return cuda_norm::LaunchNormRows<void, decltype(out)>(rows, stream);
                             }));
}

}  // namespace tessera::cuda
