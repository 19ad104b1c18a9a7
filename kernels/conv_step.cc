// The checks of the ConvStep contract (kernels/conv_step.h), one copy that
// every backend runs before it touches memory, so a bad request gets the same
// INVALID_ARGUMENT message whichever backend runs it.
#include "kernels/conv_step.h"

#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "kernels/params_check_util.h"

namespace tessera {

using params_check::CheckElementType;
using params_check::CheckNonNegative;
using params_check::CheckNotNull;
using params_check::CheckPositive;
using params_check::CheckRowStride;

absl::Status CheckConvStepParams(const ConvStepParams& p) {
  constexpr absl::string_view kOp = "ConvStep";
  RETURN_IF_ERROR(CheckElementType(kOp, "x_type", p.x_type));
  RETURN_IF_ERROR(CheckElementType(kOp, "out_type", p.out_type));
  RETURN_IF_ERROR(CheckNonNegative(kOp, "batch", p.batch));
  RETURN_IF_ERROR(CheckPositive(kOp, "channels", p.channels));
  RETURN_IF_ERROR(CheckPositive(kOp, "kernel_width", p.kernel_width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "x_stride", p.x_stride, p.channels));
  RETURN_IF_ERROR(CheckRowStride(kOp, "out_stride", p.out_stride, p.channels));
  if (p.batch == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "x", p.x));
  RETURN_IF_ERROR(CheckNotNull(kOp, "weight", p.weight));
  if (p.kernel_width > 1) RETURN_IF_ERROR(CheckNotNull(kOp, "states", p.states));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  return absl::OkStatus();
}

}  // namespace tessera
