// Elementwise MLP activations: one pass per element, so out may alias an input
// read at the same index (the header's aliasing rules follow from that).
#include "kernels/activation.h"

#include "common/status_macros.h"
#include "kernels/cpu/kernel_util.h"

namespace tessera::cpu {
namespace {

absl::Status ValidateSiluMul(const SiluMulParams& p) {
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

}  // namespace

absl::Status SiluMul(const SiluMulParams& p) {
  RETURN_IF_ERROR(ValidateSiluMul(p));
  const int64_t gate_stride = StrideOr(p.gate_stride, p.width);
  const int64_t up_stride = StrideOr(p.up_stride, p.width);
  for (int64_t r = 0; r < p.rows; ++r) {
    const float* gate = p.gate + r * gate_stride;  // (width)
    const float* up = p.up + r * up_stride;        // (width)
    float* out = p.out + r * p.width;              // (width)
    for (int64_t c = 0; c < p.width; ++c) out[c] = Silu(gate[c]) * up[c];
  }
  return absl::OkStatus();
}

absl::Status ReluSquared(const ReluSquaredParams& p) {
  constexpr absl::string_view kOp = "ReluSquared";
  RETURN_IF_ERROR(CheckNonNegative(kOp, "count", p.count));
  if (p.count == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CheckNotNull(kOp, "x", p.x));
  RETURN_IF_ERROR(CheckNotNull(kOp, "out", p.out));
  for (int64_t i = 0; i < p.count; ++i) {
    const float positive = p.x[i] > 0.0f ? p.x[i] : 0.0f;
    p.out[i] = positive * positive;
  }
  return absl::OkStatus();
}

}  // namespace tessera::cpu
