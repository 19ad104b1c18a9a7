// The checks of the MoeRoute contract (kernels/moe_route.h).
#include "kernels/moe_route.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/params_check_util.h"

namespace tessera {

using params_check::CheckNonNegative;
using params_check::CheckNotNull;
using params_check::CheckRowStride;
using params_check::ParamError;

absl::Status CheckMoeRouteParams(const MoeRouteParams& p) {
  constexpr absl::string_view kOp = "MoeRoute";
  if (p.kind != MoeRouteKind::kSigmoidBiased && p.kind != MoeRouteKind::kSoftmaxTopK) {  // an int cast in
    return ParamError(kOp, absl::StrCat("kind must be kSigmoidBiased or kSoftmaxTopK. Given: ",
                                        static_cast<int>(p.kind)));
  }
  RETURN_IF_ERROR(CheckNonNegative(kOp, "tokens", p.tokens));
  if (p.experts < 2) return ParamError(kOp, absl::StrCat("experts must be >= 2. Given: ", p.experts));
  if (p.top_k < 1 || p.top_k > p.experts) {
    return ParamError(kOp, absl::StrCat("top_k must be in [1, ", p.experts, "]. Given: ", p.top_k));
  }
  RETURN_IF_ERROR(CheckRowStride(kOp, "logits_stride", p.logits_stride, p.experts));
  if (p.kind == MoeRouteKind::kSigmoidBiased) {
    if (p.n_group < 1 || p.experts % p.n_group != 0 || p.experts / p.n_group < 2) {
      return ParamError(kOp, absl::StrCat("n_group must divide experts (", p.experts,
                                          ") into groups of at least 2. Given: ", p.n_group));
    }
    if (p.topk_group < 1 || p.topk_group > p.n_group) {
      return ParamError(kOp, absl::StrCat("topk_group must be in [1, ", p.n_group, "]. Given: ", p.topk_group));
    }
    if (p.top_k > p.topk_group * (p.experts / p.n_group)) {
      return ParamError(kOp, absl::StrCat("top_k (", p.top_k, ") exceeds the experts of the kept groups (",
                                          p.topk_group * (p.experts / p.n_group), ")"));
    }
    if (!std::isfinite(p.routed_scaling_factor)) {
      return ParamError(kOp, absl::StrCat("routed_scaling_factor must be finite. Given: ", p.routed_scaling_factor));
    }
  }
  if (p.tokens == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "logits", p.logits));
  RETURN_IF_ERROR(CheckNotNull(kOp, "expert_ids", p.expert_ids));
  RETURN_IF_ERROR(CheckNotNull(kOp, "expert_weights", p.expert_weights));
  return absl::OkStatus();
}

}  // namespace tessera
