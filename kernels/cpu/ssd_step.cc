// One-token Mamba-2 state update for decode, the recurrence itself: per head,
// each state row p depends only on x[p], so y may even alias x.
#include "kernels/ssd_step.h"

#include <cmath>

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

}  // namespace

absl::Status SsdStep(const SsdStepParams& p) {
  RETURN_IF_ERROR(CheckSsdStepParams(p));
  const int64_t n = p.state_size;
  const int64_t heads_per_group = p.num_heads / p.num_groups;
  for (int64_t h = 0; h < p.num_heads; ++h) {
    const int64_t g = h / heads_per_group;
    const float* b = p.B + g * n;  // (N)
    const float* c = p.C + g * n;  // (N)
    const float decay = std::exp(p.dt[h] * p.A[h]);
    const float skip = p.D == nullptr ? 0.0f : p.D[h];
    for (int64_t i = 0; i < p.head_dim; ++i) {
      const int64_t hp = h * p.head_dim + i;
      const float x = p.x[hp];
      float* state_row = p.state + hp * n;  // (N)
      p.y[hp] = StepStateRow(decay, p.dt[h] * x, b, c, n, state_row) + skip * x;
    }
  }
  return absl::OkStatus();
}

}  // namespace tessera::cpu
