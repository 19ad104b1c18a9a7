// Mamba-2 step sizes, elementwise: softplus with torch's threshold of 20, then
// the time_step_limit clamp (dt_max may be +inf).
#include "kernels/dt_softplus.h"

#include <algorithm>
#include <cmath>

#include "common/status_macros.h"
#include "kernels/cpu/kernel_util.h"

namespace tessera::cpu {
namespace {

absl::Status ValidateDtSoftplus(const DtSoftplusParams& p) {
  constexpr absl::string_view kOp = "DtSoftplus";
  RETURN_IF_ERROR(CheckNonNegative(kOp, "rows", p.rows));
  RETURN_IF_ERROR(CheckPositive(kOp, "num_heads", p.num_heads));
  RETURN_IF_ERROR(CheckRowStride(kOp, "dt_stride", p.dt_stride, p.num_heads));
  if (std::isnan(p.dt_min) || std::isnan(p.dt_max) || p.dt_min > p.dt_max) {
    return ParamError(kOp, absl::StrCat("need dt_min <= dt_max. Given: dt_min ", p.dt_min,
                                        ", dt_max ", p.dt_max));
  }
  if (p.rows == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "dt_raw", p.dt_raw));
  RETURN_IF_ERROR(CheckNotNull(kOp, "dt_bias", p.dt_bias));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  return absl::OkStatus();
}

}  // namespace

absl::Status DtSoftplus(const DtSoftplusParams& p) {
  RETURN_IF_ERROR(ValidateDtSoftplus(p));
  const int64_t dt_stride = StrideOr(p.dt_stride, p.num_heads);
  for (int64_t t = 0; t < p.rows; ++t) {
    const float* raw = p.dt_raw + t * dt_stride;  // (H)
    float* out = p.out + t * p.num_heads;         // (H)
    for (int64_t h = 0; h < p.num_heads; ++h) {
      out[h] = std::clamp(Softplus(raw[h] + p.dt_bias[h]), p.dt_min, p.dt_max);
    }
  }
  return absl::OkStatus();
}

}  // namespace tessera::cpu
