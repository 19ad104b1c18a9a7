// A shard plan's pieces in order of position, in one place for the
// coordinator that sends a plan (its leases) and the workers that run it (the
// spans of their RunShard): the same rule for every layout, so the ids a
// shard is sent, the pieces it computes and the order its prompt logits come
// back in cannot disagree.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "common/striped_rounds.h"
#include "common/zigzag.h"

namespace tessera {

// A shard as a plan names it: [begin, end), and in a zigzag plan its late
// piece [late_begin, late_end) (empty otherwise); in a plan in rounds
// [begin, end) is its share, not its positions.
struct PlanSpan {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t late_begin = 0;
  int64_t late_end = 0;
};

// The plan's pieces in order of position: a contiguous plan's spans; a
// zigzag plan's 2W pieces (the first span has a late piece), piece k held by
// ZigzagRank(k, W): early pieces first, then late ones; a contiguous plan of
// several shards in `rounds` > 1 rounds: the shares dealt striped
// (StripedPieces). A shard's ids are its pieces in this order.
inline std::vector<StripedPiece> PiecesInOrder(absl::Span<const PlanSpan> spans, int rounds) {
  const int n = static_cast<int>(spans.size());
  const bool zigzag = n > 0 && spans[0].late_end > spans[0].late_begin;
  std::vector<StripedPiece> pieces;  // (W), (2W) or (R·W)
  if (n > 1 && rounds > 1 && !zigzag) {
    std::vector<int64_t> shares;  // (W)
    for (const PlanSpan& s : spans) shares.push_back(s.end - s.begin);
    return StripedPieces(shares, rounds);
  }
  if (!zigzag) {
    for (int r = 0; r < n; ++r) pieces.push_back({spans[r].begin, spans[r].end, r, 0});
    return pieces;
  }
  for (int k = 0; k < 2 * n; ++k) {
    const int rank = ZigzagRank(k, n);
    const PlanSpan& s = spans[rank];
    pieces.push_back(k < n ? StripedPiece{s.begin, s.end, rank, 0} : StripedPiece{s.late_begin, s.late_end, rank, 0});
  }
  return pieces;
}

}  // namespace tessera
