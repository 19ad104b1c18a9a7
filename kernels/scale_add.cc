// The checks of the ScaleAdd contract (kernels/scale_add.h).
#include "kernels/scale_add.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/params_check_util.h"

namespace tessera {

using params_check::CheckNonNegative;
using params_check::CheckNotNull;
using params_check::CheckPositive;
using params_check::CheckRowStride;
using params_check::ParamError;
using params_check::StrideOr;

absl::Status CheckScaleAddParams(const ScaleAddParams& p) {
  constexpr absl::string_view kOp = "ScaleAdd";
  RETURN_IF_ERROR(CheckNonNegative(kOp, "rows", p.rows));
  RETURN_IF_ERROR(CheckPositive(kOp, "width", p.width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "x_stride", p.x_stride, p.width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "y_stride", p.y_stride, p.width));
  if (!std::isfinite(p.alpha) || !std::isfinite(p.beta)) {
    return ParamError(kOp, absl::StrCat("alpha and beta must be finite. Given: ", p.alpha, ", ", p.beta));
  }
  if (p.rows == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "y", p.y));
  if (p.x == p.y && StrideOr(p.x_stride, p.width) != StrideOr(p.y_stride, p.width)) {
    return ParamError(kOp, "x may alias y only with the same stride");
  }
  return absl::OkStatus();
}

}  // namespace tessera
