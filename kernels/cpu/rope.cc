// Rotary embedding in the rotate-half layout. The phase is formed in fp32 the
// way transformers forms it (fp32 inv_freq times fp32 position), so long
// positions round exactly as the Hugging Face reference does.
#include "kernels/rope.h"

#include <cmath>
#include <vector>

#include "common/status_macros.h"
#include "kernels/cpu/kernel_util.h"

namespace tessera::cpu {
namespace {

template <typename T>
void RotateTokens(const RopeParams& p) {
  const int64_t x_stride = StrideOr(p.x_stride, p.num_heads * p.head_dim);
  const int64_t half = p.rotary_dim / 2;
  const std::vector<float> inv_freq = RopeInverseFrequencies(p.theta, p.rotary_dim);
  std::vector<float> cos_phi(half), sin_phi(half);  // (rotary_dim / 2) for one token
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    const float position = static_cast<float>(p.position0 + t);
    for (int64_t i = 0; i < half; ++i) {
      const float phi = position * inv_freq[i];
      cos_phi[i] = std::cos(phi);
      sin_phi[i] = std::sin(phi);
    }
    for (int64_t h = 0; h < p.num_heads; ++h) {
      T* x = static_cast<T*>(p.x) + t * x_stride + h * p.head_dim;  // (head_dim)
      for (int64_t i = 0; i < half; ++i) {
        const float first = Widen(x[i]);
        const float second = Widen(x[i + half]);
        x[i] = Narrow<T>(first * cos_phi[i] - second * sin_phi[i]);
        x[i + half] = Narrow<T>(second * cos_phi[i] + first * sin_phi[i]);
      }
    }
  }
}

}  // namespace

absl::Status Rope(const RopeParams& p) {
  RETURN_IF_ERROR(CheckRopeParams(p));
  WithHostType(p.type, [&](auto t) { RotateTokens<decltype(t)>(p); });
  return absl::OkStatus();
}

}  // namespace tessera::cpu
