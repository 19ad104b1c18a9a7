// Causal depthwise conv1d + SiLU over [state_in ; x]. Each output row is
// summed in an fp32 scratch row (bias, then tap by tap in k order) and rounded
// into out's type once. The next state is built in scratch from the inputs
// before anything is stored, so state_out may alias state_in, and any L (0,
// shorter than K-1, long) shifts the window correctly. x and out dispatch on
// their types once (WithHostType).
#include "kernels/causal_conv1d.h"

#include <algorithm>
#include <type_traits>
#include <vector>

#include "common/status_macros.h"
#include "kernels/cpu/kernel_util.h"

namespace tessera::cpu {
namespace {

// Row `row` of xpad = [state_in (K-1 rows) ; x (L rows)] as fp32 (C): the
// row itself, or (bf16 x) its widened copy in `scratch` (C); null for a zero
// row (state_in null).
template <typename In>
const float* PaddedRow(const CausalConv1dParams& p, int64_t x_stride, int64_t row, float* scratch) {
  const int64_t state_rows = p.kernel_width - 1;
  if (row < state_rows) return p.state_in == nullptr ? nullptr : p.state_in + row * p.channels;
  const In* in = static_cast<const In*>(p.x) + (row - state_rows) * x_stride;  // (C)
  if constexpr (std::is_same_v<In, float>) {
    return in;
  } else {
    for (int64_t c = 0; c < p.channels; ++c) scratch[c] = Widen(in[c]);
    return scratch;
  }
}

template <typename In, typename Out>
void ConvolveRows(const CausalConv1dParams& p, int64_t x_stride) {
  const int64_t channels = p.channels;
  const int64_t width = p.kernel_width;
  std::vector<float> acc(channels), scratch(channels);  // (C) the pre-activation, (C) a widened row
  for (int64_t t = 0; t < p.seq_len; ++t) {
    for (int64_t c = 0; c < channels; ++c) acc[c] = p.bias == nullptr ? 0.0f : p.bias[c];
    for (int64_t k = 0; k < width; ++k) {
      const float* in = PaddedRow<In>(p, x_stride, t + k, scratch.data());  // (C) or null for zeros
      if (in == nullptr) continue;
      for (int64_t c = 0; c < channels; ++c) acc[c] += p.weight[c * width + k] * in[c];
    }
    Out* out = static_cast<Out*>(p.out) + t * channels;  // (C)
    for (int64_t c = 0; c < channels; ++c) out[c] = Narrow<Out>(Silu(acc[c]));
  }
}

// state_out = the last K-1 rows of xpad.
template <typename In>
void ShiftState(const CausalConv1dParams& p, int64_t x_stride) {
  const int64_t state_rows = p.kernel_width - 1;
  std::vector<float> next(state_rows * p.channels, 0.0f);  // (K-1, C)
  std::vector<float> scratch(p.channels);                  // (C) a widened row
  for (int64_t r = 0; r < state_rows; ++r) {
    const float* in = PaddedRow<In>(p, x_stride, p.seq_len + r, scratch.data());  // (C) or null for zeros
    if (in != nullptr) std::copy(in, in + p.channels, next.begin() + r * p.channels);
  }
  std::copy(next.begin(), next.end(), p.state_out);
}

}  // namespace

absl::Status CausalConv1d(const CausalConv1dParams& p) {
  RETURN_IF_ERROR(CheckCausalConv1dParams(p));
  const int64_t x_stride = StrideOr(p.x_stride, p.channels);
  WithHostType(p.x_type, [&](auto x) {
    using In = decltype(x);
    WithHostType(p.out_type, [&](auto out) { ConvolveRows<In, decltype(out)>(p, x_stride); });
    if (p.state_out != nullptr) ShiftState<In>(p, x_stride);
  });
  return absl::OkStatus();
}

}  // namespace tessera::cpu
