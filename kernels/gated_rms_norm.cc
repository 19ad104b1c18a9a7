// The checks of the GatedRmsNorm contract (kernels/gated_rms_norm.h), one copy
// that every backend runs before it touches memory, so a bad request gets the
// same INVALID_ARGUMENT message whichever backend runs it.
#include "kernels/gated_rms_norm.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "kernels/params_check_util.h"

namespace tessera {

using params_check::CheckDivides;
using params_check::CheckNonNegative;
using params_check::CheckNotNull;
using params_check::CheckPositive;
using params_check::CheckRowStride;
using params_check::ParamError;
using params_check::StrideOr;

absl::Status CheckGatedRmsNormParams(const GatedRmsNormParams& p) {
  constexpr absl::string_view kOp = "GatedRmsNorm";
  RETURN_IF_ERROR(CheckNonNegative(kOp, "rows", p.rows));
  RETURN_IF_ERROR(CheckPositive(kOp, "width", p.width));
  RETURN_IF_ERROR(CheckPositive(kOp, "group_size", p.group_size));
  RETURN_IF_ERROR(CheckDivides(kOp, "group_size", p.group_size, "width", p.width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "y_stride", p.y_stride, p.width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "z_stride", p.z_stride, p.width));
  if (!(p.eps >= 0.0f) || std::isinf(p.eps)) {
    return ParamError(kOp, absl::StrCat("eps must be finite and >= 0. Given: ", p.eps));
  }
  if (p.rows == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "y", p.y));
  RETURN_IF_ERROR(CheckNotNull(kOp, "z", p.z));
  RETURN_IF_ERROR(CheckNotNull(kOp, "weight", p.weight));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  if (p.out == p.y && StrideOr(p.y_stride, p.width) != p.width) {
    return ParamError(kOp, "out may alias y only when y_stride == width");
  }
  return absl::OkStatus();
}

}  // namespace tessera
