// How many tokens of one request a worker can hold, from what it reports in
// WorkerStatus. A request on a worker costs its conv + SSM state once plus
// kv_bytes_per_token per token it holds (prompt tokens of its shard, and, on
// the last shard, every generated token):
//
//   capacity = floor((memory_budget_bytes - state_bytes_per_request) / kv_bytes_per_token)
//
// A model without attention (kv_bytes_per_token 0) holds any length: its
// capacity is its max_context_tokens, or kUnboundedTokens when that is 0.
// A worker that reports max_shard_tokens (its longest prefill pass: GPU
// activation memory) runs a shard of a multi-shard plan one pass a round of
// the plan (up to max_prefill_rounds rounds: WorkerPrefillRounds), so the
// plan's rounds are chosen for its pieces to fit (WorkerPassTokens), not its
// shard's length; a request planned as one shard it runs in pieces
// (prefill_chunk_tokens > 0). Either way at any length its capacity holds.
// An older worker, which reports no pieces, never counts more than
// max_shard_tokens.
//
// A status comes over the network: CheckWorkerStatus refuses numbers no
// worker can have (a worker reporting them is not ready), and the arithmetic
// saturates, so that no report can wrap a sum or a product.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "tessera/v1/worker.pb.h"

namespace tessera {

inline constexpr int64_t kUnboundedTokens = int64_t{1} << 40;
// The largest budget, memory figure or byte count a status may report (1 PiB).
inline constexpr int64_t kMaxReportedBytes = int64_t{1} << 50;

// FAILED_PRECONDITION naming the first field outside its range: byte counts
// in [0, kMaxReportedBytes], token counts in [0, kUnboundedTokens],
// chunk_size and num_layers in [0, 2^20], active_requests >= 0,
// eos_token_id >= -1.
absl::Status CheckWorkerStatus(const v1::WorkerStatus& status);

// Tokens one new request could place on the worker while `held_bytes` of its
// budget are taken by others. In [0, kUnboundedTokens].
int64_t WorkerFreeTokens(const v1::WorkerStatus& status, int64_t held_bytes);

// The same with the worker empty.
inline int64_t WorkerCapacityTokens(const v1::WorkerStatus& status) { return WorkerFreeTokens(status, 0); }

// The longest piece of a multi-shard plan's round the worker runs (prompt
// tokens: one prefill pass); kUnboundedTokens when it reports no limit.
int64_t WorkerPassTokens(const v1::WorkerStatus& status);

// The most rounds the worker runs a shard of a multi-shard plan in: its
// max_prefill_rounds, 1 for an older worker (0), at most kMaxPrefillRounds.
int32_t WorkerPrefillRounds(const v1::WorkerStatus& status);

// Bytes to reserve for a shard that will hold `tokens` tokens (saturating).
int64_t ShardReservationBytes(const v1::WorkerStatus& status, int64_t tokens);

// a + b and a · b of non-negative counts, at most INT64_MAX.
int64_t SaturatingAdd(int64_t a, int64_t b);
int64_t SaturatingMul(int64_t a, int64_t b);

}  // namespace tessera
