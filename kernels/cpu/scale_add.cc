// One pass over the rows; the x term is left out entirely when x is null, so
// y = beta · y is exact for beta = 1.
#include "kernels/scale_add.h"

#include "common/status_macros.h"
#include "kernels/params_check_util.h"

namespace tessera::cpu {

absl::Status ScaleAdd(const ScaleAddParams& p) {
  RETURN_IF_ERROR(CheckScaleAddParams(p));
  const int64_t x_stride = params_check::StrideOr(p.x_stride, p.width);
  const int64_t y_stride = params_check::StrideOr(p.y_stride, p.width);
  for (int64_t r = 0; r < p.rows; ++r) {
    float* y = p.y + r * y_stride;  // (width)
    if (p.x == nullptr) {
      for (int64_t c = 0; c < p.width; ++c) y[c] = p.beta * y[c];
    } else {
      const float* x = p.x + r * x_stride;  // (width)
      for (int64_t c = 0; c < p.width; ++c) y[c] = p.beta * y[c] + p.alpha * x[c];
    }
  }
  return absl::OkStatus();
}

}  // namespace tessera::cpu
