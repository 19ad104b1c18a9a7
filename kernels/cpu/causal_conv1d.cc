// Causal depthwise conv1d + SiLU over [state_in ; x]. The next state is built
// in scratch from the inputs before anything is stored, so state_out may alias
// state_in, and any L (0, shorter than K-1, long) shifts the window correctly.
#include "kernels/causal_conv1d.h"

#include <algorithm>
#include <vector>

#include "common/status_macros.h"
#include "kernels/cpu/kernel_util.h"

namespace tessera::cpu {
namespace {

// Row `row` of xpad = [state_in (K-1 rows) ; x (L rows)], or null for a zero row.
const float* PaddedRow(const CausalConv1dParams& p, int64_t x_stride, int64_t row) {
  const int64_t state_rows = p.kernel_width - 1;
  if (row >= state_rows) return p.x + (row - state_rows) * x_stride;
  return p.state_in == nullptr ? nullptr : p.state_in + row * p.channels;
}

void ConvolveRows(const CausalConv1dParams& p, int64_t x_stride) {
  const int64_t channels = p.channels;
  const int64_t width = p.kernel_width;
  for (int64_t t = 0; t < p.seq_len; ++t) {
    float* out = p.out + t * channels;  // (C) accumulates the pre-activation
    for (int64_t c = 0; c < channels; ++c) out[c] = p.bias == nullptr ? 0.0f : p.bias[c];
    for (int64_t k = 0; k < width; ++k) {
      const float* in = PaddedRow(p, x_stride, t + k);  // (C) or null for zeros
      if (in == nullptr) continue;
      for (int64_t c = 0; c < channels; ++c) out[c] += p.weight[c * width + k] * in[c];
    }
    for (int64_t c = 0; c < channels; ++c) out[c] = Silu(out[c]);
  }
}

// state_out = the last K-1 rows of xpad.
void ShiftState(const CausalConv1dParams& p, int64_t x_stride) {
  const int64_t state_rows = p.kernel_width - 1;
  std::vector<float> next(state_rows * p.channels, 0.0f);  // (K-1, C)
  for (int64_t r = 0; r < state_rows; ++r) {
    const float* in = PaddedRow(p, x_stride, p.seq_len + r);  // (C) or null for zeros
    if (in != nullptr) std::copy(in, in + p.channels, next.begin() + r * p.channels);
  }
  std::copy(next.begin(), next.end(), p.state_out);
}

}  // namespace

absl::Status CausalConv1d(const CausalConv1dParams& p) {
  RETURN_IF_ERROR(CheckCausalConv1dParams(p));
  const int64_t x_stride = StrideOr(p.x_stride, p.channels);
  ConvolveRows(p, x_stride);
  if (p.state_out != nullptr) ShiftState(p, x_stride);
  return absl::OkStatus();
}

}  // namespace tessera::cpu
