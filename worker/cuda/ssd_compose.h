// The one step of context-parallel SSD that is not an op of its own: a
// shard's true initial state from every earlier shard's summary,
//   h_in(r) = Λ_{r-1} h_in(r-1) + S_{r-1},  h_in(0) = 0,
// where the all-gathered summaries are laid out per rank as
// [log Λ (H) | S (H, P, N)] (DESIGN.md, "SSD across shards").
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace tessera::cuda_engine {

// summaries: (ranks_before or more, H + H·P·N) fp32; h_in: (H, P, N) fp32.
cudaError_t ComposeInitialState(const float* summaries, int ranks_before, int64_t num_heads,
                                int64_t per_head, float* h_in, cudaStream_t stream);

}  // namespace tessera::cuda_engine
