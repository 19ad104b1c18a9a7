// The checks of the DtSoftplus contract (kernels/dt_softplus.h), one copy that
// every backend runs before it touches memory, so a bad request gets the same
// INVALID_ARGUMENT message whichever backend runs it.
#include "kernels/dt_softplus.h"

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

absl::Status CheckDtSoftplusParams(const DtSoftplusParams& p) {
  constexpr absl::string_view kOp = "DtSoftplus";
  RETURN_IF_ERROR(CheckElementType(kOp, "dt_raw_type", p.dt_raw_type));
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

}  // namespace tessera
