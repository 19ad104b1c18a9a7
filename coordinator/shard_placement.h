// Where a request's shards go: how many, where they cut, which worker holds
// each. Pure (no locks, no network) so every admission rule is testable:
//
//  - n = ChooseShardCount(prompt, workers, min_shard_tokens), bounds from
//    PlanShardBounds (2n pieces dealt zigzag when asked and n > 1; n
//    contiguous runs otherwise); if some shard fits no free worker, try n+1 … workers,
//    then (when n > 1) one shard. A shard of a multi-shard plan runs one
//    prefill pass a round: the plan runs in the fewest rounds R (the same
//    for every shard) in which each shard's piece of a round fits its
//    worker's pass_tokens, R = max over shards of ceil(tokens / pass_tokens)
//    (common/striped_rounds.h), at most every chosen worker's max_rounds and
//    every shard's length; a zigzag plan runs in one round, so when some
//    shard of it does not fit a pass the count is planned contiguous in
//    rounds instead. One shard alone runs in pieces and needs only room.
//  - Each shard takes the least loaded free worker with room: fewest
//    running shards, then the smallest fraction of its capacity in use.
//    Ties between workers for a one-shard request go to the first in
//    rotation order (registration order starting at `rotation`, which the
//    registry advances per admission), so that equal workers take turns;
//    ties in a multi-shard request go by registration order, so that the
//    same workers keep the same ranks (an NCCL group is one ordered set of
//    workers, formed once and reused). The last shard also holds every generated token, so
//    its worker needs room for its prompt tokens + max_new_tokens; when that
//    fails, the last shard is placed first and the others fill in after.
//  - Outcome by status: no worker → UNAVAILABLE; would not fit even with every
//    worker empty → INVALID_ARGUMENT quoting the capacity; fits an empty
//    cluster but not what is free now → RESOURCE_EXHAUSTED ("momentarily full").
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace tessera {

struct WorkerRoom {
  int64_t capacity_tokens = 0;  // with the worker empty
  int64_t free_tokens = 0;      // now
  int32_t running_shards = 0;   // shards running on it now (its load)
  int64_t pass_tokens = INT64_MAX;  // longest piece of a multi-shard plan's round (prompt tokens: one pass)
  int32_t max_rounds = 1;           // most rounds it runs a shard of a multi-shard plan in
};

struct PlacementRequest {
  int64_t prompt_tokens = 0;
  int64_t max_new_tokens = 0;
  int64_t min_shard_tokens = 1;
  int64_t chunk_size = 1;
  uint64_t rotation = 0;  // which worker ties start from (taken modulo the workers)
  // Plans of several shards deal the prompt zigzag (2W pieces, shard r
  // holding pieces W-1-r and W+r: each shard the same causal attention work;
  // worker/shard_context.h) instead of in W contiguous runs. A count of
  // shards with fewer than two tokens a piece stays contiguous.
  bool zigzag = false;
};

struct ShardSlot {
  int worker = 0;           // index into the rooms given to PlaceShards
  int64_t token_begin = 0;  // global positions [token_begin, token_end)
  int64_t token_end = 0;
  int64_t late_begin = 0;   // a zigzag plan's second piece [late_begin, late_end); empty otherwise
  int64_t late_end = 0;
  int32_t prefill_rounds = 1;  // the plan's rounds (the same in every slot)
  int64_t tokens() const { return token_end - token_begin + late_end - late_begin; }
};

// Slots in shard order (the last one decodes).
absl::StatusOr<std::vector<ShardSlot>> PlaceShards(const PlacementRequest& request, absl::Span<const WorkerRoom> rooms);

// Sum of capacity_tokens / free_tokens over the rooms (saturating).
int64_t TotalCapacityTokens(absl::Span<const WorkerRoom> rooms);
int64_t TotalFreeTokens(absl::Span<const WorkerRoom> rooms);

}  // namespace tessera
