// Expert by expert, in ascending index order: gather the rows routed to the
// expert, two matrix products through the reference Linear (BLAS), the
// activation, then each row weighted into y. Every id is checked before y is
// touched, so a bad id leaves it as it was.
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cpu/kernel_util.h"
#include "kernels/linear.h"
#include "kernels/moe_experts.h"

namespace tessera::cpu {

absl::Status MoeExperts(const MoeExpertsParams& p) {
  RETURN_IF_ERROR(CheckMoeExpertsParams(p));
  RETURN_IF_ERROR(RequireF32Operands("MoeExperts", p.type));
  const int64_t T = p.tokens, H = p.hidden, I = p.intermediate, k = p.top_k;
  const bool swiglu = p.activation == MoeExpertActivation::kSwiGluFused;
  const int64_t up_rows = swiglu ? 2 * I : I;
  const int64_t x_stride = StrideOr(p.x_stride, H);
  const int64_t y_stride = StrideOr(p.y_stride, H);
  for (int64_t i = 0; i < T * k; ++i) {
    if (p.expert_ids[i] < 0 || p.expert_ids[i] >= p.experts) {
      return absl::InvalidArgumentError(absl::StrCat("MoeExperts: expert_ids[", i / k, ", ", i % k,
                                                     "] must be in [0, ", p.experts, "). Given: ", p.expert_ids[i]));
    }
  }
  const float* x = static_cast<const float*>(p.x);
  const float* up = static_cast<const float*>(p.up);
  const float* down = static_cast<const float*>(p.down);
  std::vector<int64_t> rows;     // tokens routed to the expert
  std::vector<float> weights;    // their weights
  std::vector<float> gathered;   // (n, H)
  std::vector<float> inner;      // (n, up_rows)
  std::vector<float> act;        // (n, I)
  std::vector<float> out;        // (n, H)
  for (int64_t e = 0; e < p.experts; ++e) {
    rows.clear();
    weights.clear();
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t j = 0; j < k; ++j) {
        if (p.expert_ids[t * k + j] == e) {
          rows.push_back(t);
          weights.push_back(p.expert_weights[t * k + j]);
        }
      }
    }
    const int64_t n = static_cast<int64_t>(rows.size());
    if (n == 0) continue;
    gathered.resize(n * H);
    for (int64_t r = 0; r < n; ++r) std::copy(x + rows[r] * x_stride, x + rows[r] * x_stride + H, &gathered[r * H]);
    inner.resize(n * up_rows);
    LinearParams lp;
    lp.rows = n;
    lp.in_features = H;
    lp.out_features = up_rows;
    lp.x = gathered.data();
    lp.weight = up + e * up_rows * H;
    lp.y = inner.data();
    RETURN_IF_ERROR(Linear(lp));
    act.resize(n * I);
    for (int64_t r = 0; r < n; ++r) {
      const float* h = &inner[r * up_rows];
      for (int64_t c = 0; c < I; ++c) {
        if (swiglu) {
          act[r * I + c] = Silu(h[c]) * h[I + c];
        } else {
          const float positive = h[c] > 0.0f ? h[c] : 0.0f;
          act[r * I + c] = positive * positive;
        }
      }
    }
    out.resize(n * H);
    LinearParams dp;
    dp.rows = n;
    dp.in_features = I;
    dp.out_features = H;
    dp.x = act.data();
    dp.weight = down + e * H * I;
    dp.y = out.data();
    RETURN_IF_ERROR(Linear(dp));
    for (int64_t r = 0; r < n; ++r) {
      float* y = p.y + rows[r] * y_stride;
      for (int64_t c = 0; c < H; ++c) y[c] += weights[r] * out[r * H + c];
    }
  }
  return absl::OkStatus();
}

}  // namespace tessera::cpu
