// One-token Mamba-2 state update for decode, the recurrence itself: per head,
// each state row p depends only on x[p], so y may even alias x. A batch is
// the single update once per request, on that request's rows and state, so a
// batched call gives each request exactly what its own call gives.
#include "kernels/ssd_step.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cpu/kernel_util.h"

namespace tessera::cpu {
namespace {

// Updates one state row (N) with x_p and returns its readout state_row · C.
float StepStateRow(float decay, float dt_x, const float* b, const float* c, int64_t n,
                   float* state_row) {
  float readout = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    state_row[i] = decay * state_row[i] + dt_x * b[i];
    readout += state_row[i] * c[i];
  }
  return readout;
}

// Head h's step size from dt (H) of type Dt: as given, or DtSoftplus's.
template <typename Dt>
float StepSize(const SsdStepParams& p, const Dt* dt, int64_t h) {
  const float v = Widen(dt[h]);
  if (p.dt_bias == nullptr) return v;
  return std::clamp(Softplus(v + p.dt_bias[h]), p.dt_min, p.dt_max);
}

// One request: x, y (H, P), dt (H), B, C (G, N), state (H, P, N).
template <typename Dt>
void StepRequest(const SsdStepParams& p, const float* x, const Dt* dt, const float* B, const float* C,
                 float* state, float* y) {
  const int64_t n = p.state_size;
  const int64_t heads_per_group = p.num_heads / p.num_groups;
  for (int64_t h = 0; h < p.num_heads; ++h) {
    const int64_t g = h / heads_per_group;
    const float* b = B + g * n;  // (N)
    const float* c = C + g * n;  // (N)
    const float step = StepSize(p, dt, h);
    const float decay = std::exp(step * p.A[h]);
    const float skip = p.D == nullptr ? 0.0f : p.D[h];
    for (int64_t i = 0; i < p.head_dim; ++i) {
      const int64_t hp = h * p.head_dim + i;
      const float xv = x[hp];
      float* state_row = state + hp * n;  // (N)
      y[hp] = StepStateRow(decay, step * xv, b, c, n, state_row) + skip * xv;
    }
  }
}

}  // namespace

absl::Status SsdStep(const SsdStepParams& p) {
  RETURN_IF_ERROR(CheckSsdStepParams(p));
  const int64_t hp = p.num_heads * p.head_dim, gn = p.num_groups * p.state_size;
  const int64_t x_stride = StrideOr(p.x_stride, hp), dt_stride = StrideOr(p.dt_stride, p.num_heads);
  const int64_t b_stride = StrideOr(p.b_stride, gn), c_stride = StrideOr(p.c_stride, gn);
  const int64_t y_stride = StrideOr(p.y_stride, hp);
  for (int64_t r = 0; p.states != nullptr && r < p.batch; ++r) {
    if (p.states[r] == nullptr) {
      return params_check::ParamError("SsdStep", absl::StrCat("states[", r, "] must not be null"));
    }
  }
  WithHostType(p.dt_type, [&](auto dt_element) {
    using Dt = decltype(dt_element);
    for (int64_t r = 0; r < p.batch; ++r) {
      float* state = p.states == nullptr ? p.state : p.states[r];  // (H, P, N)
      StepRequest(p, p.x + r * x_stride, static_cast<const Dt*>(p.dt) + r * dt_stride, p.B + r * b_stride,
                  p.C + r * c_stride, state, p.y + r * y_stride);
    }
  });
  return absl::OkStatus();
}

}  // namespace tessera::cpu
