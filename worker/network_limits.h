// What a worker accepts from the network, derived from its model and its
// limits rather than from a constant: the largest block a peer legitimately
// sends (a K/V ring block of the longest shard this worker could hold, or an
// SSD summary / conv tail, whichever is larger), the mailbox's bounds on
// undelivered blocks, and the largest message of each Worker RPC (the
// server's receive limit is their maximum). Anything larger is refused.
#pragma once

#include <cstdint>

#include "model/model_config.h"
#include "transport/mailbox.h"

namespace tessera {

// Decode asks one query row at a time; a query of more rows is refused.
inline constexpr int64_t kMaxAttendQueryRows = 1024;
// Shards of one request, and stop tokens of one request.
inline constexpr int64_t kMaxShardsPerRequest = 256;
inline constexpr int64_t kMaxStopTokenIds = 1024;
// A request id is at most this long (the coordinator's are 32 hex digits).
inline constexpr int64_t kMaxRequestIdBytes = 128;
// The request secret: at least 16 random bytes (128 bits), at most 64.
inline constexpr int64_t kMinRequestSecretBytes = 16;
inline constexpr int64_t kMaxRequestSecretBytes = 64;
// RunShardRequest.cache_salt (the coordinator checks GenerateRequest's against its own copy).
inline constexpr int64_t kMaxShardCacheSaltBytes = 256;
// The longest worker address (host:port) a shard plan may name.
inline constexpr int64_t kMaxAddressBytes = 256;
// Never more than gRPC's own ceiling in this project (rpc/grpc_util.h).
inline constexpr int64_t kMaxWorkerMessageBytes = int64_t{1} << 30;

// What bounds the length of one shard on this worker; 0 in a field: no bound
// from it. Not the longest pass (a shard of several runs in rounds of passes).
struct ShardLengthBounds {
  int64_t max_context_tokens = 0;  // the served context
  int64_t memory_budget_bytes = 0;
  int64_t kv_bytes_per_token = 0;  // 0: the model has no K/V
  int64_t state_bytes_per_request = 0;
};

// The smallest positive bound: max_context_tokens, the tokens whose K/V fit
// the budget. 0 when nothing bounds it (no K/V, no
// context limit).
int64_t LongestShardTokens(const ShardLengthBounds& bounds);

// The largest block a peer sends in a prefill whose shards are at most
// `shard_tokens` long (0: unbounded, which only a model without attention
// can have): fp32 K/V ring block (2·tokens, Hkv·D: all a shard holds, in its
// last round), conv tail (K-1, C), SSD summary (H + H·P·N), the last two for
// both pieces of a zigzag shard, whichever is largest. Saturates at kMaxWorkerMessageBytes.
int64_t MaxPeerBlockBytes(const ModelConfig& config, int64_t shard_tokens);

// The most pieces of a prompt one shard holds (2: a zigzag plan; shard_context.h).
inline constexpr int64_t kMaxPiecesPerShard = 2;

// The mailbox's bounds for blocks of at most `max_block_bytes`, and for a
// worker's model and bounds.
MailboxLimits PeerMailboxLimits(int64_t max_block_bytes);
MailboxLimits PeerMailboxLimitsFor(const ModelConfig& config, const ShardLengthBounds& bounds);

// The largest message of each Worker RPC, and the server's receive limit.
struct WorkerMessageLimits {
  int64_t deliver_bytes = 0;
  int64_t attend_kv_bytes = 0;
  int64_t run_shard_bytes = 0;
  int64_t max_receive_bytes = 0;  // the largest of the three
};
WorkerMessageLimits WorkerMessageLimitsFor(const ModelConfig& config, const ShardLengthBounds& bounds);

}  // namespace tessera
