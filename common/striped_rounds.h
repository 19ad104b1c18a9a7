// A prefill in rounds (striped dealing), in one place for the coordinator
// that plans it and the workers that run it. A plan of W shards with shares
// n_0 … n_{W-1} (the tokens each holds, as a contiguous plan would cut the
// prompt) runs in R rounds: shard r's share is cut into R pieces, its piece of
// round k being [n_r·k/R, n_r·(k+1)/R) of its share, and the prompt is the
// pieces in round-major order (round 0's pieces of shards 0 … W-1, then round
// 1's, …). So round k's pieces are one contiguous segment of the prompt, cut
// over the shards in order, every shard holds R pieces, and the last shard
// holds the prompt's end. Round k is one forward pass on every shard over its
// piece of segment k (worker/shard_context.h): a shard's pass is at most
// ceil(n_r / R) tokens, however long its share.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace tessera {

// The most rounds one prefill runs in (a worker refuses more).
inline constexpr int64_t kMaxPrefillRounds = 1024;

// A piece of the prompt: global positions [begin, end), held by shard
// `rank`, computed in pass `round` (0 unless the plan runs in rounds). The
// workers call it ShardPiece (worker/shard_context.h).
struct StripedPiece {
  int64_t begin = 0;
  int64_t end = 0;
  int rank = 0;
  int round = 0;
  int64_t len() const { return end - begin; }
};

// The R·W pieces in order of position. Shares must be >= `rounds` >= 1 (every
// piece non-empty) and their sum must not overflow: the callers check both.
inline std::vector<StripedPiece> StripedPieces(absl::Span<const int64_t> shares, int rounds) {
  std::vector<StripedPiece> pieces;  // (R·W)
  int64_t position = 0;
  for (int k = 0; k < rounds; ++k) {
    for (size_t r = 0; r < shares.size(); ++r) {
      const int64_t len = shares[r] * (k + 1) / rounds - shares[r] * k / rounds;
      pieces.push_back({position, position + len, static_cast<int>(r), k});
      position += len;
    }
  }
  return pieces;
}

// The fewest rounds in which a share of `share` tokens runs in passes of at
// most `pass` tokens (pass <= 0: no limit, one round).
inline int64_t RoundsForPass(int64_t share, int64_t pass) {
  if (pass <= 0 || share <= pass) return 1;
  return share / pass + (share % pass != 0 ? 1 : 0);
}

}  // namespace tessera
