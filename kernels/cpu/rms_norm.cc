// RMSNorm in fp32, in the order Hugging Face computes it:
// weight · (x · rsqrt(mean(x²) + eps)), rounded once into a bf16 out. One row
// at a time, so out may alias x.
#include "kernels/rms_norm.h"

#include <cmath>

#include "common/status_macros.h"
#include "kernels/cpu/kernel_util.h"

namespace tessera::cpu {
namespace {

template <typename Out>
void NormalizeRows(const RmsNormParams& p) {
  const int64_t x_stride = StrideOr(p.x_stride, p.width);
  for (int64_t r = 0; r < p.rows; ++r) {
    const float* x = p.x + r * x_stride;                  // (width)
    Out* out = static_cast<Out*>(p.out) + r * p.width;  // (width)
    float sum_squares = 0.0f;
    for (int64_t c = 0; c < p.width; ++c) sum_squares += x[c] * x[c];
    const float inv_rms = 1.0f / std::sqrt(sum_squares / static_cast<float>(p.width) + p.eps);
    for (int64_t c = 0; c < p.width; ++c) out[c] = Narrow<Out>(p.weight[c] * (x[c] * inv_rms));
  }
}

}  // namespace

absl::Status RmsNorm(const RmsNormParams& p) {
  RETURN_IF_ERROR(CheckRmsNormParams(p));
  WithHostType(p.out_type, [&](auto out) { NormalizeRows<decltype(out)>(p); });
  return absl::OkStatus();
}

}  // namespace tessera::cpu
