// The initial-state fold of context-parallel SSD, per head: h = initial (or 0),
// then for each earlier shard h = exp(log Λ_h) · h + S_h, in fp32 and in rank
// order. Each element is read before it is written, so h_in may alias
// initial_state.
#include "kernels/ssd_compose.h"

#include <cmath>

#include "common/status_macros.h"

namespace tessera::cpu {

absl::Status SsdComposeInitialState(const SsdComposeParams& p) {
  RETURN_IF_ERROR(CheckSsdComposeParams(p));
  const int64_t summary_floats = p.num_heads + p.num_heads * p.per_head;  // one shard's summary
  for (int64_t h = 0; h < p.num_heads; ++h) {
    float* out = p.h_in + h * p.per_head;  // (P·N)
    const float* initial = p.initial_state == nullptr ? nullptr : p.initial_state + h * p.per_head;
    for (int64_t i = 0; i < p.per_head; ++i) out[i] = initial == nullptr ? 0.0f : initial[i];
    for (int64_t r = 0; r < p.ranks_before; ++r) {
      const float* summary = p.summaries + r * summary_floats;  // [log Λ (H) | S (H, P, N)]
      const float decay = std::exp(summary[h]);
      const float* s = summary + p.num_heads + h * p.per_head;  // (P·N)
      for (int64_t i = 0; i < p.per_head; ++i) out[i] = decay * out[i] + s[i];
    }
  }
  return absl::OkStatus();
}

}  // namespace tessera::cpu
