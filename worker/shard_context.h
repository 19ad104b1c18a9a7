// How the tokens of one forward call relate to the rest of the sequence when
// it is split across workers. Empty (the default): this call holds the whole
// sequence. Prefill across shards: `peers` and the prompt's pieces. Decode on
// the last shard with `remote_kv`: attention also covers the K/V that the
// other ranks of `peers` hold (split-KV, PeerTransport::QueryKv).
//
// Pieces: the prompt cut into runs of positions, in order, each held by one
// rank, every rank holding as many pieces as the others (DESIGN.md, the one
// identity behind shards: the SSD state passes over the pieces in order
// whoever holds them). One piece a rank is the contiguous plan (rank r holds
// the r-th run). Two a rank is the load-balanced (zigzag) plan: of 2W pieces
// rank r holds pieces W-1-r and W+r, so every rank's causal attention work is
// about the same (the piece indices of each rank sum to 2W-1) and the last
// rank holds the prompt's end, where decode continues. A rank runs its pieces'
// tokens in order as one pass.
//
// Rounds: R pieces a rank dealt striped (common/striped_rounds.h: round k's
// pieces are one contiguous segment of the prompt, cut over the ranks in
// order) run as R passes, pass k over the pieces of round k alone
// (ShardContext::round), continuing what the earlier rounds left: each
// rank's K/V of its earlier pieces (the ring sends all a rank holds), and
// on every rank the SSM state and the conv tail at the segment's start (its
// Mamba states, which every rank advances to the segment's end after each
// round). So a pass never holds more than one piece a rank, however long
// the shard. Contiguous and zigzag plans are one round.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/striped_rounds.h"
#include "common/zigzag.h"
#include "transport/peer_transport.h"

namespace tessera {

// Global positions [begin, end) of the prompt, held by `rank`, computed in
// pass `round` (0 unless the plan runs in rounds): the coordinator's piece too.
using ShardPiece = StripedPiece;

// (W) pieces from the W + 1 bounds of a contiguous plan: rank r holds [bounds[r], bounds[r+1]).
std::vector<ShardPiece> ContiguousPieces(absl::Span<const int64_t> bounds);
// (2W) pieces from the 2W + 1 bounds of a zigzag plan of W ranks, each held by
// ZigzagRank (common/zigzag.h). `bounds` must have an odd number (>= 3) of entries.
std::vector<ShardPiece> ZigzagPieces(absl::Span<const int64_t> bounds);
// (R·W) pieces of a plan in `rounds` rounds over ranks holding `shares`
// tokens (StripedPieces, common/striped_rounds.h); shares >= rounds >= 1.
std::vector<ShardPiece> RoundPieces(absl::Span<const int64_t> shares, int rounds);
// (rounds, as ShardContext::rounds): the tokens `rank` holds of each round
// of `pieces`, in order (its pass of that round).
std::vector<int64_t> RoundTokens(absl::Span<const ShardPiece> pieces, int rank);

struct ShardContext {
  PeerTransport* peers = nullptr;
  // Prefill: every piece of the prompt, in order of position (see above).
  std::vector<ShardPiece> pieces;
  int round = 0;  // prefill: the round this pass runs (pieces of earlier rounds are held)
  bool remote_kv = false;  // decode: query the K/V of the other ranks of `peers`
  // Called as each of the model's layers completes (progress of a long
  // prefill: `layers_total` is the checkpoint's num_hidden_layers); may return
  // an error (e.g. CANCELLED) to stop the pass.
  std::function<absl::Status(int64_t layers_done, int64_t layers_total)> on_layer_done;

  bool sharded() const { return peers != nullptr && peers->size() > 1 && !pieces.empty(); }
  // Prefill: the passes the plan runs in (the last piece's round + 1).
  int rounds() const { return pieces.empty() ? 1 : pieces.back().round + 1; }
  bool queries_remote_kv() const { return remote_kv && peers != nullptr && peers->size() > 1; }
};

}  // namespace tessera
