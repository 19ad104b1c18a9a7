// The checks of the MoeExperts contract (kernels/moe_experts.h) and the
// layout of the workspace its CUDA backend borrows (MoeExpertsWorkspace).
#include "kernels/moe_experts.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/params_check_util.h"

namespace tessera {

using params_check::CheckElementType;
using params_check::CheckNonNegative;
using params_check::CheckNotNull;
using params_check::CheckPositive;
using params_check::CheckRowStride;
using params_check::ParamError;

absl::Status CheckMoeExpertsParams(const MoeExpertsParams& p) {
  constexpr absl::string_view kOp = "MoeExperts";
  RETURN_IF_ERROR(CheckElementType(kOp, "type", p.type));
  if (p.activation != MoeExpertActivation::kRelu2 && p.activation != MoeExpertActivation::kSwiGluFused) {
    return ParamError(kOp, absl::StrCat("activation must be kRelu2 or kSwiGluFused. Given: ",
                                        static_cast<int>(p.activation)));
  }
  RETURN_IF_ERROR(CheckNonNegative(kOp, "tokens", p.tokens));
  RETURN_IF_ERROR(CheckPositive(kOp, "hidden", p.hidden));
  RETURN_IF_ERROR(CheckPositive(kOp, "experts", p.experts));
  RETURN_IF_ERROR(CheckPositive(kOp, "intermediate", p.intermediate));
  if (p.top_k < 1 || p.top_k > p.experts) {
    return ParamError(kOp, absl::StrCat("top_k must be in [1, ", p.experts, "]. Given: ", p.top_k));
  }
  RETURN_IF_ERROR(CheckRowStride(kOp, "x_stride", p.x_stride, p.hidden));
  RETURN_IF_ERROR(CheckRowStride(kOp, "y_stride", p.y_stride, p.hidden));
  if (reinterpret_cast<uintptr_t>(p.workspace) % 256 != 0) {
    return ParamError(kOp, "workspace must be 256-byte aligned (cudaMalloc's alignment)");
  }
  if (p.tokens == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "x", p.x));
  RETURN_IF_ERROR(CheckNotNull(kOp, "expert_ids", p.expert_ids));
  RETURN_IF_ERROR(CheckNotNull(kOp, "expert_weights", p.expert_weights));
  RETURN_IF_ERROR(CheckNotNull(kOp, "up", p.up));
  RETURN_IF_ERROR(CheckNotNull(kOp, "down", p.down));
  RETURN_IF_ERROR(CheckNotNull(kOp, "y", p.y));
  return absl::OkStatus();
}

MoeExpertsWorkspaceLayout MoeExpertsWorkspace(const MoeExpertsParams& p) {
  MoeExpertsWorkspaceLayout layout;
  const int64_t pairs = p.tokens * p.top_k, E = p.experts;
  const int64_t element = ElementBytes(p.type);
  const int64_t chunks = (pairs + MoeExpertsWorkspaceLayout::kChunk - 1) / MoeExpertsWorkspaceLayout::kChunk;
  const int64_t i8 = (p.intermediate + 7) / 8 * 8;
  int64_t at = 0;
  auto take = [&at](int64_t bytes) {
    const int64_t start = at;
    at += (bytes + 255) / 256 * 256;
    return start;
  };
  layout.chunk_starts = take(4 * chunks * E);
  layout.row_starts = take(4 * (E + 1));
  layout.tile_starts = take(4 * 3 * (E + 1));
  layout.pair_of_row = take(4 * pairs);
  layout.row_of_pair = take(4 * pairs);
  layout.act = take(element * pairs * i8);
  layout.out = take(element * pairs * p.hidden);
  layout.bytes = at;
  return layout;
}

int64_t MoeExpertsWorkspaceBytes(const MoeExpertsParams& p) { return MoeExpertsWorkspace(p).bytes; }

}  // namespace tessera
