// Gated RMSNorm of the Mamba-2 mixer, in the order transformers computes it:
// g = y · silu(z), then weight · (g · rsqrt(mean_group(g²) + eps)), z widened
// from and out rounded to the storage type. Each row's g is formed in scratch
// before the row is written, so out may alias y or z.
#include "kernels/gated_rms_norm.h"

#include <cmath>
#include <vector>

#include "common/status_macros.h"
#include "kernels/cpu/kernel_util.h"

namespace tessera::cpu {
namespace {

// Normalizes one group of `size` gated values in place, then applies weight.
void NormalizeGroup(float* gated, const float* weight, int64_t size, float eps) {
  float sum_squares = 0.0f;
  for (int64_t c = 0; c < size; ++c) sum_squares += gated[c] * gated[c];
  const float inv_rms = 1.0f / std::sqrt(sum_squares / static_cast<float>(size) + eps);
  for (int64_t c = 0; c < size; ++c) gated[c] = weight[c] * (gated[c] * inv_rms);
}

template <typename T>
void NormalizeRows(const GatedRmsNormParams& p) {
  const int64_t y_stride = StrideOr(p.y_stride, p.width);
  const int64_t z_stride = StrideOr(p.z_stride, p.width);
  const int64_t out_stride = StrideOr(p.out_stride, p.width);
  std::vector<float> gated(p.width);  // (width) one row of y · silu(z)
  for (int64_t r = 0; r < p.rows; ++r) {
    const float* y = p.y + r * y_stride;                       // (width)
    const T* z = static_cast<const T*>(p.z) + r * z_stride;  // (width)
    for (int64_t c = 0; c < p.width; ++c) gated[c] = y[c] * Silu(Widen(z[c]));
    for (int64_t g0 = 0; g0 < p.width; g0 += p.group_size) {
      NormalizeGroup(gated.data() + g0, p.weight + g0, p.group_size, p.eps);
    }
    T* out = static_cast<T*>(p.out) + r * out_stride;  // (width)
    for (int64_t c = 0; c < p.width; ++c) out[c] = Narrow<T>(gated[c]);
  }
}

}  // namespace

absl::Status GatedRmsNorm(const GatedRmsNormParams& p) {
  RETURN_IF_ERROR(CheckGatedRmsNormParams(p));
  WithHostType(p.type, [&](auto t) { NormalizeRows<decltype(t)>(p); });
  return absl::OkStatus();
}

}  // namespace tessera::cpu
