// How the tokens of one forward call relate to the rest of the sequence when
// it is split across workers. Empty (the default): this call holds the whole
// sequence. Prefill across shards: `peers` and the shard boundaries. Decode on
// the last shard: `remote_kv` answers attention over K/V held by other shards.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "worker/peer_group.h"

namespace tessera {

// One shard's attention result for a query: output and log-sum-exp.
struct AttentionPartial {
  std::vector<float> out;  // (q_len, Hq, D)
  std::vector<float> lse;  // (q_len, Hq)
};

// Split-KV decode: the attention of `q` (rows at global positions
// q_position0, ...) over the K/V of attention layer `attention_slot` that
// other workers hold for this request, one partial per worker.
class RemoteKvAttention {
 public:
  virtual ~RemoteKvAttention() = default;
  virtual absl::StatusOr<std::vector<AttentionPartial>> Attend(int64_t attention_slot, absl::Span<const float> q,
                                                               int64_t q_len, int64_t q_position0) = 0;
};

struct ShardContext {
  PeerGroup* peers = nullptr;          // prefill across shards (size() > 1)
  std::vector<int64_t> shard_bounds;   // (size + 1): rank r holds [bounds[r], bounds[r+1])
  RemoteKvAttention* remote_kv = nullptr;  // decode on the last shard
  // Called after each block (progress of a long prefill); may return an error
  // (e.g. CANCELLED) to stop the pass.
  std::function<absl::Status(int64_t blocks_done, int64_t blocks_total)> on_block_done;

  bool sharded() const { return peers != nullptr && peers->size() > 1; }
};

}  // namespace tessera
