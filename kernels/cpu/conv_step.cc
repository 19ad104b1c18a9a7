// One-token conv update over a batch: each request is CausalConv1d with
// seq_len 1 on its own state (state_out aliasing state_in), the reference
// that the prefill path already trusts, so a batched call gives each request
// exactly what its own one-token call gives.
#include "kernels/conv_step.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/causal_conv1d.h"
#include "kernels/cpu/kernel_util.h"

namespace tessera::cpu {

absl::Status ConvStep(const ConvStepParams& p) {
  RETURN_IF_ERROR(CheckConvStepParams(p));
  const bool has_state = p.kernel_width > 1;
  for (int64_t r = 0; has_state && r < p.batch; ++r) {
    if (p.states[r] == nullptr) {
      return params_check::ParamError("ConvStep", absl::StrCat("states[", r, "] must not be null"));
    }
  }
  const int64_t x_stride = StrideOr(p.x_stride, p.channels);
  const int64_t out_stride = StrideOr(p.out_stride, p.channels);
  for (int64_t r = 0; r < p.batch; ++r) {
    CausalConv1dParams one;
    one.seq_len = 1;
    one.channels = p.channels;
    one.kernel_width = p.kernel_width;
    one.x = static_cast<const char*>(p.x) + r * x_stride * ElementBytes(p.x_type);
    one.weight = p.weight;
    one.bias = p.bias;
    one.state_in = has_state ? p.states[r] : nullptr;
    one.out = static_cast<char*>(p.out) + r * out_stride * ElementBytes(p.out_type);
    one.state_out = has_state ? p.states[r] : nullptr;
    one.x_type = p.x_type;
    one.out_type = p.out_type;
    RETURN_IF_ERROR(CausalConv1d(one));
  }
  return absl::OkStatus();
}

}  // namespace tessera::cpu
