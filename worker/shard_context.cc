// The three ways a prompt's pieces are dealt to ranks (shard_context.h).
#include "worker/shard_context.h"

#include <algorithm>

#include "common/striped_rounds.h"

namespace tessera {

std::vector<ShardPiece> ContiguousPieces(absl::Span<const int64_t> bounds) {
  std::vector<ShardPiece> pieces;  // (W)
  for (size_t r = 0; r + 1 < bounds.size(); ++r) {
    pieces.push_back({bounds[r], bounds[r + 1], static_cast<int>(r)});
  }
  return pieces;
}

std::vector<ShardPiece> ZigzagPieces(absl::Span<const int64_t> bounds) {
  const int ranks = static_cast<int>(bounds.size() - 1) / 2;
  std::vector<ShardPiece> pieces;  // (2W)
  for (int k = 0; k < 2 * ranks; ++k) {
    pieces.push_back({bounds[k], bounds[k + 1], ZigzagRank(k, ranks)});
  }
  return pieces;
}

std::vector<int64_t> RoundTokens(absl::Span<const ShardPiece> pieces, int rank) {
  std::vector<int64_t> tokens(pieces.empty() ? 1 : std::max(1, pieces.back().round + 1), 0);  // (rounds)
  for (const ShardPiece& p : pieces) {
    if (p.rank == rank && p.round >= 0 && p.round < static_cast<int>(tokens.size())) tokens[p.round] += p.len();
  }
  return tokens;
}

std::vector<ShardPiece> RoundPieces(absl::Span<const int64_t> shares, int rounds) {
  return StripedPieces(shares, rounds);
}

}  // namespace tessera
