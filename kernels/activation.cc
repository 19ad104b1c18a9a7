// The checks of the SiluMul and ReluSquared contracts (kernels/activation.h),
// one copy that every backend runs before it touches memory, so a bad request
// gets the same INVALID_ARGUMENT message whichever backend runs it.
#include "kernels/activation.h"

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

absl::Status CheckSiluMulParams(const SiluMulParams& p) {
  constexpr absl::string_view kOp = "SiluMul";
  RETURN_IF_ERROR(CheckElementType(kOp, "type", p.type));
  RETURN_IF_ERROR(CheckNonNegative(kOp, "rows", p.rows));
  RETURN_IF_ERROR(CheckPositive(kOp, "width", p.width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "gate_stride", p.gate_stride, p.width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "up_stride", p.up_stride, p.width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "out_stride", p.out_stride, p.width));
  if (p.rows == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "gate", p.gate));
  RETURN_IF_ERROR(CheckNotNull(kOp, "up", p.up));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  const int64_t out_stride = StrideOr(p.out_stride, p.width);
  if (p.out == p.gate && StrideOr(p.gate_stride, p.width) != out_stride) {
    return ParamError(kOp, "out may alias gate only when gate_stride == out_stride");
  }
  if (p.out == p.up && StrideOr(p.up_stride, p.width) != out_stride) {
    return ParamError(kOp, "out may alias up only when up_stride == out_stride");
  }
  return absl::OkStatus();
}

absl::Status CheckReluSquaredParams(const ReluSquaredParams& p) {
  constexpr absl::string_view kOp = "ReluSquared";
  RETURN_IF_ERROR(CheckElementType(kOp, "type", p.type));
  RETURN_IF_ERROR(CheckNonNegative(kOp, "count", p.count));
  if (p.count == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "x", p.x));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  return absl::OkStatus();
}

}  // namespace tessera
