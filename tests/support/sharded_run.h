// One prompt run the way a cluster runs it, inside one process: W shards as
// threads over one Engine, exchanging through an in-process peer group, then
// greedy decode on the last shard with split-KV attention over the others'
// K/V (answered in process as AttendKv would be). What the context-parallel
// tests of every backend compare with the whole-sequence run.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "tools/reference_eval.h"
#include "worker/engine.h"

namespace tessera::testing {

// `bounds` (W + 1): shard r holds prompt[bounds[r], bounds[r+1]). Returns the
// prompt logits of all shards in order, `steps` greedy tokens and their logits.
absl::StatusOr<GreedyRun> RunShardedGreedy(Engine& engine, absl::Span<const int32_t> prompt,
                                           const std::vector<int64_t>& bounds, int steps);
// The same over any dealing of the prompt's pieces to ranks (shard_context.h:
// contiguous or zigzag); the prompt logits come back in order of position and
// decode runs on the rank that holds the prompt's end.
absl::StatusOr<GreedyRun> RunShardedGreedy(Engine& engine, absl::Span<const int32_t> prompt,
                                           const std::vector<ShardPiece>& pieces, int steps);

}  // namespace tessera::testing
