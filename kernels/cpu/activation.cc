// Elementwise MLP activations: one pass per element, so out may alias an input
// read at the same index (the header's aliasing rules follow from that).
#include "kernels/activation.h"

#include "common/status_macros.h"
#include "kernels/cpu/kernel_util.h"

namespace tessera::cpu {

absl::Status SiluMul(const SiluMulParams& p) {
  RETURN_IF_ERROR(CheckSiluMulParams(p));
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
  RETURN_IF_ERROR(CheckReluSquaredParams(p));
  for (int64_t i = 0; i < p.count; ++i) {
    const float positive = p.x[i] > 0.0f ? p.x[i] : 0.0f;
    p.out[i] = positive * positive;
  }
  return absl::OkStatus();
}

}  // namespace tessera::cpu
