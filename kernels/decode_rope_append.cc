// The checks of the DecodeRopeAppend contract (kernels/decode_rope_append.h),
// one copy that every backend runs before it touches memory.
#include "kernels/decode_rope_append.h"

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

absl::Status CheckDecodeRopeAppendParams(const DecodeRopeAppendParams& p) {
  constexpr absl::string_view kOp = "DecodeRopeAppend";
  RETURN_IF_ERROR(CheckElementType(kOp, "type", p.type));
  RETURN_IF_ERROR(CheckNonNegative(kOp, "batch", p.batch));
  RETURN_IF_ERROR(CheckPositive(kOp, "num_q_heads", p.num_q_heads));
  RETURN_IF_ERROR(CheckPositive(kOp, "num_kv_heads", p.num_kv_heads));
  RETURN_IF_ERROR(CheckPositive(kOp, "head_dim", p.head_dim));
  if (p.rotary_dim < 0 || p.rotary_dim % 2 != 0 || p.rotary_dim > p.head_dim) {
    return ParamError(kOp, absl::StrCat("rotary_dim must be even, >= 0 and <= head_dim (", p.head_dim,
                                        "). Given: ", p.rotary_dim));
  }
  if (p.rotary_dim > 0 && (!(p.theta > 0.0f) || std::isinf(p.theta))) {
    return ParamError(kOp, absl::StrCat("theta must be finite and > 0. Given: ", p.theta));
  }
  const int64_t kv_width = p.num_kv_heads * p.head_dim;
  RETURN_IF_ERROR(CheckRowStride(kOp, "q_stride", p.q_stride, p.num_q_heads * p.head_dim));
  RETURN_IF_ERROR(CheckRowStride(kOp, "k_stride", p.k_stride, kv_width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "v_stride", p.v_stride, kv_width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "cache_stride", p.cache_stride, kv_width));
  if (p.batch == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "q", p.q));
  RETURN_IF_ERROR(CheckNotNull(kOp, "k", p.k));
  RETURN_IF_ERROR(CheckNotNull(kOp, "v", p.v));
  RETURN_IF_ERROR(CheckNotNull(kOp, "positions", p.positions));
  RETURN_IF_ERROR(CheckNotNull(kOp, "k_cache", p.k_cache));
  RETURN_IF_ERROR(CheckNotNull(kOp, "v_cache", p.v_cache));
  RETURN_IF_ERROR(CheckNotNull(kOp, "kv_lens", p.kv_lens));
  return absl::OkStatus();
}

}  // namespace tessera
