// How the tokens of one forward call relate to the rest of the sequence when
// it is split across workers. Empty (the default): this call holds the whole
// sequence. Prefill across shards: `peers` and the shard boundaries. Decode on
// the last shard with `remote_kv`: attention also covers the K/V that the
// other ranks of `peers` hold (split-KV, PeerTransport::QueryKv).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "transport/peer_transport.h"

namespace tessera {

struct ShardContext {
  PeerTransport* peers = nullptr;
  std::vector<int64_t> shard_bounds;  // prefill: (size + 1), rank r holds [bounds[r], bounds[r+1])
  bool remote_kv = false;             // decode: query the K/V of the other ranks of `peers`
  // Called as each of the model's layers completes (progress of a long
  // prefill: `layers_total` is the checkpoint's num_hidden_layers); may return
  // an error (e.g. CANCELLED) to stop the pass.
  std::function<absl::Status(int64_t layers_done, int64_t layers_total)> on_layer_done;

  bool sharded() const { return peers != nullptr && peers->size() > 1 && !shard_bounds.empty(); }
  bool queries_remote_kv() const { return remote_kv && peers != nullptr && peers->size() > 1; }
};

}  // namespace tessera
