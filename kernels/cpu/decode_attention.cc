// Decode attention over a batch, request by request: each request's row is
// cpu::Attention with q_len 1 over its own K/V (not causal: the row sees all
// kv_lens[r] keys), so a batched call gives each request exactly what the
// single-request op gives. fp32 only, as cpu::Attention. The lengths are host
// memory here, so a negative one is refused (INVALID_ARGUMENT) before any
// output is written.
#include "kernels/decode_attention.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/attention.h"
#include "kernels/cpu/kernel_util.h"

namespace tessera::cpu {

absl::Status DecodeAttention(const DecodeAttentionParams& p) {
  RETURN_IF_ERROR(CheckDecodeAttentionParams(p));
  RETURN_IF_ERROR(RequireF32Operands("DecodeAttention", p.type));
  for (int64_t r = 0; r < p.batch; ++r) {
    if (p.kv_lens[r] < 0) {
      return params_check::ParamError(
          "DecodeAttention", absl::StrCat("kv_lens[", r, "] must be >= 0. Given: ", p.kv_lens[r]));
    }
    if (p.kv_lens[r] > 0 && (p.k[r] == nullptr || p.v[r] == nullptr)) {
      return params_check::ParamError("DecodeAttention",
                                      absl::StrCat("k[", r, "] and v[", r, "] must not be null"));
    }
  }
  const int64_t q_stride = StrideOr(p.q_stride, p.num_q_heads * p.head_dim);
  for (int64_t r = 0; r < p.batch; ++r) {
    AttentionParams one;
    one.q_len = 1;
    one.kv_len = p.kv_lens[r];
    one.num_q_heads = p.num_q_heads;
    one.num_kv_heads = p.num_kv_heads;
    one.head_dim = p.head_dim;
    one.type = p.type;
    one.q = static_cast<const float*>(p.q) + r * q_stride;
    one.k = p.k[r];
    one.k_stride = p.k_stride;
    one.v = p.v[r];
    one.v_stride = p.v_stride;
    one.causal = false;
    one.scale = p.scale;
    one.out = p.out + r * p.num_q_heads * p.head_dim;
    one.lse = p.lse == nullptr ? nullptr : p.lse + r * p.num_q_heads;
    RETURN_IF_ERROR(Attention(one));
  }
  return absl::OkStatus();
}

}  // namespace tessera::cpu
