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
using params_check::CheckElementType;
using params_check::CheckNonNegative;
using params_check::CheckNotNull;
using params_check::CheckPositive;
using params_check::CheckRowStride;
using params_check::ParamError;
using params_check::StrideOr;

absl::Status CheckGatedRmsNormParams(const GatedRmsNormParams& p) {
  constexpr absl::string_view kOp = "GatedRmsNorm";
  RETURN_IF_ERROR(CheckElementType(kOp, "type", p.type));
  RETURN_IF_ERROR(CheckNonNegative(kOp, "rows", p.rows));
  RETURN_IF_ERROR(CheckPositive(kOp, "width", p.width));
  RETURN_IF_ERROR(CheckPositive(kOp, "group_size", p.group_size));
  RETURN_IF_ERROR(CheckDivides(kOp, "group_size", p.group_size, "width", p.width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "y_stride", p.y_stride, p.width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "z_stride", p.z_stride, p.width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "out_stride", p.out_stride, p.width));
  if (!(p.eps >= 0.0f) || std::isinf(p.eps)) {
    return ParamError(kOp, absl::StrCat("eps must be finite and >= 0. Given: ", p.eps));
  }
  if (p.rows == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "y", p.y));
  RETURN_IF_ERROR(CheckNotNull(kOp, "z", p.z));
  RETURN_IF_ERROR(CheckNotNull(kOp, "weight", p.weight));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  const int64_t out_stride = StrideOr(p.out_stride, p.width);
  if (p.out == p.y && (p.type != ElementType::kF32 || StrideOr(p.y_stride, p.width) != out_stride)) {
    return ParamError(kOp, "out may alias y only when type is fp32 and y_stride == out_stride");
  }
  if (p.out == p.z && StrideOr(p.z_stride, p.width) != out_stride) {
    return ParamError(kOp, "out may alias z only when z_stride == out_stride");
  }
  return absl::OkStatus();
}

}  // namespace tessera
