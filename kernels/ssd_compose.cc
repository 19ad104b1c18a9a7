// The checks of the SsdComposeInitialState contract (kernels/ssd_compose.h),
// one copy that every backend runs before it touches memory, so a bad request
// gets the same INVALID_ARGUMENT message whichever backend runs it.
#include "kernels/ssd_compose.h"

#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "kernels/params_check_util.h"

namespace tessera {

using params_check::CheckNonNegative;
using params_check::CheckNotNull;
using params_check::CheckPositive;

absl::Status CheckSsdComposeParams(const SsdComposeParams& p) {
  constexpr absl::string_view kOp = "SsdComposeInitialState";
  RETURN_IF_ERROR(CheckNonNegative(kOp, "ranks_before", p.ranks_before));
  RETURN_IF_ERROR(CheckPositive(kOp, "num_heads", p.num_heads));
  RETURN_IF_ERROR(CheckPositive(kOp, "per_head", p.per_head));
  if (p.ranks_before > 0) RETURN_IF_ERROR(CheckNotNull(kOp, "summaries", p.summaries));
  RETURN_IF_ERROR(CheckNotNull(kOp, "h_in", p.h_in));
  return absl::OkStatus();
}

}  // namespace tessera
