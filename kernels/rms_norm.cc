// The checks of the RmsNorm contract (kernels/rms_norm.h), one copy that
// every backend runs before it touches memory, so a bad request gets the same
// INVALID_ARGUMENT message whichever backend runs it.
#include "kernels/rms_norm.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "kernels/params_check_util.h"

namespace tessera {

using params_check::CheckElementType;
using params_check::CheckNonNegative;
using params_check::CheckNotNull;
using params_check::CheckPositive;
using params_check::CheckRowStride;
using params_check::ParamError;
using params_check::StrideOr;

absl::Status CheckRmsNormParams(const RmsNormParams& p) {
  constexpr absl::string_view kOp = "RmsNorm";
  RETURN_IF_ERROR(CheckElementType(kOp, "out_type", p.out_type));
  RETURN_IF_ERROR(CheckNonNegative(kOp, "rows", p.rows));
  RETURN_IF_ERROR(CheckPositive(kOp, "width", p.width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "x_stride", p.x_stride, p.width));
  if (!(p.eps >= 0.0f) || std::isinf(p.eps)) {
    return ParamError(kOp, absl::StrCat("eps must be finite and >= 0. Given: ", p.eps));
  }
  if (p.rows == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "x", p.x));
  RETURN_IF_ERROR(CheckNotNull(kOp, "weight", p.weight));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  if (p.out == p.x && (p.out_type != ElementType::kF32 || StrideOr(p.x_stride, p.width) != p.width)) {
    return ParamError(kOp, "out may alias x only when out_type is fp32 and x_stride == width");
  }
  return absl::OkStatus();
}

}  // namespace tessera
