// Mamba-2 step sizes, elementwise: softplus with torch's threshold of 20, then
// the time_step_limit clamp (dt_max may be +inf).
#include "kernels/dt_softplus.h"

#include <algorithm>
#include <cmath>

#include "common/status_macros.h"
#include "kernels/cpu/kernel_util.h"

namespace tessera::cpu {
namespace {

template <typename In>
void StepSizes(const DtSoftplusParams& p) {
  const int64_t dt_stride = StrideOr(p.dt_stride, p.num_heads);
  for (int64_t t = 0; t < p.rows; ++t) {
    const In* raw = static_cast<const In*>(p.dt_raw) + t * dt_stride;  // (H)
    float* out = p.out + t * p.num_heads;                               // (H)
    for (int64_t h = 0; h < p.num_heads; ++h) {
      out[h] = std::clamp(Softplus(Widen(raw[h]) + p.dt_bias[h]), p.dt_min, p.dt_max);
    }
  }
}

}  // namespace

absl::Status DtSoftplus(const DtSoftplusParams& p) {
  RETURN_IF_ERROR(CheckDtSoftplusParams(p));
  WithHostType(p.dt_raw_type, [&](auto raw) { StepSizes<decltype(raw)>(p); });
  return absl::OkStatus();
}

}  // namespace tessera::cpu
