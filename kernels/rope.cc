// The checks of the Rope contract (kernels/rope.h), one copy that
// every backend runs before it touches memory, so a bad request gets the same
// INVALID_ARGUMENT message whichever backend runs it.
#include "kernels/rope.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "kernels/params_check_util.h"

namespace tessera {

using params_check::CheckElementType;
using params_check::CheckNonNegative;
using params_check::CheckNotNull;
using params_check::CheckPositive;
using params_check::CheckRowStride;
using params_check::ParamError;

absl::Status CheckRopeParams(const RopeParams& p) {
  constexpr absl::string_view kOp = "Rope";
  RETURN_IF_ERROR(CheckElementType(kOp, "type", p.type));
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

std::vector<float> RopeInverseFrequencies(float theta, int64_t rotary_dim) {
  std::vector<float> inv_freq(rotary_dim / 2);  // (rotary_dim / 2)
  for (int64_t i = 0; i < rotary_dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(rotary_dim);
    inv_freq[i] = 1.0f / std::pow(theta, exponent);
  }
  return inv_freq;
}

}  // namespace tessera
