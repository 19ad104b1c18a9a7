// The checks of the SsdStep contract (kernels/ssd_step.h), one copy that
// every backend runs before it touches memory, so a bad request gets the same
// INVALID_ARGUMENT message whichever backend runs it.
#include "kernels/ssd_step.h"

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

absl::Status CheckSsdStepParams(const SsdStepParams& p) {
  constexpr absl::string_view kOp = "SsdStep";
  RETURN_IF_ERROR(CheckElementType(kOp, "dt_type", p.dt_type));
  RETURN_IF_ERROR(CheckNonNegative(kOp, "batch", p.batch));
  RETURN_IF_ERROR(CheckPositive(kOp, "num_heads", p.num_heads));
  RETURN_IF_ERROR(CheckPositive(kOp, "head_dim", p.head_dim));
  RETURN_IF_ERROR(CheckPositive(kOp, "num_groups", p.num_groups));
  RETURN_IF_ERROR(CheckDivides(kOp, "num_groups", p.num_groups, "num_heads", p.num_heads));
  RETURN_IF_ERROR(CheckPositive(kOp, "state_size", p.state_size));
  const int64_t hp = p.num_heads * p.head_dim, gn = p.num_groups * p.state_size;
  RETURN_IF_ERROR(CheckRowStride(kOp, "x_stride", p.x_stride, hp));
  RETURN_IF_ERROR(CheckRowStride(kOp, "dt_stride", p.dt_stride, p.num_heads));
  RETURN_IF_ERROR(CheckRowStride(kOp, "b_stride", p.b_stride, gn));
  RETURN_IF_ERROR(CheckRowStride(kOp, "c_stride", p.c_stride, gn));
  RETURN_IF_ERROR(CheckRowStride(kOp, "y_stride", p.y_stride, hp));
  if (p.dt_bias != nullptr && (std::isnan(p.dt_min) || std::isnan(p.dt_max) || p.dt_min > p.dt_max)) {
    return ParamError(kOp, absl::StrCat("need dt_min <= dt_max. Given: dt_min ", p.dt_min, ", dt_max ", p.dt_max));
  }
  if (p.states == nullptr) {
    if (p.batch != 1) {
      return ParamError(kOp, absl::StrCat("batch must be 1 without states. Given: ", p.batch));
    }
    RETURN_IF_ERROR(CheckNotNull(kOp, "state", p.state));
  } else if (p.state != nullptr) {
    return ParamError(kOp, "state must be null when states is set");
  }
  if (p.batch == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "x", p.x));
  RETURN_IF_ERROR(CheckNotNull(kOp, "dt", p.dt));
  RETURN_IF_ERROR(CheckNotNull(kOp, "A", p.A));
  RETURN_IF_ERROR(CheckNotNull(kOp, "B", p.B));
  RETURN_IF_ERROR(CheckNotNull(kOp, "C", p.C));
  RETURN_IF_ERROR(CheckNotNull(kOp, "y", p.y));
  return absl::OkStatus();
}

}  // namespace tessera
