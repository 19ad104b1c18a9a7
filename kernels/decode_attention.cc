// The checks of the DecodeAttention contract (kernels/decode_attention.h), one
// copy that every backend runs before it touches memory, so a bad request gets
// the same INVALID_ARGUMENT message whichever backend runs it. A backend's own
// limits (the CPU's fp32-only operands, CUDA's largest head_dim) are
// UNIMPLEMENTED, asked after these.
#include "kernels/decode_attention.h"

#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "kernels/attention_shape_check.h"
#include "kernels/params_check_util.h"

namespace tessera {

using params_check::CheckAttentionShape;
using params_check::CheckElementType;
using params_check::CheckNonNegative;
using params_check::CheckNotNull;

absl::Status CheckDecodeAttentionParams(const DecodeAttentionParams& p) {
  constexpr absl::string_view kOp = "DecodeAttention";
  RETURN_IF_ERROR(CheckElementType(kOp, "type", p.type));
  RETURN_IF_ERROR(CheckNonNegative(kOp, "batch", p.batch));
  RETURN_IF_ERROR(CheckAttentionShape(kOp, p));
  if (p.batch == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "q", p.q));
  RETURN_IF_ERROR(CheckNotNull(kOp, "k", p.k));
  RETURN_IF_ERROR(CheckNotNull(kOp, "v", p.v));
  RETURN_IF_ERROR(CheckNotNull(kOp, "kv_lens", p.kv_lens));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  return absl::OkStatus();
}

}  // namespace tessera
