// The checks of the SsdScan and SsdAddInitialState contracts
// (kernels/ssd_scan.h), one copy that every backend runs before it touches
// memory, so a bad request gets the same INVALID_ARGUMENT message whichever
// backend runs it. A backend's own limits (the CPU's fp32-only operands, the
// CUDA bf16 kernel's largest state_size) are UNIMPLEMENTED, asked after these.
#include "kernels/ssd_scan.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "kernels/params_check_util.h"

namespace tessera {

using params_check::CheckDivides;
using params_check::CheckElementType;
using params_check::CheckFitsBlasInt;
using params_check::CheckNonNegative;
using params_check::CheckNotNull;
using params_check::CheckPositive;
using params_check::CheckRowStride;
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

absl::Status CheckSsdScanParams(const SsdScanParams& p) {
  constexpr absl::string_view kOp = "SsdScan";
  RETURN_IF_ERROR(CheckElementType(kOp, "type", p.type));
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

}  // namespace tessera
