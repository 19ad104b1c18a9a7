// The checks of the SsdStep contract (kernels/ssd_step.h), one copy that
// every backend runs before it touches memory, so a bad request gets the same
// INVALID_ARGUMENT message whichever backend runs it.
#include "kernels/ssd_step.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "kernels/params_check_util.h"

namespace tessera {

using params_check::CheckDivides;
using params_check::CheckNotNull;
using params_check::CheckPositive;

absl::Status CheckSsdStepParams(const SsdStepParams& p) {
  constexpr absl::string_view kOp = "SsdStep";
  RETURN_IF_ERROR(CheckPositive(kOp, "num_heads", p.num_heads));
  RETURN_IF_ERROR(CheckPositive(kOp, "head_dim", p.head_dim));
  RETURN_IF_ERROR(CheckPositive(kOp, "num_groups", p.num_groups));
  RETURN_IF_ERROR(CheckDivides(kOp, "num_groups", p.num_groups, "num_heads", p.num_heads));
  RETURN_IF_ERROR(CheckPositive(kOp, "state_size", p.state_size));
  RETURN_IF_ERROR(CheckNotNull(kOp, "x", p.x));
  RETURN_IF_ERROR(CheckNotNull(kOp, "dt", p.dt));
  RETURN_IF_ERROR(CheckNotNull(kOp, "A", p.A));
  RETURN_IF_ERROR(CheckNotNull(kOp, "B", p.B));
  RETURN_IF_ERROR(CheckNotNull(kOp, "C", p.C));
  RETURN_IF_ERROR(CheckNotNull(kOp, "state", p.state));
  RETURN_IF_ERROR(CheckNotNull(kOp, "y", p.y));
  return absl::OkStatus();
}

}  // namespace tessera
