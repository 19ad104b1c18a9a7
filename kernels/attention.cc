// The checks of the Attention and AttentionMerge contracts
// (kernels/attention.h), one copy that every backend runs before it touches
// memory, so a bad request gets the same INVALID_ARGUMENT message whichever
// backend runs it. A backend's own limits (the CPU's fp32-only operands, CUDA's
// largest head_dim) are UNIMPLEMENTED, asked after these.
#include "kernels/attention.h"

#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "kernels/attention_shape_check.h"
#include "kernels/params_check_util.h"

namespace tessera {

using params_check::CheckAttentionShape;
using params_check::CheckElementType;
using params_check::CheckNonNegative;
using params_check::CheckNotNull;
using params_check::CheckPositive;

absl::Status CheckAttentionParams(const AttentionParams& p) {
  constexpr absl::string_view kOp = "Attention";
  RETURN_IF_ERROR(CheckElementType(kOp, "type", p.type));
  RETURN_IF_ERROR(CheckNonNegative(kOp, "q_len", p.q_len));
  RETURN_IF_ERROR(CheckNonNegative(kOp, "kv_len", p.kv_len));
  RETURN_IF_ERROR(CheckAttentionShape(kOp, p));
  if (p.q_len == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "q", p.q));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  if (p.kv_len == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "k", p.k));
  RETURN_IF_ERROR(CheckNotNull(kOp, "v", p.v));
  return absl::OkStatus();
}

absl::Status CheckAttentionMergeParams(const AttentionMergeParams& p) {
  constexpr absl::string_view kOp = "AttentionMerge";
  RETURN_IF_ERROR(CheckNonNegative(kOp, "rows", p.rows));
  RETURN_IF_ERROR(CheckPositive(kOp, "head_dim", p.head_dim));
  if (p.rows == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  RETURN_IF_ERROR(CheckNotNull(kOp, "lse", p.lse));
  RETURN_IF_ERROR(CheckNotNull(kOp, "part_out", p.part_out));
  RETURN_IF_ERROR(CheckNotNull(kOp, "part_lse", p.part_lse));
  return absl::OkStatus();
}

}  // namespace tessera
