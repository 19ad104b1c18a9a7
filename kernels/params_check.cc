// The parameter checks of kernels/params_check.h, moved here from the CPU
// reference kernels so that every backend runs the same ones.
#include "kernels/params_check.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "kernels/params_check_util.h"

namespace tessera {

using params_check::CheckDivides;
using params_check::CheckFitsBlasInt;
using params_check::CheckNonNegative;
using params_check::CheckNotNull;
using params_check::CheckPositive;
using params_check::CheckRowStride;
using params_check::ParamError;
using params_check::StrideOr;

namespace {

// The sizes SsdScan and SsdAddInitialState share.
absl::Status CheckSsdShape(absl::string_view op, int64_t seq_len, int64_t heads, int64_t head_dim,
                           int64_t groups, int64_t state_size, int64_t dt_stride,
                           int64_t c_stride) {
  RETURN_IF_ERROR(CheckNonNegative(op, "seq_len", seq_len));
  RETURN_IF_ERROR(CheckPositive(op, "num_heads", heads));
  RETURN_IF_ERROR(CheckPositive(op, "head_dim", head_dim));
  RETURN_IF_ERROR(CheckPositive(op, "num_groups", groups));
  RETURN_IF_ERROR(CheckDivides(op, "num_groups", groups, "num_heads", heads));
  RETURN_IF_ERROR(CheckPositive(op, "state_size", state_size));
  RETURN_IF_ERROR(CheckRowStride(op, "dt_stride", dt_stride, heads));
  RETURN_IF_ERROR(CheckRowStride(op, "c_stride", c_stride, groups * state_size));
  RETURN_IF_ERROR(CheckFitsBlasInt(op, "num_heads * head_dim", heads * head_dim));
  RETURN_IF_ERROR(CheckFitsBlasInt(op, "c_stride", StrideOr(c_stride, groups * state_size)));
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckLinearParams(const LinearParams& p, absl::string_view kOp) {
  RETURN_IF_ERROR(CheckNonNegative(kOp, "rows", p.rows));
  RETURN_IF_ERROR(CheckPositive(kOp, "in_features", p.in_features));
  RETURN_IF_ERROR(CheckPositive(kOp, "out_features", p.out_features));
  RETURN_IF_ERROR(CheckRowStride(kOp, "x_stride", p.x_stride, p.in_features));
  RETURN_IF_ERROR(CheckRowStride(kOp, "y_stride", p.y_stride, p.out_features));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "rows", p.rows));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "in_features", p.in_features));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "out_features", p.out_features));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "x_stride", p.x_stride));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "y_stride", p.y_stride));
  if (p.rows == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "x", p.x));
  RETURN_IF_ERROR(CheckNotNull(kOp, "weight", p.weight));
  RETURN_IF_ERROR(CheckNotNull(kOp, "y", p.y));
  return absl::OkStatus();
}

absl::Status CheckEmbeddingParams(const EmbeddingParams& p) {
  constexpr absl::string_view kOp = "Embedding";
  RETURN_IF_ERROR(CheckNonNegative(kOp, "num_tokens", p.num_tokens));
  RETURN_IF_ERROR(CheckPositive(kOp, "vocab_size", p.vocab_size));
  RETURN_IF_ERROR(CheckPositive(kOp, "hidden", p.hidden));
  if (p.num_tokens == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "ids", p.ids));
  RETURN_IF_ERROR(CheckNotNull(kOp, "table", p.table));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  return absl::OkStatus();
}

absl::Status CheckEmbeddingTokenIds(const int32_t* ids, int64_t num_tokens, int64_t vocab_size) {
  constexpr absl::string_view kOp = "Embedding";
  for (int64_t t = 0; t < num_tokens; ++t) {
    const int32_t id = ids[t];
    if (id < 0 || id >= vocab_size) {
      return ParamError(kOp, absl::StrCat("token id ", id, " at position ", t,
                                          " is outside the vocabulary [0, ", vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckRmsNormParams(const RmsNormParams& p) {
  constexpr absl::string_view kOp = "RmsNorm";
  RETURN_IF_ERROR(CheckNonNegative(kOp, "rows", p.rows));
  RETURN_IF_ERROR(CheckPositive(kOp, "width", p.width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "x_stride", p.x_stride, p.width));
  if (!(p.eps >= 0.0f) || std::isinf(p.eps)) {
    return ParamError(kOp, absl::StrCat("eps must be finite and >= 0. Given: ", p.eps));
  }
  if (p.rows == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "x", p.x));
  RETURN_IF_ERROR(CheckNotNull(kOp, "weight", p.weight));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  if (p.out == p.x && StrideOr(p.x_stride, p.width) != p.width) {
    return ParamError(kOp, "out may alias x only when x_stride == width");
  }
  return absl::OkStatus();
}

absl::Status CheckGatedRmsNormParams(const GatedRmsNormParams& p) {
  constexpr absl::string_view kOp = "GatedRmsNorm";
  RETURN_IF_ERROR(CheckNonNegative(kOp, "rows", p.rows));
  RETURN_IF_ERROR(CheckPositive(kOp, "width", p.width));
  RETURN_IF_ERROR(CheckPositive(kOp, "group_size", p.group_size));
  RETURN_IF_ERROR(CheckDivides(kOp, "group_size", p.group_size, "width", p.width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "y_stride", p.y_stride, p.width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "z_stride", p.z_stride, p.width));
  if (!(p.eps >= 0.0f) || std::isinf(p.eps)) {
    return ParamError(kOp, absl::StrCat("eps must be finite and >= 0. Given: ", p.eps));
  }
  if (p.rows == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "y", p.y));
  RETURN_IF_ERROR(CheckNotNull(kOp, "z", p.z));
  RETURN_IF_ERROR(CheckNotNull(kOp, "weight", p.weight));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  if (p.out == p.y && StrideOr(p.y_stride, p.width) != p.width) {
    return ParamError(kOp, "out may alias y only when y_stride == width");
  }
  return absl::OkStatus();
}

absl::Status CheckDtSoftplusParams(const DtSoftplusParams& p) {
  constexpr absl::string_view kOp = "DtSoftplus";
  RETURN_IF_ERROR(CheckNonNegative(kOp, "rows", p.rows));
  RETURN_IF_ERROR(CheckPositive(kOp, "num_heads", p.num_heads));
  RETURN_IF_ERROR(CheckRowStride(kOp, "dt_stride", p.dt_stride, p.num_heads));
  if (std::isnan(p.dt_min) || std::isnan(p.dt_max) || p.dt_min > p.dt_max) {
    return ParamError(kOp, absl::StrCat("need dt_min <= dt_max. Given: dt_min ", p.dt_min,
                                        ", dt_max ", p.dt_max));
  }
  if (p.rows == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "dt_raw", p.dt_raw));
  RETURN_IF_ERROR(CheckNotNull(kOp, "dt_bias", p.dt_bias));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  return absl::OkStatus();
}

absl::Status CheckCausalConv1dParams(const CausalConv1dParams& p) {
  constexpr absl::string_view kOp = "CausalConv1d";
  RETURN_IF_ERROR(CheckNonNegative(kOp, "seq_len", p.seq_len));
  RETURN_IF_ERROR(CheckPositive(kOp, "channels", p.channels));
  RETURN_IF_ERROR(CheckPositive(kOp, "kernel_width", p.kernel_width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "x_stride", p.x_stride, p.channels));
  if (p.seq_len == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "x", p.x));
  RETURN_IF_ERROR(CheckNotNull(kOp, "weight", p.weight));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  return absl::OkStatus();
}

absl::Status CheckSsdScanParams(const SsdScanParams& p) {
  constexpr absl::string_view kOp = "SsdScan";
  RETURN_IF_ERROR(CheckSsdShape(kOp, p.seq_len, p.num_heads, p.head_dim, p.num_groups,
                                p.state_size, p.dt_stride, p.c_stride));
  RETURN_IF_ERROR(CheckPositive(kOp, "chunk_size", p.chunk_size));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "chunk_size", p.chunk_size));
  RETURN_IF_ERROR(CheckRowStride(kOp, "x_stride", p.x_stride, p.num_heads * p.head_dim));
  RETURN_IF_ERROR(CheckRowStride(kOp, "b_stride", p.b_stride, p.num_groups * p.state_size));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "x_stride", p.x_stride));
  RETURN_IF_ERROR(CheckFitsBlasInt(kOp, "b_stride",
                                   StrideOr(p.b_stride, p.num_groups * p.state_size)));
  if (p.seq_len == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "x", p.x));
  RETURN_IF_ERROR(CheckNotNull(kOp, "dt", p.dt));
  RETURN_IF_ERROR(CheckNotNull(kOp, "A", p.A));
  RETURN_IF_ERROR(CheckNotNull(kOp, "B", p.B));
  RETURN_IF_ERROR(CheckNotNull(kOp, "C", p.C));
  RETURN_IF_ERROR(CheckNotNull(kOp, "y", p.y));
  return absl::OkStatus();
}

absl::Status CheckSsdAddInitialStateParams(const SsdAddInitialStateParams& p) {
  constexpr absl::string_view kOp = "SsdAddInitialState";
  RETURN_IF_ERROR(CheckSsdShape(kOp, p.seq_len, p.num_heads, p.head_dim, p.num_groups,
                                p.state_size, p.dt_stride, p.c_stride));
  if (p.seq_len == 0 && p.final_state == nullptr) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "initial_state", p.initial_state));
  if (p.seq_len == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "dt", p.dt));
  RETURN_IF_ERROR(CheckNotNull(kOp, "A", p.A));
  RETURN_IF_ERROR(CheckNotNull(kOp, "C", p.C));
  RETURN_IF_ERROR(CheckNotNull(kOp, "y", p.y));
  return absl::OkStatus();
}

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

absl::Status CheckRopeParams(const RopeParams& p) {
  constexpr absl::string_view kOp = "Rope";
  RETURN_IF_ERROR(CheckNonNegative(kOp, "num_tokens", p.num_tokens));
  RETURN_IF_ERROR(CheckPositive(kOp, "num_heads", p.num_heads));
  RETURN_IF_ERROR(CheckPositive(kOp, "head_dim", p.head_dim));
  if (p.rotary_dim <= 0 || p.rotary_dim % 2 != 0 || p.rotary_dim > p.head_dim) {
    return ParamError(kOp, absl::StrCat("rotary_dim must be even, > 0 and <= head_dim (",
                                        p.head_dim, "). Given: ", p.rotary_dim));
  }
  if (!(p.theta > 0.0f) || std::isinf(p.theta)) {
    return ParamError(kOp, absl::StrCat("theta must be finite and > 0. Given: ", p.theta));
  }
  RETURN_IF_ERROR(CheckNonNegative(kOp, "position0", p.position0));
  RETURN_IF_ERROR(CheckRowStride(kOp, "x_stride", p.x_stride, p.num_heads * p.head_dim));
  if (p.num_tokens == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "x", p.x));
  return absl::OkStatus();
}

absl::Status CheckAttentionParams(const AttentionParams& p) {
  constexpr absl::string_view kOp = "Attention";
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

absl::Status CheckSiluMulParams(const SiluMulParams& p) {
  constexpr absl::string_view kOp = "SiluMul";
  RETURN_IF_ERROR(CheckNonNegative(kOp, "rows", p.rows));
  RETURN_IF_ERROR(CheckPositive(kOp, "width", p.width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "gate_stride", p.gate_stride, p.width));
  RETURN_IF_ERROR(CheckRowStride(kOp, "up_stride", p.up_stride, p.width));
  if (p.rows == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "gate", p.gate));
  RETURN_IF_ERROR(CheckNotNull(kOp, "up", p.up));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  if (p.out == p.gate && StrideOr(p.gate_stride, p.width) != p.width) {
    return ParamError(kOp, "out may alias gate only when gate_stride == width");
  }
  if (p.out == p.up && StrideOr(p.up_stride, p.width) != p.width) {
    return ParamError(kOp, "out may alias up only when up_stride == width");
  }
  return absl::OkStatus();
}

absl::Status CheckReluSquaredParams(const ReluSquaredParams& p) {
  constexpr absl::string_view kOp = "ReluSquared";
  RETURN_IF_ERROR(CheckNonNegative(kOp, "count", p.count));
  if (p.count == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "x", p.x));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  return absl::OkStatus();
}

}  // namespace tessera
