// The checks of the Attention and AttentionMerge contracts
// (kernels/attention.h), one copy that every backend runs before it touches
// memory, so a bad request gets the same INVALID_ARGUMENT message whichever
// backend runs it. A backend's own limits (the CPU's fp32-only operands, CUDA's
// largest head_dim) are UNIMPLEMENTED, asked after these.
#include "kernels/attention.h"

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

absl::Status CheckAttentionParams(const AttentionParams& p) {
  constexpr absl::string_view kOp = "Attention";
  RETURN_IF_ERROR(CheckElementType(kOp, "type", p.type));
  RETURN_IF_ERROR(CheckNonNegative(kOp, "q_len", p.q_len));
  RETURN_IF_ERROR(CheckNonNegative(kOp, "kv_len", p.kv_len));
  RETURN_IF_ERROR(CheckPositive(kOp, "num_q_heads", p.num_q_heads));
  RETURN_IF_ERROR(CheckPositive(kOp, "num_kv_heads", p.num_kv_heads));
  RETURN_IF_ERROR(CheckDivides(kOp, "num_kv_heads", p.num_kv_heads, "num_q_heads",
                               p.num_q_heads));
  RETURN_IF_ERROR(CheckPositive(kOp, "head_dim", p.head_dim));
  RETURN_IF_ERROR(CheckRowStride(kOp, "q_stride", p.q_stride, p.num_q_heads * p.head_dim));
  RETURN_IF_ERROR(CheckRowStride(kOp, "k_stride", p.k_stride, p.num_kv_heads * p.head_dim));
  RETURN_IF_ERROR(CheckRowStride(kOp, "v_stride", p.v_stride, p.num_kv_heads * p.head_dim));
  RETURN_IF_ERROR(CheckNonNegative(kOp, "workspace_bytes", p.workspace_bytes));
  if (!(p.scale > 0.0f) || std::isinf(p.scale)) {
    return ParamError(kOp, absl::StrCat("scale must be finite and > 0. Given: ", p.scale));
  }
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
