// How many tokens of one request a worker can hold, from what it reports in
// WorkerStatus. A request on a worker costs its conv + SSM state once plus
// kv_bytes_per_token per token it holds (prompt tokens of its shard, and, on
// the last shard, every generated token):
//
//   capacity = floor((memory_budget_bytes - state_bytes_per_request) / kv_bytes_per_token)
//
// A model without attention (kv_bytes_per_token 0) holds any length: its
// capacity is its max_context_tokens, or kUnboundedTokens when that is 0.
// A worker that reports max_shard_tokens (the longest shard its prefill can
// take: GPU activation memory) never counts more than that.
#pragma once

#include <cstdint>

#include "tessera/v1/worker.pb.h"

namespace tessera {

inline constexpr int64_t kUnboundedTokens = int64_t{1} << 40;

// Tokens one new request could place on the worker while `held_bytes` of its
// budget are taken by others. Never negative.
int64_t WorkerFreeTokens(const v1::WorkerStatus& status, int64_t held_bytes);

// The same with the worker empty.
inline int64_t WorkerCapacityTokens(const v1::WorkerStatus& status) { return WorkerFreeTokens(status, 0); }

// Bytes to reserve for a shard that will hold `tokens` tokens.
int64_t ShardReservationBytes(const v1::WorkerStatus& status, int64_t tokens);

}  // namespace tessera
