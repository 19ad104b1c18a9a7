// The checks of the Linear contract (kernels/linear.h), one copy that every
// backend runs before it touches memory, so a bad request gets the same
// INVALID_ARGUMENT message whichever backend runs it. Whether a backend
// computes the given element type is its own question (UNIMPLEMENTED), asked
// after these.
#include "kernels/linear.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "kernels/params_check_util.h"

namespace tessera {

using params_check::CheckElementType;
using params_check::CheckFitsBlasInt;
using params_check::CheckNonNegative;
using params_check::CheckNotNull;
using params_check::CheckPositive;
using params_check::CheckRowStride;
using params_check::ParamError;

absl::Status CheckLinearParams(const LinearParams& p) {
  constexpr absl::string_view kOp = "Linear";
  RETURN_IF_ERROR(CheckElementType(kOp, "type", p.type));
  RETURN_IF_ERROR(CheckElementType(kOp, "y_type", p.y_type));
  if (p.y_type == ElementType::kBF16 && p.type != ElementType::kBF16) {
    return ParamError(kOp, absl::StrCat("y_type bf16 needs bf16 operands. Given: type ", ElementTypeName(p.type)));
  }
  RETURN_IF_ERROR(CheckNonNegative(kOp, "rows", p.rows));
  RETURN_IF_ERROR(CheckPositive(kOp, "in_features", p.in_features));
  RETURN_IF_ERROR(CheckPositive(kOp, "out_features", p.out_features));
  RETURN_IF_ERROR(CheckRowStride(kOp, "x_stride", p.x_stride, p.in_features));
  RETURN_IF_ERROR(CheckRowStride(kOp, "y_stride", p.y_stride, p.out_features));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "rows", p.rows));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "in_features", p.in_features));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "out_features", p.out_features));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "x_stride", p.x_stride));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "y_stride", p.y_stride));
  if (p.rows == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "x", p.x));
  RETURN_IF_ERROR(CheckNotNull(kOp, "weight", p.weight));
  RETURN_IF_ERROR(CheckNotNull(kOp, "y", p.y));
  return absl::OkStatus();
}

}  // namespace tessera
