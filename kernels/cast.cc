// The checks of the Cast contract (kernels/cast.h), one copy that every
// backend runs before it touches memory, so a bad request gets the same
// INVALID_ARGUMENT message whichever backend runs it. The one aliasing allowed
// is the no-op (same type, same stride): a row-parallel cast in place between
// types of different widths would race on its own rows.
#include "kernels/cast.h"

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

absl::Status CheckCastParams(const CastParams& p) {
  constexpr absl::string_view kOp = "Cast";
  RETURN_IF_ERROR(CheckElementType(kOp, "in_type", p.in_type));
  RETURN_IF_ERROR(CheckElementType(kOp, "out_type", p.out_type));
  RETURN_IF_ERROR(CheckNonNegative(kOp, "rows", p.rows));
  RETURN_IF_ERROR(CheckPositive(kOp, "width", p.width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "in_stride", p.in_stride, p.width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "out_stride", p.out_stride, p.width));
  if (p.rows == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "in", p.in));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  if (p.in == p.out && (p.in_type != p.out_type ||
                        StrideOr(p.in_stride, p.width) != StrideOr(p.out_stride, p.width))) {
    return ParamError(kOp,
                      "out may alias in only when in_type == out_type and in_stride == out_stride");
  }
  return absl::OkStatus();
}

}  // namespace tessera
