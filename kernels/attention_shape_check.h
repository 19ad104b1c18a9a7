// The checks that the Attention and DecodeAttention contracts share
// (kernels/attention.cc, kernels/decode_attention.cc): heads, head_dim, the
// row strides, the workspace bytes and the softmax scale, which both params
// structs spell alike, so both ops reject them with the same words.
#pragma once

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "kernels/params_check_util.h"

namespace tessera::params_check {

// OK or INVALID_ARGUMENT "<op>: <what>" for the fields above of `p`
// (AttentionParams or DecodeAttentionParams).
template <typename Params>
absl::Status CheckAttentionShape(absl::string_view op, const Params& p) {
  RETURN_IF_ERROR(CheckPositive(op, "num_q_heads", p.num_q_heads));
  RETURN_IF_ERROR(CheckPositive(op, "num_kv_heads", p.num_kv_heads));
  RETURN_IF_ERROR(CheckDivides(op, "num_kv_heads", p.num_kv_heads, "num_q_heads", p.num_q_heads));
  RETURN_IF_ERROR(CheckPositive(op, "head_dim", p.head_dim));
  RETURN_IF_ERROR(CheckRowStride(op, "q_stride", p.q_stride, p.num_q_heads * p.head_dim));
  RETURN_IF_ERROR(CheckRowStride(op, "k_stride", p.k_stride, p.num_kv_heads * p.head_dim));
  RETURN_IF_ERROR(CheckRowStride(op, "v_stride", p.v_stride, p.num_kv_heads * p.head_dim));
  RETURN_IF_ERROR(CheckNonNegative(op, "workspace_bytes", p.workspace_bytes));
  if (!(p.scale > 0.0f) || std::isinf(p.scale)) {
    return ParamError(op, absl::StrCat("scale must be finite and > 0. Given: ", p.scale));
  }
  return absl::OkStatus();
}

}  // namespace tessera::params_check
