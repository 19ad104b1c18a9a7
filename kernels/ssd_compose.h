// The initial state of one shard of a context-parallel SSD layer, composed
// from every earlier shard's summary (DESIGN.md, "SSD across shards"):
//   h_in(0) = initial_state (or 0),
//   h_in(r) = exp(log Λ_{r-1}) · h_in(r-1) + S_{r-1},
// and the op returns h_in(ranks_before). Each shard scanned from a zero state
// (SsdScan), its summary is its log_decay (log Λ) and final_state (S), and the
// workers all-gather the summaries laid out per shard as [log Λ (H) | S (H, P, N)].
// The fold is sequential over shards per state element, in fp32.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda_stream.h"

namespace tessera {

struct SsdComposeParams {
  int64_t ranks_before = 0;  // summaries of shards 0..ranks_before-1 are read (may be 0)
  int64_t num_heads = 0;     // H
  int64_t per_head = 0;      // P·N
  // (>= ranks_before, H + H·P·N): per shard [log Λ (H) | S (H, P, N)]; may be
  // null when ranks_before is 0
  const float* summaries = nullptr;
  const float* initial_state = nullptr;  // (H, P, N) h_in of shard 0, or null for zeros
  float* h_in = nullptr;                 // (H, P, N) h_in(ranks_before); may alias initial_state
};

// The contract's checks (kernels/ssd_compose.cc), which every backend runs first:
// OK or INVALID_ARGUMENT "SsdComposeInitialState: <what>" naming the field and the value given.
absl::Status CheckSsdComposeParams(const SsdComposeParams& p);

namespace cpu {
absl::Status SsdComposeInitialState(const SsdComposeParams& p);
}  // namespace cpu

// The same op on device pointers, enqueued on `stream` (all pointers device memory).
namespace cuda {
absl::Status SsdComposeInitialState(const SsdComposeParams& p, CudaStream stream);
}  // namespace cuda

}  // namespace tessera
