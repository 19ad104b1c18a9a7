// Elementwise MLP activations: one pass per element, so out may alias an input
// read at the same index (the header's aliasing rules follow from that).
#include "kernels/activation.h"

#include "common/status_macros.h"
#include "kernels/cpu/kernel_util.h"

namespace tessera::cpu {
namespace {

template <typename T>
void SiluMulRows(const SiluMulParams& p) {
  const int64_t gate_stride = StrideOr(p.gate_stride, p.width);
  const int64_t up_stride = StrideOr(p.up_stride, p.width);
  const int64_t out_stride = StrideOr(p.out_stride, p.width);
  for (int64_t r = 0; r < p.rows; ++r) {
    const T* gate = static_cast<const T*>(p.gate) + r * gate_stride;  // (width)
    const T* up = static_cast<const T*>(p.up) + r * up_stride;        // (width)
    T* out = static_cast<T*>(p.out) + r * out_stride;                 // (width)
    for (int64_t c = 0; c < p.width; ++c) out[c] = Narrow<T>(Silu(Widen(gate[c])) * Widen(up[c]));
  }
}

template <typename T>
void ReluSquaredElements(const ReluSquaredParams& p) {
  const T* x = static_cast<const T*>(p.x);  // (count)
  T* out = static_cast<T*>(p.out);          // (count)
  for (int64_t i = 0; i < p.count; ++i) {
    const float v = Widen(x[i]);
    const float positive = v > 0.0f ? v : 0.0f;
    out[i] = Narrow<T>(positive * positive);
  }
}

}  // namespace

absl::Status SiluMul(const SiluMulParams& p) {
  RETURN_IF_ERROR(CheckSiluMulParams(p));
  WithHostType(p.type, [&](auto t) { SiluMulRows<decltype(t)>(p); });
  return absl::OkStatus();
}

absl::Status ReluSquared(const ReluSquaredParams& p) {
  RETURN_IF_ERROR(CheckReluSquaredParams(p));
  WithHostType(p.type, [&](auto t) { ReluSquaredElements<decltype(t)>(p); });
  return absl::OkStatus();
}

}  // namespace tessera::cpu
