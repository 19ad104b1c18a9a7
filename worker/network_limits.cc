// Saturating arithmetic throughout: the inputs are the model's shapes and
// the operator's flags, which a typo can make absurd.
#include "worker/network_limits.h"

#include <algorithm>

namespace tessera {
namespace {

constexpr int64_t kFloatBytes = 4;  // blocks travel in fp32 at most
constexpr int64_t kEnvelopeBytes = 64 << 10;  // ids, secrets, tags, addresses, field headers

int64_t SatMul(int64_t a, int64_t b) {
  int64_t out = 0;
  if (a < 0 || b < 0) return 0;
  return __builtin_mul_overflow(a, b, &out) ? INT64_MAX : out;
}

int64_t SatAdd(int64_t a, int64_t b) {
  int64_t out = 0;
  return __builtin_add_overflow(a, b, &out) ? (a > 0 ? INT64_MAX : INT64_MIN) : out;
}

int64_t Cap(int64_t bytes) { return std::min(bytes, kMaxWorkerMessageBytes); }

}  // namespace

int64_t LongestShardTokens(const ShardLengthBounds& b) {
  int64_t longest = 0;
  auto bound = [&](int64_t tokens) {
    if (tokens > 0) longest = longest == 0 ? tokens : std::min(longest, tokens);
  };
  bound(b.max_context_tokens);
  if (b.kv_bytes_per_token > 0) bound(std::max<int64_t>(1, (b.memory_budget_bytes - b.state_bytes_per_request) /
                                                               b.kv_bytes_per_token));
  return longest;
}

int64_t MaxPeerBlockBytes(const ModelConfig& config, int64_t shard_tokens) {
  int64_t largest = 0;
  if (config.CountBlocks(BlockKind::kMamba) > 0) {
    const MambaConfig& m = config.mamba;
    const int64_t tail = SatMul(SatMul(std::max<int64_t>(0, m.conv_kernel - 1), m.conv_channels()), kFloatBytes);
    const int64_t summary =
        SatMul(SatAdd(m.num_heads, SatMul(m.num_heads, SatMul(m.head_dim, m.state_size))), kFloatBytes);
    // A zigzag shard sends its two pieces' tails and summaries at once.
    largest = std::max({largest, SatMul(kMaxPiecesPerShard, tail), SatMul(kMaxPiecesPerShard, summary)});
  }
  if (config.CountBlocks(BlockKind::kAttention) > 0) {
    const AttentionConfig& a = config.attention;
    const int64_t tokens = shard_tokens > 0 ? shard_tokens : kMaxWorkerMessageBytes;
    largest = std::max(largest, SatMul(SatMul(2 * tokens, SatMul(a.num_kv_heads, a.head_dim)), kFloatBytes));
  }
  return Cap(largest);
}

MailboxLimits PeerMailboxLimits(int64_t max_block_bytes) {
  MailboxLimits limits;
  limits.max_block_bytes = max_block_bytes;
  // A sender is at most an exchange or two ahead of this shard (each
  // exchange waits for every rank), and only the ring's one sender sends K/V
  // blocks; the slack covers many senders' small blocks.
  constexpr int64_t kSlack = int64_t{16} << 20;
  limits.max_request_bytes = SatAdd(SatMul(4, max_block_bytes), kSlack);
  // Before a shard is admitted its peers may have sent it the first block
  // of a layer; a block for a request nobody here runs waits unclaimed_ttl.
  limits.max_unclaimed_bytes = SatAdd(SatMul(2, max_block_bytes), kSlack);
  limits.max_total_bytes = SatMul(4, limits.max_request_bytes);
  limits.unclaimed_ttl = std::chrono::milliseconds(5000);
  return limits;
}

MailboxLimits PeerMailboxLimitsFor(const ModelConfig& config, const ShardLengthBounds& bounds) {
  return PeerMailboxLimits(MaxPeerBlockBytes(config, LongestShardTokens(bounds)));
}

WorkerMessageLimits WorkerMessageLimitsFor(const ModelConfig& config, const ShardLengthBounds& bounds) {
  const int64_t longest = LongestShardTokens(bounds);
  WorkerMessageLimits limits;
  limits.deliver_bytes = Cap(SatAdd(MaxPeerBlockBytes(config, longest), kEnvelopeBytes));
  const int64_t q_width = config.attention.num_heads * config.attention.head_dim;
  limits.attend_kv_bytes = Cap(SatAdd(SatMul(SatMul(kMaxAttendQueryRows, q_width), kFloatBytes), kEnvelopeBytes));
  // Token ids are varints of at most 5 bytes when valid (>= 0); addresses,
  // stop ids and the cache salt are bounded by the constants above.
  // A shard of a split prefill may also carry the prompt before it (prefix
  // reuse: prefix_token_ids), up to its end position, which the context bounds.
  const int64_t positions = std::max(longest, bounds.max_context_tokens);
  const int64_t tokens = positions > 0 ? positions : kMaxWorkerMessageBytes;
  const int64_t plan = SatMul(kMaxShardsPerRequest, kMaxAddressBytes + 32) + SatMul(kMaxStopTokenIds, 6) +
                       kMaxShardCacheSaltBytes + 8;
  limits.run_shard_bytes = Cap(SatAdd(SatAdd(SatMul(tokens, 6), plan), kEnvelopeBytes));
  limits.max_receive_bytes = std::max({limits.deliver_bytes, limits.attend_kv_bytes, limits.run_shard_bytes});
  return limits;
}

}  // namespace tessera
