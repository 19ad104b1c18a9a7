// How a prompt is cut into contiguous shards, one per worker. Boundaries fall
// on SSD chunk multiples whenever there are at least as many chunks as shards
// (each worker then runs whole chunks); otherwise tokens are split evenly. The
// math is exact for any cut: alignment is for speed, not correctness.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace tessera {

// Returns num_shards + 1 boundaries: shard r holds [bounds[r], bounds[r+1]),
// each non-empty. Requires 1 <= num_shards <= prompt_tokens.
absl::StatusOr<std::vector<int64_t>> PlanShardBounds(int64_t prompt_tokens, int64_t chunk_size, int num_shards);

// How many shards a prompt should use: enough that each shard has at least
// `min_shard_tokens` (short prompts use fewer workers), at most `workers`.
int ChooseShardCount(int64_t prompt_tokens, int workers, int64_t min_shard_tokens);

}  // namespace tessera
